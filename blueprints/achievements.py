"""Achievements: CRUD, listing, batch import, export, stats and review."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field, StrictStr
from sanic import Blueprint
from sanic.request import Request
from sanic.response import HTTPResponse
from sanic_ext import openapi
from sanic_ext.extensions.openapi.types import Array, String

from blueprints.docs import CURSOR, DATE, LIMIT, PROTECTED, choice, ok, problems, query, text
from blueprints.schemas import ACHIEVEMENT, ACHIEVEMENT_PAGE, BATCH_RESULT, EXPORT_JSON, REVIEW_HISTORY, STATS
from models.enums import SLUG_PATTERN, Category, Decision, Status, literal, values
from service.achievements import exports, queries, rules, usecases
from service.authn import current_user, parse_uuid_or_404, require_role
from service.context import context_of
from service.errors import BadRequest
from service.platform.edge import body_limit
from service.platform.jsonutil import uuid_or_none
from service.platform.validation import (
    NOT_BLANK_TEXT,
    Body,
    DateStr,
    Query,
    Text,
    json_body,
    not_null,
    null_errors,
    patch_changes,
    trimmed,
)

bp = Blueprint("achievements", url_prefix="/achievements")

BATCH_LIMIT = 8 * 1024 * 1024
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
EXPORT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json", "xlsx": XLSX}
MERGE_PATCH = ("application/json", "application/merge-patch+json")
NULLABLE = frozenset({"proof_url", "description", "level", "result"})
# Must also name an active type of the catalogue (422 otherwise).
Slug = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=SLUG_PATTERN)]
AchievementDate = Annotated[DateStr, AfterValidator(rules.check_date)]
# Also: http or https only, no user:password, a public host (422 otherwise).
ProofUrl = Annotated[StrictStr, AfterValidator(rules.check_proof_url),
                     Field(json_schema_extra={"format": "uri", "maxLength": 2048})]
Description = Annotated[Text, Field(max_length=4000)]


class AchievementCreate(Body):
    title: trimmed(1, 200)
    type: Slug
    # Optional: an active level and result of the catalogues (422 otherwise).
    level: Slug | None = None
    result: Slug | None = None
    date: AchievementDate
    proof_url: ProofUrl | None = None
    description: Description | None = None


class AchievementPatch(Body):
    title: trimmed(1, 200) | None = Field(None, json_schema_extra=not_null)
    type: Slug | None = Field(None, json_schema_extra=not_null)
    level: Slug | None = None
    result: Slug | None = None
    date: AchievementDate | None = Field(None, json_schema_extra=not_null)
    proof_url: ProofUrl | None = None
    description: Description | None = None


class AchievementBatch(Body):
    items: Annotated[list[AchievementCreate], Field(min_length=1, max_length=5000)]


class ReviewCreate(Body):
    # A rejection needs a reason (422 otherwise): the document says so too.
    model_config = ConfigDict(json_schema_extra={
        "if": {"properties": {"decision": {"const": "rejected"}}},
        "then": {"required": ["comment"], "properties": {"comment": {"type": "string", "pattern": NOT_BLANK_TEXT}}},
    })

    decision: literal(Decision)
    comment: Annotated[Text, Field(max_length=2000)] | None = None


OWNER = String(pattern=r"^(any|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$")
OWNER_DESCRIPTION = "staff only: a user id or 'any'"


def if_match(required: bool = False):
    description = ("the ETag of the version the reviewer saw (required; `*` is refused: 428)" if required
                   else "write only if the achievement is still this version (else 412)")
    return openapi.parameter("If-Match", String(), "header", required=required,
                             description=description)


IF_NONE_MATCH_WRITE = openapi.parameter(
    "If-None-Match", String(), "header",
    description="a write whose value matches the current version (or is `*`) is refused with 412")
IF_NONE_MATCH_READ = openapi.parameter(
    "If-None-Match", String(), "header", description="an ETag from an earlier answer: 304 while it is current")


def _list_parameters(handler):
    for name, schema, description in [
        ("type", Array(String(pattern=SLUG_PATTERN, maxLength=64)), "achievement type slugs (repeat the parameter)"),
        ("category", choice(*values(Category)), "educational, scientific, creative, social or sports"),
        ("status", choice(*values(Status)), "pending, approved or rejected"),
        ("date_from", DATE, "inclusive, YYYY-MM-DD"),
        ("date_to", DATE, "inclusive, YYYY-MM-DD"),
        ("q", text(200), "case-insensitive text in the title"),
        ("sort", choice(*queries.SORT_CHOICES), "date, -date (default), title, -title, created_at, -created_at"),
        ("limit", LIMIT, "1-100 (default 20)"),
        ("cursor", CURSOR, "opaque, from next_cursor"),
        ("owner", OWNER, OWNER_DESCRIPTION),
    ]:
        handler = query(name, schema, description)(handler)
    return handler


def _location(row) -> str:
    return f"/api/v1/achievements/{row['id']}"


def _item_response(request: Request, row, status: int = 200) -> HTTPResponse:
    etag = rules.etag_of(row["id"], row["version"])
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if status == 200 and rules.none_match(request.headers.getone("if-none-match", None), etag):
        return HTTPResponse(status=304, headers=headers)
    if status == 201:
        headers["Location"] = _location(row)
    return ACHIEVEMENT.response(queries.to_json(row), status=status, headers=headers)


def _preconditions(request: Request) -> rules.Preconditions:
    headers = request.headers
    return rules.Preconditions(headers.getone("if-match", None), headers.getone("if-none-match", None))


def _quota(request: Request) -> int:
    return request.app.ctx.settings.max_achievements_per_user


async def _type_checks(request: Request, data: dict, failed: set[str]) -> list[dict[str, str]]:
    """The catalogue errors of a body that failed elsewhere, so one 422 lists them all. An
    edit may keep its achievement's current type even after the type was deactivated."""
    slug = data.get("type")
    if "type" in failed or not isinstance(slug, str):
        return []
    current = None
    achievement_id = request.match_info.get("achievement_id")
    if achievement_id and request.method in ("PUT", "PATCH"):
        parsed = uuid_or_none(achievement_id)
        current = await queries.current_type_of(current_user(request), parsed) if parsed else None
    return await queries.type_errors({"type": slug}, current_type=current)


