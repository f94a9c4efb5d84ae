"""Growth: on a large table the list (every sort, first and later pages) and the load by id
are index scans, never a sequential scan of achievements (issue 8). The benchmark's
``--growth`` mode measures the same at 1,000,000 rows; here 200,000 keep the suite fast.
The queries are the service's own (``queries.page_queries`` and ``BY_ID``)."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import asyncpg
import pytest

from service.achievements import queries
from tests.conftest import TRUNCATE

ROWS = 200_000
OWNERS = 1_000

SEED = """
CREATE TEMP TABLE growth_owners AS
    SELECT gen_random_uuid() AS id, n FROM generate_series(0, $1 - 1) AS n;
INSERT INTO users (id, email, password_hash, full_name)
    SELECT id, 'growth-' || n || '@example.org', '!', 'Growth ' || n FROM growth_owners;
INSERT INTO achievements (id, owner_id, title, type, category, date, status, created_at, updated_at)
    SELECT gen_random_uuid(), o.id, 'Achievement ' || g,
           (ARRAY['olympiad', 'conference', 'exhibition', 'volunteering'])[1 + g % 4],
           (ARRAY['educational', 'scientific', 'creative', 'social'])[1 + g % 4],
           date '2000-01-01' + (g * 7919) % 9000,
           (ARRAY['pending', 'approved', 'rejected'])[1 + g % 3],
           now() - make_interval(secs => g), now() - make_interval(secs => g)
    FROM generate_series(0, $2 - 1) AS g JOIN growth_owners AS o ON o.n = g % $1;
"""


@pytest.fixture(scope="module")
def growth_db(database_url, loop):
    """A connection to the test database with 200,000 achievements of 1,000 owners in it,
    emptied again (TRUNCATE: audit rows cannot be deleted) when the module is done."""

    async def seed() -> asyncpg.Connection:
        conn = await asyncpg.connect(database_url)
        await conn.execute("SET synchronous_commit = off")
        statements = [s for s in SEED.split(";") if s.strip()]
        await conn.execute(statements[0].replace("$1", str(OWNERS)))
        await conn.execute(statements[1])
        await conn.execute(statements[2].replace("$1", str(OWNERS)).replace("$2", str(ROWS)))
        await conn.execute("VACUUM (ANALYZE) achievements")
        await conn.execute("ANALYZE users")
        return conn

    conn = loop.run_until_complete(seed())
    try:
        yield conn
    finally:
        loop.run_until_complete(conn.execute(TRUNCATE))
        loop.run_until_complete(conn.close())


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def plan_of(growth_db, loop, sql: str, params: list) -> list[dict]:
    raw = loop.run_until_complete(growth_db.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *params))
    return list(_nodes((json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]))


def assert_index_only_access(nodes: list[dict], what: str) -> None:
    on_achievements = [n for n in nodes if n.get("Relation Name") == "achievements"
                       or n.get("Index Name", "").startswith("achievements_")]
    kinds = [n["Node Type"] for n in on_achievements]
    assert "Seq Scan" not in kinds, f"{what}: sequential scan of achievements: {kinds}"
    assert {"Index Scan", "Index Only Scan", "Bitmap Index Scan"} & set(kinds), f"{what}: no index used: {kinds}"


def owner_with_rows(growth_db, loop) -> uuid.UUID:
    return loop.run_until_complete(growth_db.fetchval(
        "SELECT owner_id FROM achievements GROUP BY owner_id ORDER BY count(*) DESC LIMIT 1"))


@pytest.mark.parametrize("sort", queries.SORT_CHOICES)
def test_own_list_is_an_index_scan_for_every_sort_and_page(growth_db, loop, sort):
    owner = owner_with_rows(growth_db, loop)
    filt = queries.AchievementFilter(owner_id=owner, sort=sort)
    column, _, _ = filt.order
    (first_sql, first_params), (count_sql, count_params) = queries.page_queries(filt, 20)
    assert_index_only_access(plan_of(growth_db, loop, first_sql, first_params), f"first page, sort {sort}")
    (bare_sql, bare_params), _ = queries.page_queries(filt, 20, with_total=False)
    assert_index_only_access(plan_of(growth_db, loop, bare_sql, bare_params), f"page without total, sort {sort}")
    assert_index_only_access(plan_of(growth_db, loop, count_sql, count_params), f"total, sort {sort}")

    # A later page: keyset position of a row in the middle of the owner's list.
    middle = loop.run_until_complete(growth_db.fetchrow(
        f"SELECT {column} AS value, id FROM achievements WHERE owner_id = $1 ORDER BY {column}, id "
        "OFFSET 100 LIMIT 1", owner))
    (next_sql, next_params), _ = queries.page_queries(filt, 20, (middle["value"], middle["id"]))
    assert_index_only_access(plan_of(growth_db, loop, next_sql, next_params), f"later page, sort {sort}")


def test_staff_list_of_everyone_pages_by_index(growth_db, loop):
    for sort in ("-date", "title", "created_at"):
        filt = queries.AchievementFilter(owner_id=None, sort=sort)
        # The page itself (the total of everyone's is a count of the whole table by design).
        (sql, params), _ = queries.page_queries(filt, 20, with_total=False)
        assert_index_only_access(plan_of(growth_db, loop, sql, params), f"owner=any, sort {sort}")


def test_load_by_id_is_an_index_scan(growth_db, loop):
    some_id = loop.run_until_complete(growth_db.fetchval("SELECT id FROM achievements OFFSET 12345 LIMIT 1"))
    nodes = plan_of(growth_db, loop, queries.BY_ID, [some_id])
    assert_index_only_access(nodes, "by id")
    assert any(n.get("Index Name") == "achievements_pkey" for n in nodes)


def test_seeded_table_is_large(growth_db, loop):
    count = loop.run_until_complete(growth_db.fetchval("SELECT count(*) FROM achievements"))
    assert count == ROWS
    assert dt.date(2000, 1, 1) <= loop.run_until_complete(
        growth_db.fetchval("SELECT min(date) FROM achievements"))
