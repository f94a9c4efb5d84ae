"""The achievement-type catalogue: everyone signed in reads it, admins change it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictBool, StrictStr
from sanic import Blueprint
from sanic.request import Request
from sanic_ext import openapi

from blueprints.docs import PROTECTED, ok, problems
from blueprints.schemas import TYPE, TYPE_LIST
from models.enums import SLUG_PATTERN, Category, literal
from service import catalogue
from service.authn import require_role
from service.context import context_of
from service.errors import NotFound
from service.platform.validation import Body, Query, json_body, not_null, patch_changes, trimmed

bp = Blueprint("achievement_types", url_prefix="/achievement-types")



class AchievementTypeCreate(Body):
    slug: Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=SLUG_PATTERN)]
    name: trimmed(1, 200)
    category: literal(Category)
    is_active: StrictBool = True


class AchievementTypePatch(Body):
    name: trimmed(1, 200) | None = Field(None, json_schema_extra=not_null)
    is_active: StrictBool | None = Field(None, json_schema_extra=not_null)


@bp.get("/")
@openapi.summary("The achievement-type catalogue, inactive types included")
@openapi.tag("achievement-types")
@openapi.secured("bearer")
@ok(200, TYPE_LIST, "All types")
@problems(*PROTECTED)
async def list_types(request: Request):
    Query(request, set())
    return TYPE_LIST.response({"items": await catalogue.list_types()})


@bp.post("/")
@openapi.summary("Add an achievement type (admin)")
@openapi.tag("achievement-types")
@openapi.secured("bearer")
@ok(201, TYPE, "Created")
@problems(*PROTECTED, 403, 409, 413, 415, 422)
@require_role("admin")
@json_body(AchievementTypeCreate)
async def create_type(request: Request, body: AchievementTypeCreate):
    row = await catalogue.create_type(context_of(request), body.slug, body.name, body.category, body.is_active)
    return TYPE.response(row, status=201, headers={"Location": f"/api/v1/achievement-types/{row['slug']}"})


@bp.patch("/<slug>")
@openapi.summary("Rename or (de)activate an achievement type (admin)")
@openapi.tag("achievement-types")
@openapi.secured("bearer")
@ok(200, TYPE, "Updated")
@problems(*PROTECTED, 403, 404, 413, 415, 422)
@require_role("admin")
@json_body(AchievementTypePatch, media_types=("application/json", "application/merge-patch+json"))
async def update_type(request: Request, slug: str, body: AchievementTypePatch):
    if len(slug) > 64:
        raise NotFound("No such achievement type.")
    return TYPE.response(await catalogue.update_type(context_of(request), slug, patch_changes(body)))