async def _batch_type_checks(request: Request, data: dict, failed: set[str]) -> list[dict[str, str]]:
    items = data.get("items")
    if not isinstance(items, list) or len(items) > 5000:
        return []
    slugs = {f"items[{i}].type": item["type"] for i, item in enumerate(items)
             if isinstance(item, dict) and isinstance(item.get("type"), str)
             and f"items[{i}].type" not in failed}
    return await queries.type_errors(slugs)


def _patch_rules(body: AchievementPatch) -> list[dict[str, str]]:
    return null_errors(body, NULLABLE)


def _review_rules(body: ReviewCreate) -> list[dict[str, str]]:
    if body.decision == "rejected" and not (body.comment or "").strip():
        return [{"field": "comment", "message": "is required when rejecting", "code": "required"}]
    return []


LIST_PARAMS = {"type", "category", "status", "date_from", "date_to", "q", "sort", "limit", "cursor", "owner"}


async def _filter(request: Request, extra: set[str] = frozenset()) -> tuple[Query, queries.AchievementFilter]:
    """The list's query string as a filter (400 for anything unknown or malformed); whose
    achievements it covers is the use cases' decision (service.achievements.usecases.list_scope)."""
    query = Query(request, LIST_PARAMS | extra, repeatable=frozenset({"type"}))
    return query, await achievement_filter(query, current_user(request))


async def achievement_filter(query: Query, user, *, status: Status | None = None, sort: str | None = None,
                             org_unit: bool = False, exclude_own: bool = False,
                             default_owner: str | None = None) -> queries.AchievementFilter:
    owner = query.get("owner")
    if owner is None:
        owner = default_owner
    requested = None if owner is None else "any" if owner == "any" else query.uuid("owner")
    owner_id, reach = await usecases.list_scope(user, requested, query.uuid("org_unit") if org_unit else None)
    types = tuple(query.all("type"))
    for slug in types:
        if len(slug) > 64 or not re.fullmatch(SLUG_PATTERN, slug):
            raise BadRequest("type must be an achievement type slug")
    category = query.choice("category", values(Category))
    if status is None:
        chosen = query.choice("status", values(Status))
        status = Status(chosen) if chosen else None
    return queries.AchievementFilter(
        owner_id=owner_id, types=types, category=Category(category) if category else None, status=status,
        date_from=query.date("date_from"), date_to=query.date("date_to"), q=query.text("q", 200),
        sort=sort or query.choice("sort", queries.SORT_CHOICES) or "-date", reach=reach,
        exclude_owner_id=user.id if exclude_own else None,
        owner_name=user.full_name if owner_id == user.id else None)


