"""How achievements are read: the representation, the filter of a list, keyset pages, stats
and the type catalogue's checks.

The list, one achievement and the create are the per-request hot path (tests.bench S1-S3):
they are SQL on the pool (``service.platform.database.fetch``), declared once here, because keyset
pages run on the generated ``title_key`` column the ORM cannot order by, and the ORM's result
conversion costs about a tenth of a small request's CPU. Everything else goes through the models.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from models import Achievement, AchievementType, Level, Result
from models.enums import Category, Status, values
from service.context import CurrentUser
from service.platform.database import connection, fetch
from service.platform.pagination import Cursors, parse_position, position_of, scope_of
from service.university import Reach, scope_covers, scope_members

COLUMNS = (
    "id, owner_id, title, type, category, level, result, date, proof_url, description, status, review_decision, "
    "review_comment, reviewer_id, reviewed_at, version, created_at, updated_at"
)
# The display data a list renders without look-ups (owner's and reviewer's names, the type's
# name), read for rows "a" of achievements in the statement that reads them. Scalar subqueries:
# a primary-key probe per row of the page, where joins made the planner hash whole tables.
OWNER_NAME = "(SELECT full_name FROM users WHERE id = a.owner_id) AS owner_name"
TYPE_AND_REVIEWER = ("(SELECT name FROM achievement_types WHERE slug = a.type) AS type_name, "
                     "CASE WHEN a.reviewer_id IS NULL THEN NULL "  # most rows: no probe at all
                     "ELSE (SELECT full_name FROM users WHERE id = a.reviewer_id) END AS reviewer_name")
DISPLAY = f"{OWNER_NAME}, {TYPE_AND_REVIEWER}"


BY_ID = f"SELECT {COLUMNS}, {DISPLAY} FROM achievements a WHERE a.id = $1"
# sort parameter -> (column, its Python type); "-" in front means newest/last first.
SORTS = {"date": ("date", dt.date), "title": ("title_key", str), "created_at": ("created_at", dt.datetime),
         # the review queue: oldest submission first (an edit resubmits, so updated_at)
         "submitted": ("updated_at", dt.datetime)}
SORT_CHOICES = ("date", "-date", "title", "-title", "created_at", "-created_at")


# --- representation ---------------------------------------------------------------------------------

def to_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """An achievement as ``blueprints.schemas.Achievement`` declares it, from a row of ``COLUMNS``
    and ``DISPLAY`` (the view formats the ids and times)."""
    review = None
    if row["review_decision"]:
        review = {
            "decision": row["review_decision"],
            "comment": row["review_comment"],
            "reviewer_id": row["reviewer_id"],
            "reviewed_at": row["reviewed_at"],
            "reviewer_name": row["reviewer_name"],
        }
    return {
        "id": row["id"],
        "owner_id": row["owner_id"],
        "title": row["title"],
        "type": row["type"],
        "category": row["category"],
        "date": row["date"],
        "proof_url": row["proof_url"],
        "description": row["description"],
        "status": row["status"],
        "review": review,
        "owner_name": row["owner_name"],
        "type_name": row["type_name"],
        "level": row["level"],
        "result": row["result"],
        "version": row["version"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


# One achievement, and whether curator $2's scope covers its owner: one statement for a
# curator's get, as one is for everyone else's (tests.bench C2).
BY_ID_FOR_CURATOR = (f"SELECT {COLUMNS}, {DISPLAY}, {scope_covers('$2', 'a.owner_id')} AS in_reach "
                     "FROM achievements a WHERE a.id = $1")


async def by_id_for_curator(achievement_id: uuid.UUID, curator_id: uuid.UUID) -> Mapping[str, Any] | None:
    rows = await fetch(BY_ID_FOR_CURATOR, achievement_id, curator_id)
    return rows[0] if rows else None


async def by_id(achievement_id: uuid.UUID) -> Mapping[str, Any] | None:
    rows = await fetch(BY_ID, achievement_id)
    return rows[0] if rows else None


# --- the type catalogue --------------------------------------------------------------------------------

def type_error(field_path: str, is_active: bool | None, is_current: bool = False) -> dict[str, str] | None:
    """The error for a type slug that is unknown (``is_active`` None) or inactive; an
    achievement may keep its current type after the type was deactivated."""
    if is_active is None:
        return {"field": field_path, "message": "is not a known achievement type", "code": "unknown_type"}
    if not is_active and not is_current:
        return {"field": field_path, "message": "is not an active achievement type", "code": "inactive_type"}
    return None


async def type_errors(slugs: Mapping[str, str], current_type: str | None = None) -> list[dict[str, str]]:
    """Errors for the type slugs of ``slugs`` (field path -> slug), in one query."""
    if not slugs:
        return []
    found = await AchievementType.filter(slug__in=sorted(set(slugs.values()))).values_list("slug", "is_active")
    active = dict(found)
    errors = [type_error(path, active.get(slug), slug == current_type) for path, slug in slugs.items()]
    return [error for error in errors if error]


async def grade_errors(data: Mapping[str, Any], prefix: str = "") -> list[dict[str, str]]:
    """Errors for the level and result slugs of ``data`` (each optional; active ones only)."""
    errors = []
    for key, model in (("level", Level), ("result", Result)):
        slug = data.get(key)
        if slug is None:
            continue
        found = await model.filter(slug=slug).values_list("is_active", flat=True)
        if not found:
            errors.append({"field": f"{prefix}{key}", "message": f"is not a known {key}", "code": f"unknown_{key}"})
        elif not found[0]:
            errors.append({"field": f"{prefix}{key}", "message": f"is not an active {key}", "code": f"inactive_{key}"})
    return errors


async def categories_of_active_types() -> dict[str, str]:
    return dict(await AchievementType.filter(is_active=True).values_list("slug", "category"))


async def current_type_of(user: CurrentUser, achievement_id: uuid.UUID) -> str | None:
    """The type of the caller's own achievement (None for anyone else's: nothing leaks)."""
    types = await Achievement.filter(id=achievement_id, owner_id=user.id).values_list("type", flat=True)
    return types[0] if types else None


async def existing_id(tx, owner_id: uuid.UUID, type_: str, date: dt.date, title: str) -> uuid.UUID | None:
    """The id of the owner's achievement that ``title`` duplicates. SQL: the comparison runs on
    the generated title_key with the database's lower(), which the ORM cannot express."""
    rows = await tx.execute_query_dict(
        "SELECT id FROM achievements WHERE owner_id = $1 AND type = $2 AND date = $3 "
        "AND title_key = lower(btrim($4))", [owner_id, type_, date, title])
    return rows[0]["id"] if rows else None


