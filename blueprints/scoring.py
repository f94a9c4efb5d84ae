"""Levels, results, scoring rule sets, scores and the scholarship rating (API.md "S")."""

from __future__ import annotations

import asyncio
from typing import Annotated

from pydantic import AfterValidator, Field, StrictFloat, StrictInt, StrictStr, WithJsonSchema
from sanic import Blueprint
from sanic.request import Request
from sanic.response import HTTPResponse
from sanic_ext import openapi
from sanic_ext.extensions.openapi.types import Float, String

from blueprints.docs import PROTECTED, choice, ok, problems, query
from blueprints.schemas import CATALOGUE_ENTRY, CATALOGUE_LIST, RATING, RULE_SET, RULE_SET_LIST, SCORE, STUDENT_SCORE
from models import Level, Result
from models.enums import SLUG_PATTERN, Category, literal
from service import scoring
from service.achievements import exports, usecases
from service.authn import current_user, parse_uuid_or_404, require_role
from service.context import context_of
from service.errors import BadRequest, RuleError
from service.platform.validation import Body, DateStr, Query, json_body, not_null, patch_changes, trimmed
from service.university import reach_of

levels = Blueprint("levels", url_prefix="/levels")
results = Blueprint("results", url_prefix="/results")
scoring_bp = Blueprint("scoring", url_prefix="/")

Slug = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=SLUG_PATTERN)]


def _bounded(low: float, high: float, whole: bool):
    def check(value: float) -> float:
        if isinstance(value, bool):
            raise RuleError("invalid_type", "must be a number")
        if not low <= value <= high:
            raise RuleError("out_of_range", f"must be from {low:g} to {high:g}")
        if whole and value != int(value):
            raise RuleError("invalid_type", "must be a whole number")
        return int(value) if whole or value == int(value) else value
    return check


def number(low: float, high: float, *, whole: bool = False):
    """A JSON number within [low, high] (a whole one for ``whole``: 3.0 counts, as JSON Schema says)."""
    schema = {"type": "integer" if whole else "number", "minimum": low, "maximum": high}
    return Annotated[StrictInt | StrictFloat, AfterValidator(_bounded(low, high, whole)), WithJsonSchema(schema)]


Points = number(0, 1_000_000)


# --- the two catalogues ---------------------------------------------------------------------------

class LevelCreate(Body):
    slug: Slug
    name: trimmed(1, 200)
    rank: number(0, 1000, whole=True)
    is_active: bool = True


class LevelPatch(Body):
    name: trimmed(1, 200) | None = Field(None, json_schema_extra=not_null)
    rank: number(0, 1000, whole=True) | None = Field(None, json_schema_extra=not_null)
    is_active: bool | None = Field(None, json_schema_extra=not_null)


class ResultCreate(Body):
    slug: Slug
    name: trimmed(1, 200)
    is_active: bool = True


class ResultPatch(Body):
    name: trimmed(1, 200) | None = Field(None, json_schema_extra=not_null)
    is_active: bool | None = Field(None, json_schema_extra=not_null)


async def _create(request: Request, model, body) -> HTTPResponse:
    entry = await scoring.create_grade(context_of(request), model, body.model_dump())
    return CATALOGUE_ENTRY.response(entry, status=201)


async def _update(request: Request, model, slug: str, body) -> HTTPResponse:
    return CATALOGUE_ENTRY.response(await scoring.update_grade(context_of(request), model, slug, patch_changes(body)))


@levels.get("/")
@openapi.summary("The levels of events (faculty … international), inactive ones included")
@openapi.tag("scoring")
@openapi.secured("bearer")
@ok(200, CATALOGUE_LIST, "The levels, widest last")
@problems(*PROTECTED)
async def list_levels(request: Request):
    Query(request, set())
    return CATALOGUE_LIST.response({"items": await scoring.list_grades(Level)})


@levels.post("/")
@openapi.summary("Add a level (admin)")
@openapi.tag("scoring")
@openapi.secured("bearer")
@ok(201, CATALOGUE_ENTRY, "Created")
@problems(*PROTECTED, 403, 409, 413, 415, 422)
@require_role("admin")
@json_body(LevelCreate)
async def create_level(request: Request, body: LevelCreate):
    return await _create(request, Level, body)


@levels.patch("/<slug>")
@openapi.summary("Rename, re-rank or (de)activate a level (admin)")
@openapi.tag("scoring")
@openapi.secured("bearer")
@ok(200, CATALOGUE_ENTRY, "The level")
@problems(*PROTECTED, 403, 404, 413, 415, 422)
@require_role("admin")
@json_body(LevelPatch, media_types=("application/json", "application/merge-patch+json"))
async def update_level(request: Request, slug: str, body: LevelPatch):
    return await _update(request, Level, slug, body)


