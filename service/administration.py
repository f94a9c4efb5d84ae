"""Use cases of the admin blueprint: users and the audit log."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from tortoise.expressions import Q

from models import AuditEvent, Role, Session, User
from service import audit
from service.accounts import user_json
from service.context import CurrentUser, RequestContext
from service.errors import Conflict, NotFound
from service.platform.database import transaction
from service.platform.jsonutil import iso
from service.platform.pagination import Cursors, orm_page, scope_of


@dataclass(frozen=True)
class UserFilter:
    q: str | None = None
    role: Role | None = None
    is_active: bool | None = None


@dataclass(frozen=True)
class AuditFilter:
    actor_id: uuid.UUID | None = None
    action: str | None = None
    target_id: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


async def list_users(cursors: Cursors, filt: UserFilter, limit: int, cursor: str | None) -> dict[str, Any]:
    users = User.all()
    if filt.q:
        # ILIKE: the database's case rule, as everywhere (Tortoise escapes % and _).
        users = users.filter(Q(email__icontains=filt.q) | Q(full_name__icontains=filt.q))
    if filt.role:
        users = users.filter(role=filt.role)
    if filt.is_active is not None:
        users = users.filter(is_active=filt.is_active)
    scope = scope_of("users", filt.q, filt.role, filt.is_active)
    rows, next_cursor = await orm_page(users, cursors, scope, cursor, limit, column="created_at", kind=dt.datetime)
    return {"items": [user_json(r) for r in rows], "next_cursor": next_cursor}


async def update_user(ctx: RequestContext, admin: CurrentUser, user_id: uuid.UUID,
                      changes: dict[str, Any]) -> dict[str, Any]:
    async with transaction() as tx:
        # The active admins are locked first, in id order, by every change of a role or an
        # account state: two admins demoting each other at the same moment then queue (no
        # deadlock), and the second sees the first's change, so one admin always remains.
        # (Whole rows: Tortoise drops FOR UPDATE from a values_list() query.)
        admins = [row.id for row in await User.filter(role=Role.ADMIN, is_active=True).order_by("id")
                  .select_for_update().using_db(tx)]
        user = await User.select_for_update().using_db(tx).get_or_none(id=user_id)
        if user is None:
            raise NotFound("No such user.")
        if user_id == admin.id and (changes.get("role", Role.ADMIN) != Role.ADMIN or changes.get("is_active") is False):
            raise Conflict("You cannot demote or deactivate yourself.", code="self_demotion")
        before = user_json(user)
        diff = {k: [_shown(k, before[k]), _shown(k, v)] for k, v in changes.items()
                if _shown(k, before[k]) != _shown(k, v)}
        if not diff:
            return before
        for field, value in changes.items():
            setattr(user, field, value)
        stays_admin = user.role == Role.ADMIN and user.is_active
        if user_id in admins and not stays_admin and not any(other != user_id for other in admins):
            raise Conflict("The last active admin cannot be demoted or deactivated.", code="last_admin")
        await user.save(using_db=tx, update_fields=[*changes, "updated_at"])
        revoked = 0
        if {"role", "is_active"} & set(diff):  # membership is read on every request: no need to end sessions
            revoked = await Session.filter(user_id=user_id, revoked_at__isnull=True).using_db(tx).update(
                revoked_at=dt.datetime.now(dt.UTC), revoked_reason="admin_change")
        await audit.record(tx, ctx, "admin.user.updated", target_type="user", target_id=user_id,
                           details={**diff, "actor_role": admin.role, "sessions_revoked": revoked})
    return user_json(user)


def _shown(field: str, value: Any) -> Any:
    """A changed field as its audit row shows it (JSON: ids and roles as strings)."""
    return str(value) if value is not None and field in ("role", "org_unit_id") else value


def audit_json(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "occurred_at": event.occurred_at,
        "request_id": event.request_id,
        "actor_id": event.actor_id,
        "ip": event.ip,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "outcome": str(event.outcome),
        "details": event.details or {},
    }


async def list_audit_events(cursors: Cursors, filt: AuditFilter, limit: int, cursor: str | None) -> dict[str, Any]:
    events = AuditEvent.all()
    for field, value in (("actor_id", filt.actor_id), ("action", filt.action), ("target_id", filt.target_id),
                         ("occurred_at__gte", filt.since), ("occurred_at__lte", filt.until)):
        if value is not None:
            events = events.filter(**{field: value})
    scope = scope_of("audit", str(filt.actor_id), filt.action, filt.target_id, iso(filt.since), iso(filt.until))
    rows, next_cursor = await orm_page(events, cursors, scope, cursor, limit, column="occurred_at",
                                       kind=dt.datetime)
    return {"items": [audit_json(r) for r in rows], "next_cursor": next_cursor}
