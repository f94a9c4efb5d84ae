"""Administration: users and the audit log (admin only)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictBool, StrictStr
from sanic import Blueprint
from sanic.request import Request
from sanic_ext import openapi

from blueprints.docs import CURSOR, DATE_TIME, LIMIT, PROTECTED, UUID, choice, ok, problems, query, text
from blueprints.schemas import AUDIT_PAGE, SCOPES, USER, USER_PAGE
from models.enums import Role, literal, values
from service import administration, university
from service.authn import current_user, parse_uuid_or_404, require_role
from service.context import context_of
from service.errors import ValidationFailed
from service.platform.jsonutil import uuid_or_none
from service.platform.validation import Body, Query, json_body, not_null, patch_changes

bp = Blueprint("admin", url_prefix="/admin")

USER_PARAMS = {"q", "role", "is_active", "limit", "cursor"}
AUDIT_PARAMS = {"actor_id", "action", "target_id", "since", "until", "limit", "cursor"}


class UserPatch(Body):
    role: literal(Role) | None = Field(None, json_schema_extra=not_null)
    is_active: StrictBool | None = Field(None, json_schema_extra=not_null)
    # A group, or null for the university itself (422 for anything else).
    org_unit_id: StrictStr | None = Field(None, json_schema_extra={"format": "uuid"})


class CuratorScopesUpdate(Body):
    org_unit_ids: Annotated[list[StrictStr], Field(max_length=1000, json_schema_extra={
        "items": {"type": "string", "format": "uuid"}})]


async def _membership_checks(request: Request, data: dict, failed: set[str]) -> list[dict[str, str]]:
    unit = data.get("org_unit_id")
    if "org_unit_id" in failed or not isinstance(unit, str):
        return []
    parsed = uuid_or_none(unit)
    error = await university.membership_error(parsed) if parsed else {
        "field": "org_unit_id", "message": "must be a UUID", "code": "invalid_format"}
    return [error] if error else []


def _unit_ids(raw: list[str], field: str) -> list:
    parsed = [uuid_or_none(value) for value in raw]
    errors = [{"field": f"{field}[{i}]", "message": "must be a UUID", "code": "invalid_format"}
              for i, value in enumerate(parsed) if value is None]
    if errors:
        raise ValidationFailed(errors)
    return parsed


def _params(names: dict[str, tuple]):
    """``{name: (schema, description)}`` as query parameters."""
    def decorator(handler):
        for name, (schema, description) in names.items():
            handler = query(name, schema, description)(handler)
        return handler
    return decorator


@bp.get("/users")
@openapi.summary("List users (admin)")
@openapi.tag("admin")
@openapi.secured("bearer")
@_params({"q": (text(254), "text in email or name"),
          "role": (choice(*values(Role)), "student, curator or admin"),
          "is_active": (choice("true", "false"), "true or false"),
          "limit": (LIMIT, "1-100 (default 20)"), "cursor": (CURSOR, "opaque, from next_cursor")})
@ok(200, USER_PAGE, "A page of users, newest first")
@problems(*PROTECTED, 403)
@require_role("admin")
async def list_users(request: Request):
    query = Query(request, USER_PARAMS)
    role = query.choice("role", values(Role))
    filt = administration.UserFilter(q=query.text("q", 254), role=Role(role) if role else None,
                                     is_active=query.boolean("is_active"))
    return USER_PAGE.response(await administration.list_users(request.app.ctx.cursors, filt,
                                                       query.int("limit", 20, 1, 100), query.cursor()))


@bp.patch("/users/<user_id>")
@openapi.summary("Change a user's role or active flag (admin); revokes their sessions")
@openapi.tag("admin")
@openapi.secured("bearer")
@ok(200, USER, "The updated user")
@problems(*PROTECTED, 403, 404, 409, 413, 415, 422)
@require_role("admin")
@json_body(UserPatch, checks=_membership_checks, media_types=("application/json", "application/merge-patch+json"))
async def update_user(request: Request, user_id: str, body: UserPatch):
    changes = patch_changes(body, nullable=frozenset({"org_unit_id"}))
    if "org_unit_id" in changes:
        unit = changes["org_unit_id"]
        errors = await _membership_checks(request, {"org_unit_id": unit}, set()) if unit is not None else []
        if errors:
            raise ValidationFailed(errors)
        changes["org_unit_id"] = uuid_or_none(unit) if unit is not None else None
    user = await administration.update_user(context_of(request), current_user(request),
                                            parse_uuid_or_404(user_id), changes)
    return USER.response(user)


@bp.get("/users/<user_id>/scopes")
@openapi.summary("The org units a curator is responsible for (admin)")
@openapi.tag("admin")
@openapi.secured("bearer")
@ok(200, SCOPES, "The curator's scopes (each covers its unit's subtree)")
@problems(*PROTECTED, 403, 404)
@require_role("admin")
async def get_scopes(request: Request, user_id: str):
    Query(request, set())
    return SCOPES.response(await university.scopes_of(parse_uuid_or_404(user_id)))


@bp.put("/users/<user_id>/scopes")
@openapi.summary("Set the org units a curator is responsible for (admin); applies on the next request")
@openapi.tag("admin")
@openapi.secured("bearer")
@ok(200, SCOPES, "The curator's scopes")
@problems(*PROTECTED, 403, 404, 409, 413, 415, 422)
@require_role("admin")
@json_body(CuratorScopesUpdate)
async def set_scopes(request: Request, user_id: str, body: CuratorScopesUpdate):
    units = _unit_ids(body.org_unit_ids, "org_unit_ids")
    return SCOPES.response(await university.set_scopes(context_of(request), parse_uuid_or_404(user_id), units))


@bp.get("/audit-events")
@openapi.summary("The audit log, newest first (admin)")
@openapi.tag("admin")
@openapi.secured("bearer")
@_params({"actor_id": (UUID, "a user id"), "action": (text(64), "e.g. auth.login.failed"),
          "target_id": (text(128), "a target id"), "since": (DATE_TIME, "RFC 3339, inclusive"),
          "until": (DATE_TIME, "RFC 3339, inclusive"), "limit": (LIMIT, "1-100 (default 50)"),
          "cursor": (CURSOR, "opaque, from next_cursor")})
@ok(200, AUDIT_PAGE, "A page of audit events")
@problems(*PROTECTED, 403)
@require_role("admin")
async def list_audit_events(request: Request):
    query = Query(request, AUDIT_PARAMS)
    filt = administration.AuditFilter(
        actor_id=query.uuid("actor_id"), action=query.text("action", 64), target_id=query.text("target_id", 128),
        since=query.datetime("since"), until=query.datetime("until"))
    return AUDIT_PAGE.response(await administration.list_audit_events(request.app.ctx.cursors, filt,
                                                              query.int("limit", 50, 1, 100), query.cursor()))
