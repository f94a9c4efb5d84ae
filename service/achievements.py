"""Use cases of the achievements blueprint: rules, authorization, transactions, audit."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tortoise.exceptions import IntegrityError

from service import audit
from service.context import CurrentUser, RequestContext
from service.database import connection, fetch, transaction
from service.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    QuotaExceeded,
    ValidationFailed,
)
from service.jsonutil import iso
from service.pagination import Cursors, scope_of
from service.validation import Query

CATEGORIES = ("educational", "scientific", "creative", "social", "sports")
STATUSES = ("pending", "approved", "rejected")
SORTS = {"date": "date", "title": "title_key", "created_at": "created_at"}
SORT_CHOICES = ("date", "-date", "title", "-title", "created_at", "-created_at")
LIST_PARAMS = {"type", "category", "status", "date_from", "date_to", "q", "sort", "limit", "cursor", "owner"}
MIN_DATE = dt.date(1900, 1, 1)
CONTENT_FIELDS = ("title", "type", "date", "proof_url", "description")

COLUMNS = (
    "id, owner_id, title, type, category, date, proof_url, description, status, review_decision, "
    "review_comment, reviewer_id, reviewed_at, version, created_at, updated_at"
)


# --- representation ---------------------------------------------------------------------------

def to_json(row: Mapping[str, Any]) -> dict[str, Any]:
    review = None
    if row["review_decision"]:
        review = {
            "decision": row["review_decision"],
            "comment": row["review_comment"],
            "reviewer_id": str(row["reviewer_id"]) if row["reviewer_id"] else None,
            "reviewed_at": iso(row["reviewed_at"]),
        }
    return {
        "id": str(row["id"]),
        "owner_id": str(row["owner_id"]),
        "title": row["title"],
        "type": row["type"],
        "category": row["category"],
        "date": row["date"].isoformat(),
        "proof_url": row["proof_url"],
        "description": row["description"],
        "status": row["status"],
        "review": review,
        "version": row["version"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def etag_of(row: Mapping[str, Any]) -> str:
    return f'"{row["id"]}.{row["version"]}"'


def body_etag(payload: bytes) -> str:
    return '"' + hashlib.sha256(payload).hexdigest()[:32] + '"'


def etag_matches(header: str | None, etag: str) -> bool:
    """Strong comparison for If-Match (RFC 9110 13.1.1); ``*`` matches any current entity."""
    if header is None:
        return True
    candidates = [c.strip() for c in header.split(",")]
    return "*" in candidates or etag in candidates


def none_match(header: str | None, etag: str) -> bool:
    """True when If-None-Match names the current entity (weak comparison)."""
    if not header:
        return False
    candidates = [c.strip().removeprefix("W/") for c in header.split(",")]
    return "*" in candidates or etag in candidates


@dataclass(frozen=True)
class Preconditions:
    """What a conditional write (RFC 9110 13.1) asks of the current version."""

    if_match: str | None = None
    if_none_match: str | None = None

    def check(self, row: Mapping[str, Any], *, require_match: bool = False) -> None:
        """412 when a precondition fails (If-None-Match that matches, ``*`` included, fails
        a write), 428 when ``If-Match`` is required and missing; nothing is written then."""
        etag = etag_of(row)
        if require_match and (self.if_match is None or self.if_match.strip() == "*"):
            # "*" names no version: it would let a curator judge content they never saw.
            raise PreconditionRequired("Send If-Match with the ETag of the version you reviewed.")
        if not etag_matches(self.if_match, etag) or none_match(self.if_none_match, etag):
            raise PreconditionFailed()


# --- field rules shared with validation ---------------------------------------------------------

_HOST_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)


def check_proof_url(value: str) -> str:
    """Absolute http(s) URL, no credentials, no local or private host, at most 2048 chars."""
    if len(value) > 2048:
        raise ValueError("must be at most 2048 characters")
    if value != value.strip() or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError("must be a valid absolute URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("must be an http or https URL")
    if not parts.netloc or not parts.hostname:
        raise ValueError("must be an absolute URL with a host")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise ValueError("must not contain a user name or password")
    if port == 0:
        raise ValueError("must be a valid absolute URL")
    host = parts.hostname.rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost") or host.endswith(".local"):
        raise ValueError("must point to a public host")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        labels = host.split(".")
        if host.replace(".", "").isdigit() or host.startswith("0x") or not all(
            _HOST_LABEL.match(label) or label.startswith("xn--") for label in labels
        ):
            raise ValueError("must have a valid host name") from None
        if len(labels) < 2:
            raise ValueError("must point to a public host") from None
    else:
        if not address.is_global:
            raise ValueError("must point to a public host")
    return value


def check_date(value: dt.date) -> dt.date:
    # "Today" anywhere on Earth: a date is in the future only past UTC+14.
    latest = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=14)).date()
    if value < MIN_DATE:
        raise ValueError("must not be before 1900-01-01")
    if value > latest:
        raise ValueError("must not be in the future")
    return value


# --- types --------------------------------------------------------------------------------------

async def active_types(conn=None) -> dict[str, str]:
    rows = await (conn or connection()).execute_query_dict(
        "SELECT slug, category FROM achievement_types WHERE is_active")
    return {r["slug"]: r["category"] for r in rows}


async def _category_for(conn, slug: str, current_type: str | None = None) -> str:
    rows = await conn.execute_query_dict(
        "SELECT category, is_active FROM achievement_types WHERE slug = $1", [slug])
    error = _type_error("type", rows[0]["is_active"] if rows else None, slug == current_type)
    if error:
        raise ValidationFailed([error])
    return rows[0]["category"]


def _type_error(field: str, is_active: bool | None, is_current: bool = False) -> dict[str, str] | None:
    """The error for a type slug that is unknown (``is_active`` None) or inactive; an
    achievement may keep its current type after the type was deactivated."""
    if is_active is None:
        return {"field": field, "message": "is not a known achievement type", "code": "unknown_type"}
    if not is_active and not is_current:
        return {"field": field, "message": "is not an active achievement type", "code": "inactive_type"}
    return None


async def type_errors(slugs: Mapping[str, str], current_type: str | None = None) -> list[dict[str, str]]:
    """Errors for the type slugs of ``slugs`` (field path -> slug), in one query."""
    if not slugs:
        return []
    rows = await fetch("SELECT slug, is_active FROM achievement_types WHERE slug = ANY($1::text[])",
                       sorted(set(slugs.values())))
    active = {row["slug"]: row["is_active"] for row in rows}
    errors = [_type_error(field, active.get(slug), slug == current_type) for field, slug in slugs.items()]
    return [error for error in errors if error]


async def current_type_of(user: CurrentUser, achievement_id: uuid.UUID) -> str | None:
    """The type of the caller's own achievement (None for anyone else's: nothing leaks)."""
    rows = await fetch("SELECT type FROM achievements WHERE id = $1 AND owner_id = $2", achievement_id, user.id)
    return rows[0]["type"] if rows else None


# --- loading with object-level authorization -----------------------------------------------------

BY_ID = f"SELECT {COLUMNS} FROM achievements WHERE id = $1"


async def _load(conn, achievement_id: uuid.UUID, *, lock: bool = False) -> dict[str, Any] | None:
    rows = await conn.execute_query_dict(BY_ID + (" FOR UPDATE" if lock else ""), [achievement_id])
    return rows[0] if rows else None


def authorize(user: CurrentUser, row: Mapping[str, Any] | None, action: str) -> Mapping[str, Any]:
    """The one place that decides who may do what with an achievement.

    Students never learn that someone else's achievement exists (404); staff, who may
    read everything, get 403 for what their role may not do to it.
    """
    if row is None:
        raise NotFound("No such achievement.")
    owner = row["owner_id"] == user.id
    if owner:
        if action == "review":
            raise _denied(Forbidden("Nobody reviews their own achievement."), "own_review")
        return row
    if not user.is_staff:
        raise _denied(NotFound("No such achievement."), "not_owner")
    if action == "read" or action == "review":
        return row
    if action == "delete" and user.role == "admin":
        return row
    raise _denied(Forbidden("Only the owner may change this achievement."), "not_owner")


def _denied(error, reason: str):
    error.denied_reason = reason
    return error


async def get(user: CurrentUser, achievement_id: uuid.UUID) -> Mapping[str, Any]:
    rows = await fetch(BY_ID, achievement_id)
    return authorize(user, rows[0] if rows else None, "read")


# --- create, update, delete ---------------------------------------------------------------------

async def _existing_id(conn, owner_id, type_, date, title) -> uuid.UUID | None:
    rows = await conn.execute_query_dict(
        "SELECT id FROM achievements WHERE owner_id = $1 AND type = $2 AND date = $3 "
        "AND title_key = lower(btrim($4))", [owner_id, type_, date, title])
    return rows[0]["id"] if rows else None


async def create(ctx: RequestContext, user: CurrentUser, data: dict[str, Any], quota: int) -> dict[str, Any]:
    async with transaction() as conn:
        # The category comes from the (active) type and the quota is checked in the same
        # statement: one round trip. (The count is kept by triggers in achievement_counts.
        # Creates of one user running at the same moment may each see the count before the
        # others: the quota can be passed by at most that many rows, which the per-user request
        # limit and the pool size bound. A batch locks instead.)
        rows = await conn.execute_query_dict(
            f"INSERT INTO achievements (id, owner_id, title, type, category, date, proof_url, description) "
            f"SELECT $1, $2, $3, t.slug, t.category, $5, $6, $7 FROM achievement_types t "
            f"WHERE t.slug = $4 AND t.is_active "
            f"AND (SELECT coalesce(sum(n), 0) FROM achievement_counts WHERE owner_id = $2) < $8 "
            f"ON CONFLICT (owner_id, type, date, title_key) DO NOTHING RETURNING {COLUMNS}",
            [uuid.uuid4(), user.id, data["title"], data["type"], data["date"],
             data.get("proof_url"), data.get("description"), quota])
        if not rows:
            await _category_for(conn, data["type"])  # 422 when the type is unknown or inactive
            existing = await _existing_id(conn, user.id, data["type"], data["date"], data["title"])
            if existing is not None:
                raise Conflict("You already recorded this achievement.", existing_id=str(existing),
                               code="duplicate_achievement")
            raise QuotaExceeded(quota)
        row = rows[0]
        await audit.record(conn, ctx, "achievement.created", target_type="achievement", target_id=row["id"])
    return row


async def update(ctx: RequestContext, user: CurrentUser, achievement_id: uuid.UUID, changes: dict[str, Any],
                 preconditions: Preconditions) -> dict[str, Any]:
    """Apply ``changes`` (the writable fields to set) for the owner."""
    try:
        async with transaction() as conn:
            row = authorize(user, await _load(conn, achievement_id, lock=True), "edit")
            preconditions.check(row)
            new = {f: changes.get(f, row[f]) for f in CONTENT_FIELDS}
            changed = [f for f in CONTENT_FIELDS if new[f] != row[f]]
            if not changed:
                return row
            category = row["category"]
            if "type" in changed:
                category = await _category_for(conn, new["type"], current_type=row["type"])
            if {"title", "type", "date"} & set(changed):
                existing = await _existing_id(conn, user.id, new["type"], new["date"], new["title"])
                if existing is not None and existing != row["id"]:
                    raise Conflict("You already recorded this achievement.", existing_id=str(existing),
                                   code="duplicate_achievement")
            rows = await conn.execute_query_dict(
                "UPDATE achievements SET title = $2, type = $3, category = $4, date = $5, proof_url = $6, "
                "description = $7, status = 'pending', review_decision = NULL, review_comment = NULL, "
                "reviewer_id = NULL, reviewed_at = NULL, version = version + 1, updated_at = now() "
                f"WHERE id = $1 RETURNING {COLUMNS}",
                [row["id"], new["title"], new["type"], category, new["date"], new["proof_url"],
                 new["description"]])
            details = {"fields": changed}
            if row["status"] != "pending":
                details["status"] = [row["status"], "pending"]
            await audit.record(conn, ctx, "achievement.updated", target_type="achievement",
                               target_id=row["id"], details=details)
            return rows[0]
    except IntegrityError as exc:
        if "achievements_dedup_key" not in str(exc):
            raise
        existing = await _existing_id(connection(), user.id, changes.get("type"), changes.get("date"),
                                      changes.get("title"))
        raise Conflict("You already recorded this achievement.", code="duplicate_achievement",
                       existing_id=str(existing) if existing else None) from None


async def delete(ctx: RequestContext, user: CurrentUser, achievement_id: uuid.UUID,
                 preconditions: Preconditions) -> None:
    async with transaction() as conn:
        row = authorize(user, await _load(conn, achievement_id, lock=True), "delete")
        preconditions.check(row)
        await conn.execute_query("DELETE FROM achievements WHERE id = $1", [row["id"]])
        await audit.record(conn, ctx, "achievement.deleted", target_type="achievement", target_id=row["id"],
                           details={"owner_id": str(row["owner_id"]), "title": row["title"][:200]})


async def review(ctx: RequestContext, user: CurrentUser, achievement_id: uuid.UUID, decision: str,
                 comment: str | None, preconditions: Preconditions) -> dict[str, Any]:
    """Judge the version the reviewer saw: If-Match is required (428 without it)."""
    async with transaction() as conn:
        row = authorize(user, await _load(conn, achievement_id, lock=True), "review")
        preconditions.check(row, require_match=True)
        rows = await conn.execute_query_dict(
            "UPDATE achievements SET status = $2, review_decision = $2, review_comment = $3, reviewer_id = $4, "
            "reviewed_at = now(), version = version + 1, updated_at = now() "
            f"WHERE id = $1 RETURNING {COLUMNS}", [row["id"], decision, comment, user.id])
        await audit.record(conn, ctx, "achievement.reviewed", target_type="achievement", target_id=row["id"],
                           details={"decision": decision, "status": [row["status"], decision],
                                    "owner_id": str(row["owner_id"])})
    return rows[0]


# --- batch --------------------------------------------------------------------------------------

async def create_batch(ctx: RequestContext, user: CurrentUser, items: list[dict[str, Any]],
                       quota: int) -> list[str]:
    """All-or-nothing import: one validation pass, one duplicate query, one INSERT."""
    errors = await type_errors({f"items[{i}].type": item["type"] for i, item in enumerate(items)})
    if errors:
        raise ValidationFailed(errors)
    types = await active_types()
    ids = [uuid.uuid4() for _ in items]
    async with transaction() as conn:
        # One import at a time per user, so the quota holds against concurrent imports.
        await conn.execute_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [str(user.id)])
        # Title keys by the database's own case rule (Python's lower() differs: final sigma).
        keys = await conn.execute_query_dict(
            "SELECT t.idx, lower(btrim(t.title)) AS title_key FROM unnest($1::text[], $2::int[]) "
            "AS t(title, idx) ORDER BY t.idx",
            [[i["title"] for i in items], list(range(len(items)))])
        first_seen: dict[tuple, int] = {}
        duplicates: set[int] = set()
        for item, key_row in zip(items, keys, strict=True):
            key = (item["type"], item["date"], key_row["title_key"])
            index = key_row["idx"]
            if key in first_seen:
                duplicates.update((first_seen[key], index))
            else:
                first_seen[key] = index
        clashes = await conn.execute_query_dict(
            "SELECT t.idx, a.id FROM unnest($2::text[], $3::date[], $4::text[], $5::int[]) "
            "AS t(type, date, title, idx) JOIN achievements a ON a.owner_id = $1 AND a.type = t.type "
            "AND a.date = t.date AND a.title_key = lower(btrim(t.title)) ORDER BY t.idx",
            [user.id, [i["type"] for i in items], [i["date"] for i in items], [i["title"] for i in items],
             list(range(len(items)))])
        if duplicates or clashes:
            existing = {row["idx"]: str(row["id"]) for row in clashes}
            raise Conflict(
                "Some items already exist or repeat each other; nothing was imported.",
                code="duplicate_achievement",
                duplicates=sorted(duplicates | set(existing)),
                existing_ids=[existing[i] for i in sorted(existing)],
            )
        held = await conn.execute_query_dict(
            "SELECT coalesce(sum(n), 0) AS n FROM achievement_counts WHERE owner_id = $1", [user.id])
        if held[0]["n"] + len(items) > quota:
            raise QuotaExceeded(quota)
        inserted = await conn.execute_query_dict(
            "INSERT INTO achievements (id, owner_id, title, type, category, date, proof_url, description) "
            "SELECT t.id, $1, t.title, t.type, t.category, t.date, t.proof_url, t.description FROM unnest("
            "$2::uuid[], $3::text[], $4::text[], $5::text[], $6::date[], $7::text[], $8::text[]) "
            "AS t(id, title, type, category, date, proof_url, description) "
            "ON CONFLICT (owner_id, type, date, title_key) DO NOTHING RETURNING id",
            [user.id, ids, [i["title"] for i in items], [i["type"] for i in items],
             [types[i["type"]] for i in items], [i["date"] for i in items],
             [i.get("proof_url") for i in items], [i.get("description") for i in items]])
        if len(inserted) != len(items):  # a concurrent insert won a race: undo everything
            raise Conflict("Some items were recorded concurrently; nothing was imported.",
                           code="duplicate_achievement", duplicates=[])
        await audit.record(conn, ctx, "achievement.batch_created", target_type="user", target_id=user.id,
                           details={"count": len(items)})
    return [str(i) for i in ids]


# --- listing, export, stats ---------------------------------------------------------------------

@dataclass
class AchievementFilter:
    owner_id: uuid.UUID | None
    types: list[str] = field(default_factory=list)
    category: str | None = None
    status: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    q: str | None = None
    sort: str = "-date"

    def where(self) -> tuple[str, list[Any]]:
        clauses, params = [], []

        def add(template: str, value: Any) -> None:
            params.append(value)
            clauses.append(template.format(f"${len(params)}"))

        if self.owner_id is not None:
            add("owner_id = {}", self.owner_id)
        if self.types:
            add("type = ANY({}::text[])", self.types)
        if self.category:
            add("category = {}", self.category)
        if self.status:
            add("status = {}", self.status)
        if self.date_from:
            add("date >= {}", self.date_from)
        if self.date_to:
            add("date <= {}", self.date_to)
        if self.q:
            escaped = self.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            add("title_key LIKE lower({})", f"%{escaped}%")  # the database's case rule, as title_key
        return (" AND ".join(clauses) or "TRUE"), params

    def scope(self) -> str:
        return scope_of(str(self.owner_id), sorted(self.types), self.category, self.status,
                        str(self.date_from), str(self.date_to), self.q, self.sort)


def filter_from_query(query: Query, user: CurrentUser) -> AchievementFilter:
    owner_id: uuid.UUID | None = user.id
    owner = query.get("owner")
    if owner is not None:
        if not user.is_staff:
            raise _denied(Forbidden("Only curators and admins may list other users' achievements."),
                          "owner_filter")
        owner_id = None if owner == "any" else query.uuid("owner")
    types = query.all("type")
    for slug in types:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", slug):
            raise BadRequest("type must be an achievement type slug")
    date_from, date_to = query.date("date_from"), query.date("date_to")
    return AchievementFilter(
        owner_id=owner_id,
        types=types,
        category=query.choice("category", CATEGORIES),
        status=query.choice("status", STATUSES),
        date_from=date_from,
        date_to=date_to,
        q=query.text("q", 200),
        sort=query.choice("sort", SORT_CHOICES) or "-date",
    )


def _sort(filt: AchievementFilter) -> tuple[str, bool]:
    key = filt.sort.lstrip("-")
    return SORTS[key], filt.sort.startswith("-")


def _position(row: Mapping[str, Any], column: str) -> list[Any]:
    value = row[column]
    return [value.isoformat() if hasattr(value, "isoformat") else value, str(row["id"])]


def _decode_position(column: str, position: list[Any]) -> tuple[Any, uuid.UUID]:
    try:
        raw, raw_id = position
        if column == "date":
            value = dt.date.fromisoformat(raw)
        elif column == "created_at":
            value = dt.datetime.fromisoformat(raw)
        else:
            value = str(raw)
        return value, uuid.UUID(raw_id)
    except (ValueError, TypeError):
        raise BadRequest("The cursor is invalid; start again from the first page.") from None


def page_queries(filt: AchievementFilter, limit: int, position: tuple[Any, uuid.UUID] | None = None
                 ) -> tuple[tuple[str, list[Any]], tuple[str, list[Any]]]:
    """The SQL of one page (keyset: after ``position``, one row more than ``limit`` to tell
    whether another page follows) and of the total, with their parameters."""
    column, descending = _sort(filt)
    where, params = filt.where()
    page_where, page_params = where, list(params)
    if position is not None:
        op = "<" if descending else ">"
        page_where = f"{where} AND ({column}, id) {op} (${len(params) + 1}, ${len(params) + 2})"
        page_params += list(position)
    direction = "DESC" if descending else "ASC"
    page_sql = (f"SELECT {COLUMNS}, title_key FROM achievements WHERE {page_where} "
                f"ORDER BY {column} {direction}, id {direction} LIMIT {int(limit) + 1}")
    return (page_sql, page_params), (f"SELECT count(*) AS n FROM achievements WHERE {where}", params)


async def page(cursors: Cursors, filt: AchievementFilter, limit: int, cursor: str | None,
               with_total: bool = True) -> dict[str, Any]:
    column, _ = _sort(filt)
    position = _decode_position(column, cursors.decode(filt.scope(), cursor)) if cursor else None
    (page_sql, page_params), (count_sql, count_params) = page_queries(filt, limit, position)
    rows = await fetch(page_sql, *page_params)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = cursors.encode(filt.scope(), _position(rows[-1], column))
    result: dict[str, Any] = {"rows": rows, "next_cursor": next_cursor}
    if with_total:
        result["total"] = (await fetch(count_sql, *count_params))[0]["n"]
    return result


async def stats(filt: AchievementFilter) -> dict[str, Any]:
    where, params = filt.where()
    rows = await connection().execute_query_dict(
        f"SELECT category, status, extract(year FROM date)::int AS year, count(*) AS n "
        f"FROM achievements WHERE {where} GROUP BY GROUPING SETS ((category), (status), (year))", params)
    by_category = dict.fromkeys(CATEGORIES, 0)
    by_status = dict.fromkeys(STATUSES, 0)
    by_year: dict[str, int] = {}
    for row in rows:
        if row["category"] is not None:
            by_category[row["category"]] = row["n"]
        elif row["status"] is not None:
            by_status[row["status"]] = row["n"]
        elif row["year"] is not None:
            by_year[str(row["year"])] = row["n"]
    return {"total": sum(by_status.values()), "by_category": by_category, "by_status": by_status,
            "by_year": dict(sorted(by_year.items()))}