@bp.get("/")
@openapi.summary("List achievements (the caller's own; staff may pass owner)")
@openapi.tag("achievements")
@openapi.secured("bearer")
@_list_parameters
@IF_NONE_MATCH_READ
@ok(200, ACHIEVEMENT_PAGE, "A page of achievements")
@openapi.response(304, description="Not modified (If-None-Match)")
@problems(*PROTECTED, 403)
async def list_achievements(request: Request):
    query, filt = await _filter(request)
    limit = query.int("limit", 20, 1, 100)
    result = await queries.page(request.app.ctx.cursors, filt, limit, query.cursor())
    payload = ACHIEVEMENT_PAGE.dump({"items": [queries.to_json(r) for r in result.rows],
                                     "next_cursor": result.next_cursor, "total": result.total})
    etag = rules.body_etag(payload)
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if rules.none_match(request.headers.getone("if-none-match", None), etag):
        return HTTPResponse(status=304, headers=headers)
    return HTTPResponse(payload, headers=headers, content_type="application/json")


@bp.post("/")
@openapi.summary("Record an achievement")
@openapi.tag("achievements")
@openapi.secured("bearer")
@ok(201, ACHIEVEMENT, "Created; Location and ETag headers point at it")
@problems(*PROTECTED, 409, 413, 415, 422)
@json_body(AchievementCreate, checks=_type_checks)
async def create_achievement(request: Request, body: AchievementCreate):
    row = await usecases.create(context_of(request), current_user(request), body.model_dump(),
                                    _quota(request))
    return _item_response(request, row, status=201)


@bp.post("/batch", **body_limit(BATCH_LIMIT))
@openapi.summary("Import 1-5000 achievements at once, all or nothing")
@openapi.tag("achievements")
@openapi.secured("bearer")
@ok(201, BATCH_RESULT, "All items were created; ids in item order")
@problems(*PROTECTED, 409, 413, 415, 422)
@json_body(AchievementBatch, checks=_batch_type_checks)
async def create_batch(request: Request, body: AchievementBatch):
    ids = await usecases.create_batch(context_of(request), current_user(request),
                                          [item.model_dump() for item in body.items], _quota(request))
    return BATCH_RESULT.response({"created": len(ids), "ids": ids}, status=201)


@bp.get("/export")
@openapi.summary("Download achievements as CSV, JSON or an Excel workbook (list filters apply)")
@openapi.tag("achievements")
@openapi.secured("bearer")
@query("format", choice(*EXPORT_TYPES), "csv (default), json or xlsx")
@_list_parameters
@openapi.response(200, {"text/csv": {"type": "string"}, "application/json": EXPORT_JSON.schema,
                        XLSX: {"type": "string", "format": "binary"}},
                  "The file, as an attachment")
@problems(*PROTECTED, 403)
async def export(request: Request):
    query, filt = await _filter(request, {"format"})
    fmt = query.choice("format", tuple(EXPORT_TYPES)) or "csv"
    # Checked as the list checks them, though the export itself is never paged.
    query.int("limit", 20, 1, 100)
    query.cursor()
    cursors = request.app.ctx.cursors
    headers = {"Content-Disposition": f'attachment; filename="achievements.{fmt}"', "Cache-Control": "no-store"}
    if request.method == "HEAD":  # the headers of the download, without reading a row
        return HTTPResponse(status=200, headers=headers, content_type=EXPORT_TYPES[fmt])
    if fmt == "xlsx":
        rows = [row async for page in queries.all_pages(cursors, filt) for row in page]
        workbook = await asyncio.get_running_loop().run_in_executor(None, exports.xlsx_workbook, rows)
        return HTTPResponse(workbook, headers=headers, content_type=EXPORT_TYPES[fmt])
    response = await request.respond(content_type=EXPORT_TYPES[fmt], headers=headers)
    if fmt == "csv":
        await response.send(exports.csv_lines([list(exports.COLUMNS)]))
        async for rows in queries.all_pages(cursors, filt):
            await response.send(exports.csv_lines([exports.csv_cells(r) for r in rows]))
    else:
        await response.send(b'{"items":[')
        separator = b""
        async for rows in queries.all_pages(cursors, filt):
            await response.send(separator + b",".join(ACHIEVEMENT.dump(queries.to_json(r)) for r in rows))
            separator = b","
        await response.send(b"]}")
    await response.eof()


