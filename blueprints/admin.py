"""Administration: users and the audit log (admin only)."""

from __future__ import annotations

from pydantic import Field, StrictBool
from sanic import Blueprint
from sanic.request import Request
from sanic_ext import openapi

from blueprints.docs import CURSOR, DATE_TIME, LIMIT, PROTECTED, USER_SCHEMA, UUID, choice, ok, problems, query, text
from blueprints.schemas import AUDIT_PAGE_SCHEMA, USER_PAGE_SCHEMA
from models.enums import Role, literal, values
from service import administration
from service.authn import current_user, parse_uuid_or_404, require_role
from service.context import context_of
from service.platform.jsonutil import json_response
from service.platform.validation import Body, Query, json_body, not_null, patch_changes

bp = Blueprint("admin", url_prefix="/admin")

USER_PARAMS = {"q", "role", "is_active", "limit", "cursor"}
AUDIT_PARAMS = {"actor_id", "action", "target_id", "since", "until", "limit", "cursor"}


class UserPatch(Body):
    role: literal(Role) | None = Field(None, json_schema_extra=not_null)
    is_active: StrictBool | None = Field(None, json_schema_extra=not_null)


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
@ok(200, USER_PAGE_SCHEMA, "A page of users, newest first")
@problems(*PROTECTED, 403)
@require_role("admin")
async def list_users(request: Request):
    query = Query(request, USER_PARAMS)
    role = query.choice("role", values(Role))
    filt = administration.UserFilter(q=query.text("q", 254), role=Role(role) if role else None,
                                     is_active=query.boolean("is_active"))
    return json_response(await administration.list_users(request.app.ctx.cursors, filt,
                                                         query.int("limit", 20, 1, 100), query.cursor()))


@bp.patch("/users/<user_id>")
@openapi.summary("Change a user's role or active flag (admin); revokes their sessions")
@openapi.tag("admin")
@openapi.secured("bearer")
@ok(200, USER_SCHEMA, "The updated user")
@problems(*PROTECTED, 403, 404, 409, 413, 415, 422)
@require_role("admin")
@json_body(UserPatch, media_types=("application/json", "application/merge-patch+json"))
async def update_user(request: Request, user_id: str, body: UserPatch):
    user = await administration.update_user(context_of(request), current_user(request),
                                            parse_uuid_or_404(user_id), patch_changes(body))
    return json_response(user)


@bp.get("/audit-events")
@openapi.summary("The audit log, newest first (admin)")
@openapi.tag("admin")
@openapi.secured("bearer")
@_params({"actor_id": (UUID, "a user id"), "action": (text(64), "e.g. auth.login.failed"),
          "target_id": (text(128), "a target id"), "since": (DATE_TIME, "RFC 3339, inclusive"),
          "until": (DATE_TIME, "RFC 3339, inclusive"), "limit": (LIMIT, "1-100 (default 50)"),
          "cursor": (CURSOR, "opaque, from next_cursor")})
@ok(200, AUDIT_PAGE_SCHEMA, "A page of audit events")
@problems(*PROTECTED, 403)
@require_role("admin")
async def list_audit_events(request: Request):
    query = Query(request, AUDIT_PARAMS)
    filt = administration.AuditFilter(
        actor_id=query.uuid("actor_id"), action=query.text("action", 64), target_id=query.text("target_id", 128),
        since=query.datetime("since"), until=query.datetime("until"))
    return json_response(await administration.list_audit_events(request.app.ctx.cursors, filt,
                                                                query.int("limit", 50, 1, 100), query.cursor()))