# --- lists --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AchievementFilter:
    """What a list, an export or stats covers (owner None: everyone's)."""

    owner_id: uuid.UUID | None
    types: tuple[str, ...] = ()
    category: Category | None = None
    status: Status | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    q: str | None = None
    sort: str = "-date"
    reach: Reach | None = None  # a curator's scope (see service.university); None: no limit
    exclude_owner_id: uuid.UUID | None = None  # the review queue leaves out the reviewer's own
    # The owner's name when the caller knows it (their own list: read with the session), so
    # a page needs no look-up per row for it.
    owner_name: str | None = dataclasses.field(default=None, compare=False)


    def where(self) -> tuple[str, list[Any]]:
        clauses, params = [], []

        def add(template: str, value: Any) -> None:
            params.append(value)
            clauses.append(template.format(f"${len(params)}"))

        if self.owner_id is not None:
            add("owner_id = {}", self.owner_id)
        if self.exclude_owner_id is not None:
            add("owner_id <> {}", self.exclude_owner_id)
        if self.types:
            add("type = ANY({}::text[])", list(self.types))
        if self.category:
            add("category = {}", str(self.category))
        if self.status:
            add("status = {}", str(self.status))
        if self.date_from:
            add("date >= {}", self.date_from)
        if self.date_to:
            add("date <= {}", self.date_to)
        owners = self.owners_in_reach(params)
        if owners is not None:
            clauses.append(f"owner_id = ANY(ARRAY({owners}))")
        if self.q:
            escaped = self.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            add("title_key LIKE lower({})", f"%{escaped}%")  # the database's case rule, as title_key
        return (" AND ".join(clauses) or "TRUE"), params

    def owners_in_reach(self, params: list[Any], columns: str = "u.id") -> str | None:
        """The SQL selecting ``columns`` of the students (``u``) in reach (None: no limit), its
        parameters appended to ``params``. A curator's scope is looked up inside the statement
        that uses it."""
        reach = self.reach
        if reach is not None and reach.curator_id is not None:
            params.append(reach.curator_id)
            return scope_members(f"${len(params)}", columns)
        if reach is not None and not reach.everyone:
            params.append(sorted(reach.units))
            members = f"SELECT {columns} FROM users u WHERE u.org_unit_id = ANY(${len(params)}::uuid[])"
            if reach.includes_root_members:  # a branch of its own, not an OR: two index scans
                members += f" UNION ALL SELECT {columns} FROM users u WHERE u.org_unit_id IS NULL"
            return members
        return None

    def scope(self) -> str:
        units = None if self.reach is None else [str(self.reach.curator_id), *sorted(str(u) for u in self.reach.units)]
        return scope_of(str(self.owner_id), sorted(self.types), self.category, self.status,
                        str(self.date_from), str(self.date_to), self.q, self.sort, units)

    @property
    def order(self) -> tuple[str, type, bool]:
        """(column, its type, descending)."""
        column, kind = SORTS[self.sort.lstrip("-")]
        return column, kind, self.sort.startswith("-")