@results.get("/")
@openapi.summary("The results (winner, prize, participant), inactive ones included")
@openapi.tag("scoring")
@openapi.secured("bearer")
@ok(200, CATALOGUE_LIST, "The results")
@problems(*PROTECTED)
async def list_results(request: Request):
    Query(request, set())
    return CATALOGUE_LIST.response({"items": await scoring.list_grades(Result)})


@results.post("/")
@openapi.summary("Add a result (admin)")
@openapi.tag("scoring")
@openapi.secured("bearer")
@ok(201, CATALOGUE_ENTRY, "Created")
@problems(*PROTECTED, 403, 409, 413, 415, 422)
@require_role("admin")
@json_body(ResultCreate)
async def create_result(request: Request, body: ResultCreate):
    return await _create(request, Result, body)


@results.patch("/<slug>")
@openapi.summary("Rename or (de)activate a result (admin)")
@openapi.tag("scoring")
@openapi.secured("bearer")
@ok(200, CATALOGUE_ENTRY, "The result")
@problems(*PROTECTED, 403, 404, 413, 415, 422)
@require_role("admin")
@json_body(ResultPatch, media_types=("application/json", "application/merge-patch+json"))
async def update_result(request: Request, slug: str, body: ResultPatch):
    return await _update(request, Result, slug, body)


# --- rule sets ---------------------------------------------------------------------------------------

class Rule(Body):
    category: literal(Category) | None = None
    type: Slug | None = None
    level: Slug | None = None
    result: Slug | None = None
    points: Points
    max_items: number(0, 100_000, whole=True) | None = None


class RuleSetBody(Body):
    name: trimmed(1, 200)
    period_from: DateStr
    period_to: DateStr
    rules: Annotated[list[Rule], Field(min_length=1, max_length=200)]


def _rule_set_data(body: RuleSetBody) -> dict:
    return {"name": body.name, "period_from": body.period_from, "period_to": body.period_to,
            "rules": [rule.model_dump() for rule in body.rules]}


@scoring_bp.post("/scoring/rule-sets")
@openapi.summary("Create a draft rule set (admin)")
@openapi.tag("scoring")
@openapi.secured("bearer")
@ok(201, RULE_SET, "The draft")
@problems(*PROTECTED, 403, 413, 415, 422)
@require_role("admin")
@json_body(RuleSetBody)
async def create_rule_set(request: Request, body: RuleSetBody):
    saved = await scoring.save_rule_set(context_of(request), _rule_set_data(body))
    return RULE_SET.response(saved, status=201, headers={"Location": f"/api/v1/scoring/rule-sets/{saved['id']}"})


@scoring_bp.put("/scoring/rule-sets/<rule_set_id>")
@openapi.summary("Replace a draft rule set (admin); a published one never changes (409)")
@openapi.tag("scoring")
@openapi.secured("bearer")
@ok(200, RULE_SET, "The draft")
@problems(*PROTECTED, 403, 404, 409, 413, 415, 422)
@require_role("admin")
@json_body(RuleSetBody)
async def replace_rule_set(request: Request, rule_set_id: str, body: RuleSetBody):
    return RULE_SET.response(await scoring.save_rule_set(context_of(request), _rule_set_data(body),
                                                         parse_uuid_or_404(rule_set_id)))


@scoring_bp.post("/scoring/rule-sets/<rule_set_id>/publish")
@openapi.summary("Publish a rule set (admin): from now on it never changes")
@openapi.tag("scoring")
@openapi.secured("bearer")
@ok(200, RULE_SET, "The published rule set")
@problems(*PROTECTED, 403, 404)
@require_role("admin")
async def publish_rule_set(request: Request, rule_set_id: str):
    return RULE_SET.response(await scoring.publish(context_of(request), parse_uuid_or_404(rule_set_id)))


@scoring_bp.get("/scoring/rule-sets")
@openapi.summary("Rule sets (students see the published ones)")
@openapi.tag("scoring")
@openapi.secured("bearer")
@ok(200, RULE_SET_LIST, "The rule sets, newest first")
@problems(*PROTECTED)
async def list_rule_sets(request: Request):
    Query(request, set())
    return RULE_SET_LIST.response({"items": await scoring.list_rule_sets(current_user(request))})


