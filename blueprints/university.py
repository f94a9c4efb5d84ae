"""The university: org units (admins shape the tree, everyone signed in reads it) and the
review queue of curators."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictStr
from sanic import Blueprint
from sanic.request import Request
from sanic.response import HTTPResponse
from sanic_ext import openapi
from sanic_ext.extensions.openapi.types import Array, String

from blueprints.achievements import achievement_filter
from blueprints.docs import CURSOR, LIMIT, PROTECTED, choice, ok, problems, query
from blueprints.schemas import ACHIEVEMENT_PAGE, ORG_UNIT, ORG_UNIT_LIST
from models.enums import SLUG_PATTERN, Category, OrgUnitKind, Status, values
from service import university
from service.achievements import queries
from service.authn import current_user, parse_uuid_or_404, require_role
from service.context import context_of
from service.errors import ValidationFailed
from service.platform.jsonutil import uuid_or_none
from service.platform.validation import Body, Query, json_body, trimmed

org_units = Blueprint("org_units", url_prefix="/org-units")
review_queue = Blueprint("review_queue", url_prefix="/review-queue")

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class OrgUnitCreate(Body):
    name: trimmed(1, 200)
    kind: Literal[OrgUnitKind.FACULTY.value, OrgUnitKind.GROUP.value]  # there is one university
    # A faculty's parent is the university, a group's a faculty (422 otherwise).
    parent_id: StrictStr = Field(json_schema_extra={"format": "uuid", "pattern": UUID_PATTERN})


class OrgUnitPatch(Body):
    name: trimmed(1, 200)


@org_units.get("/")
@openapi.summary("The university's org units: the university, its faculties and groups")
@openapi.tag("university")
@openapi.secured("bearer")
@ok(200, ORG_UNIT_LIST, "Every unit, the university first")
@problems(*PROTECTED)
async def list_units(request: Request):
    Query(request, set())
    return ORG_UNIT_LIST.response({"items": await university.list_units()})


@org_units.post("/")
@openapi.summary("Add a faculty (under the university) or a group (under a faculty) (admin)")
@openapi.tag("university")
@openapi.secured("bearer")
@ok(201, ORG_UNIT, "Created")
@problems(*PROTECTED, 403, 413, 415, 422)
@require_role("admin")
@json_body(OrgUnitCreate)
async def create_unit(request: Request, body: OrgUnitCreate):
    parent = uuid_or_none(body.parent_id)
    if parent is None:
        raise ValidationFailed([{"field": "parent_id", "message": "must be a UUID", "code": "invalid_format"}])
    unit = await university.create_unit(context_of(request), body.name, OrgUnitKind(body.kind), parent)
    return ORG_UNIT.response(unit, status=201, headers={"Location": f"/api/v1/org-units/{unit['id']}"})


@org_units.patch("/<unit_id>")
@openapi.summary("Rename a unit, the university included (admin)")
@openapi.tag("university")
@openapi.secured("bearer")
@ok(200, ORG_UNIT, "The renamed unit")
@problems(*PROTECTED, 403, 404, 413, 415, 422)
@require_role("admin")
@json_body(OrgUnitPatch, media_types=("application/json", "application/merge-patch+json"))
async def rename_unit(request: Request, unit_id: str, body: OrgUnitPatch):
    return ORG_UNIT.response(await university.rename_unit(context_of(request), parse_uuid_or_404(unit_id), body.name))


@org_units.delete("/<unit_id>")
@openapi.summary("Delete a unit without members or sub-units (admin)")
@openapi.tag("university")
@openapi.secured("bearer")
@ok(204, None, "Deleted (curator scopes on it are removed)")
@problems(*PROTECTED, 403, 404, 409)
@require_role("admin")
async def delete_unit(request: Request, unit_id: str):
    await university.delete_unit(context_of(request), parse_uuid_or_404(unit_id))
    return HTTPResponse(status=204)


@review_queue.get("/")
@openapi.summary("Pending achievements in the caller's scope, oldest submission first (curator or admin)")
@openapi.tag("university")
@openapi.secured("bearer")
@query("org_unit", String(format="uuid"), "only this unit's subtree (a unit in scope, else 404)")
@query("category", choice(*values(Category)), "educational, scientific, creative, social or sports")
@query("type", Array(String(pattern=SLUG_PATTERN, maxLength=64)), "achievement type slugs (repeat the parameter)")
@query("limit", LIMIT, "1-100 (default 20)")
@query("cursor", CURSOR, "opaque, from next_cursor")
@ok(200, ACHIEVEMENT_PAGE, "A page of the queue")
@problems(*PROTECTED, 403, 404)
@require_role("curator", "admin")
async def list_queue(request: Request):
    params = Query(request, {"org_unit", "category", "type", "limit", "cursor"}, repeatable=frozenset({"type"}))
    # The queue spans the caller's whole scope (owner=any), or one unit of it.
    filt = await achievement_filter(params, current_user(request), status=Status.PENDING, sort="submitted",
                                    org_unit=True, exclude_own=True, default_owner="any")
    result = await queries.page(request.app.ctx.cursors, filt, params.int("limit", 20, 1, 100), params.cursor())
    payload = {"items": [queries.to_json(r) for r in result.rows], "next_cursor": result.next_cursor,
               "total": result.total}
    return ACHIEVEMENT_PAGE.response(payload, headers={"Cache-Control": "no-store"})