def page_queries(filt: AchievementFilter, limit: int, position: tuple[Any, uuid.UUID] | None = None,
                 with_total: bool = True) -> tuple[tuple[str, list[Any]], tuple[str, list[Any]]]:
    """The SQL of one page (keyset: after ``position``, one row more than ``limit`` to tell
    whether another page follows) and of the total alone, with their parameters.

    With ``with_total`` each row of the page also carries the total (column ``total``: an
    uncorrelated subquery, computed once), so a list is one statement, page and total read
    in one snapshot; the total alone serves a page past the end, which has no row to carry it.

    Within a curator's scope the page is the top rows of each student in reach, merged
    (LATERAL over the owner-first indexes): a plain filter on the owners would walk everyone's
    achievements in sort order to find the few in scope (tests.bench C1). The students in
    reach are looked up once per statement (a materialised CTE), with their names."""
    column, _, descending = filt.order
    op, direction = ("<", "DESC") if descending else (">", "ASC")
    order = f"ORDER BY {column} {direction}, id {direction} LIMIT {int(limit) + 1}"
    scoped = dataclasses.replace(filt, reach=None)
    where, params = scoped.where()
    page_where, page_params = where, list(params)
    if position is not None:
        page_where = f"{where} AND ({column}, id) {op} (${len(params) + 1}, ${len(params) + 2})"
        page_params += list(position)
    owners = filt.owners_in_reach(page_params, "u.id, u.full_name")
    if owners is None:
        total = f", (SELECT count(*) FROM achievements WHERE {where}) AS total" if with_total else ""
        # The display data in the page's own select list: PostgreSQL evaluates such subqueries
        # after the LIMIT, for the rows of the page only.
        display = DISPLAY
        if filt.owner_name is not None and filt.owner_id is not None:
            page_params.append(filt.owner_name)
            display = f"${len(page_params)}::text AS owner_name, {TYPE_AND_REVIEWER}"
        page_sql = f"SELECT {COLUMNS}, title_key, {display}{total} FROM achievements a WHERE {page_where} {order}"
        count_sql = f"SELECT count(*) AS n FROM achievements WHERE {where}"
        return (page_sql, page_params), (count_sql, params)

    def count_of(owners_sql: str) -> str:
        # A count per student (a correlated subquery: an index scan each), summed.
        return (f"SELECT coalesce(sum((SELECT count(*) FROM achievements WHERE owner_id = o.owner AND {where})), 0)"
                f"::bigint AS n FROM ({owners_sql}) AS o(owner)")

    total = f", ({count_of('SELECT id FROM owners')}) AS total" if with_total else ""
    # The students in reach with their names (the page's owner_name without a look-up per row).
    page_sql = (
        f"WITH owners(id, name) AS MATERIALIZED ({owners}) "
        f"SELECT a.*, {TYPE_AND_REVIEWER}{total} FROM (SELECT a.*, o.name AS owner_name FROM owners o "
        f"CROSS JOIN LATERAL (SELECT {COLUMNS}, title_key FROM achievements WHERE owner_id = o.id "
        f"AND {page_where} {order}) AS a {order}) AS a ORDER BY a.{column} {direction}, a.id {direction}")
    count_params = list(params)
    count_sql = count_of(filt.owners_in_reach(count_params))
    return (page_sql, page_params), (count_sql, count_params)


@dataclass(frozen=True)
class Page:
    rows: list[Mapping[str, Any]]
    next_cursor: str | None
    total: int | None = None


async def page(cursors: Cursors, filt: AchievementFilter, limit: int, cursor: str | None,
               with_total: bool = True) -> Page:
    column, kind, _ = filt.order
    position = parse_position(kind, cursors.decode(filt.scope(), cursor)) if cursor else None
    (page_sql, page_params), (count_sql, count_params) = page_queries(filt, limit, position, with_total)
    rows = await fetch(page_sql, *page_params)
    total = None
    if with_total:
        if rows:
            total = rows[0]["total"]
        elif position is None:
            total = 0  # not even a first page: nothing matches
        else:  # a page past the end
            total = (await fetch(count_sql, *count_params))[0]["n"]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = cursors.encode(filt.scope(), position_of(rows[-1][column], rows[-1]["id"]))
    return Page(rows, next_cursor, total)


async def all_pages(cursors: Cursors, filt: AchievementFilter, size: int = 500):
    """Every matching row, a keyset page at a time (never an empty page): for exports."""
    cursor = None
    while True:
        result = await page(cursors, filt, size, cursor, with_total=False)
        if result.rows:
            yield result.rows
        cursor = result.next_cursor
        if not cursor:
            return


async def stats(filt: AchievementFilter) -> dict[str, Any]:
    """Counts by category, status and year in one statement (GROUPING SETS: SQL, the ORM has
    no such aggregate)."""
    where, params = filt.where()
    rows = await connection().execute_query_dict(
        f"SELECT category, status, extract(year FROM date)::int AS year, count(*) AS n "
        f"FROM achievements WHERE {where} GROUP BY GROUPING SETS ((category), (status), (year))", params)
    by_category = dict.fromkeys(values(Category), 0)
    by_status = dict.fromkeys(values(Status), 0)
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
