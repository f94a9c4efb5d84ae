"""Use cases of the admin blueprint: users and the audit log."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from service import audit
from service.accounts import USER_COLUMNS, user_json
from service.context import CurrentUser, RequestContext
from service.database import connection, transaction
from service.errors import BadRequest, Conflict, NotFound
from service.jsonutil import iso
from service.pagination import Cursors, scope_of
from service.validation import Query

ROLES = ("student", "curator", "admin")
AUDIT_COLUMNS = "id, occurred_at, request_id, actor_id, ip, action, target_type, target_id, outcome, details"


def _position(cursors: Cursors, scope: str, cursor: str | None) -> tuple[dt.datetime, uuid.UUID] | None:
    if not cursor:
        return None
    raw = cursors.decode(scope, cursor)
    try:
        return dt.datetime.fromisoformat(raw[0]), uuid.UUID(raw[1])
    except (ValueError, TypeError, IndexError):
        raise BadRequest("The cursor is invalid; start again from the first page.") from None


async def _newest_first(cursors: Cursors, table: str, columns: str, time_column: str, clauses: list[str],
                        params: list[Any], scope: str, limit: int, cursor: str | None) -> tuple[list, str | None]:
    position = _position(cursors, scope, cursor)
    if position is not None:
        params = [*params, *position]
        clauses = [*clauses, f"({time_column}, id) < (${len(params) - 1}, ${len(params)})"]
    where = " AND ".join(clauses) or "TRUE"
    rows = await connection().execute_query_dict(
        f"SELECT {columns} FROM {table} WHERE {where} ORDER BY {time_column} DESC, id DESC LIMIT {limit + 1}",
        params)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = cursors.encode(scope, [last[time_column].isoformat(), str(last["id"])])
    return rows, next_cursor


async def list_users(cursors: Cursors, query: Query) -> dict[str, Any]:
    clauses: list[str] = []
    params: list[Any] = []
    q = query.text("q", 254)
    role = query.choice("role", ROLES)
    is_active = query.boolean("is_active")
    limit = query.int("limit", 20, 1, 100)
    if q:
        escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params.append(f"%{escaped}%")
        # lower() of the database on both sides: one case rule (Python's differs, e.g. final sigma).
        clauses.append(f"(email LIKE lower(${len(params)}) OR lower(full_name) LIKE lower(${len(params)}))")
    if role:
        params.append(role)
        clauses.append(f"role = ${len(params)}")
    if is_active is not None:
        params.append(is_active)
        clauses.append(f"is_active = ${len(params)}")
    rows, next_cursor = await _newest_first(cursors, "users", USER_COLUMNS, "created_at", clauses, params,
                                            scope_of("users", q, role, is_active), limit, query.cursor())
    return {"items": [user_json(r) for r in rows], "next_cursor": next_cursor}


async def update_user(ctx: RequestContext, admin: CurrentUser, user_id: uuid.UUID,
                      changes: dict[str, Any]) -> dict[str, Any]:
    async with transaction() as conn:
        # The active admins are locked first, in id order, by every change of a role or an
        # account state: two admins demoting each other at the same moment then queue (no
        # deadlock), and the second sees the first's change, so one admin always remains.
        admins = [row["id"] for row in await conn.execute_query_dict(
            "SELECT id FROM users WHERE role = 'admin' AND is_active ORDER BY id FOR UPDATE", [])]
        rows = await conn.execute_query_dict(f"SELECT {USER_COLUMNS} FROM users WHERE id = $1 FOR UPDATE", [user_id])
        if not rows:
            raise NotFound("No such user.")
        before = rows[0]
        if user_id == admin.id and (changes.get("role", "admin") != "admin" or changes.get("is_active") is False):
            raise Conflict("You cannot demote or deactivate yourself.", code="self_demotion")
        after = {**before, **changes}
        if user_id in admins and not (after["role"] == "admin" and after["is_active"]) \
                and not any(other != user_id for other in admins):
            raise Conflict("The last active admin cannot be demoted or deactivated.", code="last_admin")
        diff = {k: [before[k], after[k]] for k in changes if before[k] != after[k]}
        if not diff:
            return user_json(before)
        rows = await conn.execute_query_dict(
            f"UPDATE users SET role = $2, is_active = $3, updated_at = now() WHERE id = $1 RETURNING {USER_COLUMNS}",
            [user_id, after["role"], after["is_active"]])
        revoked = await conn.execute_query_dict(
            "UPDATE sessions SET revoked_at = now(), revoked_reason = 'admin_change' "
            "WHERE user_id = $1 AND revoked_at IS NULL RETURNING id", [user_id])
        await audit.record(conn, ctx, "admin.user.updated", target_type="user", target_id=user_id,
                           details={**diff, "actor_role": admin.role, "sessions_revoked": len(revoked)})
    return user_json(rows[0])


def audit_json(row: dict[str, Any]) -> dict[str, Any]:
    import orjson

    details = row["details"]
    if isinstance(details, (str, bytes)):
        details = orjson.loads(details)
    return {
        "id": str(row["id"]),
        "occurred_at": iso(row["occurred_at"]),
        "request_id": row["request_id"],
        "actor_id": str(row["actor_id"]) if row["actor_id"] else None,
        "ip": row["ip"],
        "action": row["action"],
        "target_type": row["target_type"],
        "target_id": row["target_id"],
        "outcome": row["outcome"],
        "details": details or {},
    }


async def list_audit_events(cursors: Cursors, query: Query) -> dict[str, Any]:
    clauses: list[str] = []
    params: list[Any] = []
    actor_id = query.uuid("actor_id")
    action = query.text("action", 64)
    target_id = query.text("target_id", 128)
    since, until = query.datetime("since"), query.datetime("until")
    limit = query.int("limit", 50, 1, 100)
    for column, op, value in (("actor_id", "=", actor_id), ("action", "=", action), ("target_id", "=", target_id),
                              ("occurred_at", ">=", since), ("occurred_at", "<=", until)):
        if value is not None:
            params.append(value)
            clauses.append(f"{column} {op} ${len(params)}")
    scope = scope_of("audit", str(actor_id), action, target_id, iso(since), iso(until))
    rows, next_cursor = await _newest_first(cursors, "audit_events", AUDIT_COLUMNS, "occurred_at", clauses,
                                            params, scope, limit, query.cursor())
    return {"items": [audit_json(r) for r in rows], "next_cursor": next_cursor}