@bp.get("/stats")
@openapi.summary("Counts by category, status and year")
@openapi.tag("achievements")
@openapi.secured("bearer")
@query("owner", OWNER, OWNER_DESCRIPTION)
@query("org_unit", String(format="uuid"), "staff only: count the students of this unit's subtree (in scope)")
@ok(200, STATS, "The counts")
@problems(*PROTECTED, 403, 404)
async def stats(request: Request):
    query = Query(request, {"owner", "org_unit"})
    filt = await achievement_filter(query, current_user(request), org_unit=True)
    return STATS.response(await queries.stats(filt), headers={"Cache-Control": "no-store"})


@bp.get("/<achievement_id>/reviews")
@openapi.summary("The review history, newest first (whoever may read the achievement)")
@openapi.tag("achievements")
@openapi.secured("bearer")
@ok(200, REVIEW_HISTORY, "Every decision with the version it judged")
@problems(*PROTECTED, 404)
async def list_reviews(request: Request, achievement_id: str):
    Query(request, set())
    items = await usecases.reviews(current_user(request), parse_uuid_or_404(achievement_id))
    return REVIEW_HISTORY.response({"items": items}, headers={"Cache-Control": "no-store"})


@bp.get("/<achievement_id>")
@openapi.summary("One achievement")
@openapi.tag("achievements")
@openapi.secured("bearer")
@IF_NONE_MATCH_READ
@ok(200, ACHIEVEMENT, "The achievement, with its ETag")
@openapi.response(304, description="Not modified (If-None-Match)")
@problems(*PROTECTED, 404)
async def get_achievement(request: Request, achievement_id: str):
    Query(request, set())
    row = await usecases.get(current_user(request), parse_uuid_or_404(achievement_id))
    return _item_response(request, row)


@bp.put("/<achievement_id>")
@openapi.summary("Replace the writable fields (owner only)")
@openapi.tag("achievements")
@openapi.secured("bearer")
@if_match()
@IF_NONE_MATCH_WRITE
@ok(200, ACHIEVEMENT, "The updated achievement")
@problems(*PROTECTED, 403, 404, 409, 412, 413, 415, 422)
@json_body(AchievementCreate, checks=_type_checks)
async def replace_achievement(request: Request, achievement_id: str, body: AchievementCreate):
    changes = {"proof_url": None, "description": None, "level": None, "result": None, **body.model_dump()}
    row = await usecases.update(context_of(request), current_user(request), parse_uuid_or_404(achievement_id),
                                    changes, _preconditions(request))
    return _item_response(request, row, status=200)


@bp.patch("/<achievement_id>")
@openapi.summary("Change some writable fields (owner only)")
@openapi.tag("achievements")
@openapi.secured("bearer")
@if_match()
@IF_NONE_MATCH_WRITE
@ok(200, ACHIEVEMENT, "The updated achievement")
@problems(*PROTECTED, 403, 404, 409, 412, 413, 415, 422)
@json_body(AchievementPatch, media_types=MERGE_PATCH, rules=_patch_rules, checks=_type_checks)
async def patch_achievement(request: Request, achievement_id: str, body: AchievementPatch):
    changes = patch_changes(body, nullable=NULLABLE)
    row = await usecases.update(context_of(request), current_user(request), parse_uuid_or_404(achievement_id),
                                    changes, _preconditions(request))
    return _item_response(request, row, status=200)


@bp.delete("/<achievement_id>")
@openapi.summary("Delete (owner or admin)")
@openapi.tag("achievements")
@openapi.secured("bearer")
@if_match()
@IF_NONE_MATCH_WRITE
@ok(204, None, "Deleted")
@problems(*PROTECTED, 403, 404, 412)
async def delete_achievement(request: Request, achievement_id: str):
    await usecases.delete(context_of(request), current_user(request), parse_uuid_or_404(achievement_id),
                              _preconditions(request))
    return HTTPResponse(status=204)


@bp.post("/<achievement_id>/review")
@openapi.summary("Approve or reject (curator or admin; never one's own)")
@openapi.tag("achievements")
@openapi.secured("bearer")
@if_match(required=True)
@IF_NONE_MATCH_WRITE
@ok(200, ACHIEVEMENT, "The reviewed achievement")
@problems(*PROTECTED, 403, 404, 412, 413, 415, 422, 428)
@require_role("curator", "admin")
@json_body(ReviewCreate, rules=_review_rules)
async def review_achievement(request: Request, achievement_id: str, body: ReviewCreate):
    comment = body.comment.strip() if body.comment else None
    row = await usecases.review(context_of(request), current_user(request), parse_uuid_or_404(achievement_id),
                                    Decision(body.decision), comment or None, _preconditions(request))
    return _item_response(request, row, status=200)