@scoring_bp.get("/scoring/rule-sets/<rule_set_id>")
@openapi.summary("One rule set")
@openapi.tag("scoring")
@openapi.secured("bearer")
@ok(200, RULE_SET, "The rule set")
@problems(*PROTECTED, 404)
async def get_rule_set(request: Request, rule_set_id: str):
    Query(request, set())
    found = await scoring.visible_rule_set(current_user(request), parse_uuid_or_404(rule_set_id))
    return RULE_SET.response(scoring.rule_set_json(found))


# --- scores and ratings ------------------------------------------------------------------------------------

def _rule_set_param(query: Query):
    rule_set = query.uuid("rule_set")
    if rule_set is None:
        raise BadRequest("rule_set is required")
    return rule_set


@scoring_bp.get("/achievements/<achievement_id>/score")
@openapi.summary("How one achievement scores under a rule set, and why")
@openapi.tag("scoring")
@openapi.secured("bearer")
@query("rule_set", String(format="uuid"), "the rule set", required=True)
@ok(200, SCORE, "The points, the rule that gave them (0-based) or the reason for 0")
@problems(*PROTECTED, 404)
async def get_score(request: Request, achievement_id: str):
    params = Query(request, {"rule_set"})
    user, parsed = current_user(request), parse_uuid_or_404(achievement_id)
    row = await usecases.get(user, parsed)  # whoever may read the achievement
    return SCORE.response(await scoring.achievement_score(user, _rule_set_param(params), row["owner_id"], parsed))


@scoring_bp.get("/me/score")
@openapi.summary("The caller's total under a rule set, achievement by achievement")
@openapi.tag("scoring")
@openapi.secured("bearer")
@query("rule_set", String(format="uuid"), "the rule set", required=True)
@ok(200, STUDENT_SCORE, "The total and each achievement's score")
@problems(*PROTECTED, 404)
async def get_my_score(request: Request):
    params = Query(request, {"rule_set"})
    return STUDENT_SCORE.response(await scoring.my_score(current_user(request), _rule_set_param(params)))


RATING_COLUMNS = ["rank", "full_name", "org_unit", "points", *[c.value for c in Category], "counted", "eligible"]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@scoring_bp.get("/ratings")
@openapi.summary("The scholarship rating of a unit's students (curator or admin, unit in scope)")
@openapi.tag("scoring")
@openapi.secured("bearer")
@query("rule_set", String(format="uuid"), "the rule set", required=True)
@query("org_unit", String(format="uuid"), "the unit (in the caller's scope, else 404)", required=True)
@query("top_share", Float(minimum=0, maximum=1), "the share of students eligible (default 0.1)")
@query("format", choice("json", "csv", "xlsx"), "json (default), or a sheet to download")
@openapi.response(200, {"application/json": RATING.schema, "text/csv": {"type": "string"},
                        XLSX: {"type": "string", "format": "binary"}}, "The rating, highest points first")
@problems(*PROTECTED, 403, 404)
@require_role("curator", "admin")
async def get_rating(request: Request):
    params = Query(request, {"rule_set", "org_unit", "top_share", "format"})
    rule_set, unit = _rule_set_param(params), params.uuid("org_unit")
    if unit is None:
        raise BadRequest("org_unit is required")
    raw_share = params.get("top_share")
    try:
        top_share = 0.1 if raw_share is None else float(raw_share)
    except ValueError:
        raise BadRequest("top_share must be a number from 0 to 1") from None
    if not 0 <= top_share <= 1 or raw_share in ("nan", "inf"):
        raise BadRequest("top_share must be a number from 0 to 1")
    fmt = params.choice("format", ("json", "csv", "xlsx")) or "json"
    user = current_user(request)
    result = await scoring.rating(user, await reach_of(user), rule_set, unit, top_share)
    if fmt == "json":
        return RATING.response(result, headers={"Cache-Control": "no-store"})
    units = await scoring.names_of_units()
    rows = [[item["rank"], item["full_name"], units.get(item["org_unit_id"], ""), item["points"],
             *[item["by_category"][c.value] for c in Category], item["counted"], "yes" if item["eligible"] else ""]
            for item in result["items"]]
    headers = {"Content-Disposition": f'attachment; filename="rating.{fmt}"', "Cache-Control": "no-store"}
    if fmt == "csv":
        body = exports.csv_lines([RATING_COLUMNS, *[[exports.neutralise(v) for v in row] for row in rows]])
        return HTTPResponse(body, headers=headers, content_type="text/csv; charset=utf-8")
    sheet = await asyncio.get_running_loop().run_in_executor(None, exports.xlsx_sheet, "Rating", RATING_COLUMNS, rows)
    return HTTPResponse(sheet, headers=headers, content_type=XLSX)


