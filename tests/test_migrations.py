"""The models are the schema: the migrations are generated from them, a database built by the
migrations equals one built from the models, a version-1 database upgrades in place to exactly
the fresh schema, and ``makemigrations --check`` fails as soon as a model changes."""

from __future__ import annotations

import asyncio
import importlib
import shutil
import subprocess
import sys
import uuid

import asyncpg
import pytest
from tortoise import Tortoise

from service.platform.database import migrate_to, tortoise_config
from tests.conftest import ROOT, _with_database, make_settings

SNAPSHOT_QUERIES = {
    "columns": """
        SELECT table_name, column_name, data_type, character_maximum_length, is_nullable, column_default,
               generation_expression
        FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'tortoise_migrations'
        ORDER BY table_name, column_name""",
    "constraints": """
        SELECT conrelid::regclass::text AS table_name, conname, contype, pg_get_constraintdef(oid) AS definition
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace
        AND conrelid::regclass::text <> 'tortoise_migrations' ORDER BY 1, 2""",
    "indexes": """
        SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = 'public' AND tablename <> 'tortoise_migrations' ORDER BY 1, 2""",
    "triggers": """
        SELECT event_object_table, trigger_name, event_manipulation, action_timing, action_statement
        FROM information_schema.triggers WHERE trigger_schema = 'public' ORDER BY 1, 2, 3""",
    "truncate_triggers": """
        SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1, 2""",
}


async def snapshot(url: str) -> dict[str, list[tuple]]:
    conn = await asyncpg.connect(url)
    try:
        return {name: [tuple(row) for row in await conn.fetch(query)] for name, query in SNAPSHOT_QUERIES.items()}
    finally:
        await conn.close()


@pytest.fixture
def scratch_databases(database_url):
    """Create empty databases on the test server; dropped afterwards."""
    names: list[str] = []

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(_with_database(database_url, "postgres"))
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    def make() -> str:
        name = f"journal_scratch_{uuid.uuid4().hex[:10]}"
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
        names.append(name)
        return _with_database(database_url, name)

    yield make
    for name in names:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def migrate(url: str, migrations: str = "models.migrations") -> list[str]:
    return asyncio.run(migrate_to(make_settings(url), migrations))


def test_a_version_1_database_upgrades_in_place_to_the_fresh_schema(scratch_databases):
    old, fresh = scratch_databases(), scratch_databases()
    assert migrate(old, "tests.fixtures.v1_migrations") == ["models.0001_initial"]

    async def v1_data() -> None:
        conn = await asyncpg.connect(old)
        try:
            user = uuid.uuid4()
            await conn.execute(
                "INSERT INTO users (id, email, password_hash, full_name) VALUES ($1, 'a@b.org', 'x', 'A')", user)
            await conn.execute("INSERT INTO users (id, email, password_hash, full_name, role) "
                               "VALUES ($1, 'c@b.org', 'x', 'C', 'curator')", uuid.uuid4())
            await conn.executemany(
                "INSERT INTO achievements (id, owner_id, title, type, category, date) "
                "VALUES ($1, $2, $3, 'olympiad', 'educational', '2025-01-01')",
                [(uuid.uuid4(), user, f"Title {n}") for n in range(3)])
        finally:
            await conn.close()

    asyncio.run(v1_data())
    later = ["models.0002_audit_no_truncate", "models.0003_achievement_counts", "models.0004_university",
             "models.0005_portfolio", "models.0006_credentials", "models.0007_scoring",
             "models.0008_org_unit_closure"]
    assert migrate(old) == later
    assert migrate(fresh) == ["models.0001_initial", *later]
    upgraded, built = asyncio.run(snapshot(old)), asyncio.run(snapshot(fresh))
    for part in SNAPSHOT_QUERIES:
        assert upgraded[part] == built[part], part

    async def counted() -> int:
        conn = await asyncpg.connect(old)
        try:
            return await conn.fetchval("SELECT sum(n) FROM achievement_counts")
        finally:
            await conn.close()

    assert asyncio.run(counted()) == 3  # the quota's counts were backfilled

    async def curator_scopes() -> list[str]:
        conn = await asyncpg.connect(old)
        try:
            return [row["kind"] for row in await conn.fetch(
                "SELECT o.kind FROM curator_scopes s JOIN org_units o ON o.id = s.org_unit_id")]
        finally:
            await conn.close()

    assert asyncio.run(curator_scopes()) == ["university"]  # v1's curator keeps reaching everyone


def test_the_tree_closure_follows_every_unit_and_matches_a_walk_of_the_tree(scratch_databases):
    """models.OrgUnitLink is kept by a trigger: a new unit is linked to itself and each
    ancestor, a deleted one takes its links along, a unit cannot move; the migration's backfill
    (for a database upgraded with a tree in it) builds the same closure from scratch."""
    url = scratch_databases()
    migrate(url)
    closure = importlib.import_module("models.migrations.0008_org_unit_closure")

    async def check() -> None:
        conn = await asyncpg.connect(url)
        try:
            root = await conn.fetchval("SELECT id FROM org_units WHERE parent_id IS NULL")
            faculty, group, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
            await conn.execute("INSERT INTO org_units (id, name, kind, parent_id) VALUES ($1, 'F', 'faculty', $2)",
                               faculty, root)
            await conn.executemany("INSERT INTO org_units (id, name, kind, parent_id) VALUES ($1, $2, 'group', $3)",
                                   [(group, "G1", faculty), (other, "G2", faculty)])
            links = "SELECT ancestor_id, descendant_id, depth FROM org_unit_closure ORDER BY 1, 2"
            by_trigger = [tuple(row) for row in await conn.fetch(links)]
            assert {(a, d) for a, d, _ in by_trigger if d == group} == {(group, group), (faculty, group), (root, group)}
            assert {(a, depth) for a, d, depth in by_trigger if d == group} == {(group, 0), (faculty, 1), (root, 2)}
            assert len(by_trigger) == 1 + 2 + 3 + 3
            await conn.execute("DELETE FROM org_unit_closure")
            await conn.execute(closure.BACKFILL)
            assert [tuple(row) for row in await conn.fetch(links)] == by_trigger
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute("UPDATE org_units SET parent_id = $1 WHERE id = $2", root, group)
            await conn.execute("DELETE FROM org_units WHERE id = $1", other)
            assert not await conn.fetchval("SELECT count(*) FROM org_unit_closure WHERE descendant_id = $1", other)
        finally:
            await conn.close()

    asyncio.run(check())


def test_the_migrations_build_what_the_models_declare(scratch_databases):
    """Tortoise's generate_schemas() builds the tables straight from the models; the migrated
    database has the same tables, columns, types and nullability (plus what only SQL adds)."""
    from_models, migrated = scratch_databases(), scratch_databases()
    migrate(migrated)

    async def generate() -> None:
        await Tortoise.init(config=tortoise_config(make_settings(from_models), pool_max=2))
        try:
            await Tortoise.generate_schemas()
        finally:
            await Tortoise.close_connections()

    asyncio.run(generate())
    declared, built = asyncio.run(snapshot(from_models)), asyncio.run(snapshot(migrated))

    def shape(rows):  # (table, column, type, length, nullable)
        return {row[:5] for row in rows}

    assert shape(declared["columns"]) == shape(built["columns"])


def test_makemigrations_check_passes_and_fails_when_a_model_changes(tmp_path):
    command = [sys.executable, "-m", "service", "makemigrations", "--check"]
    clean = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "No changes" in clean.stdout

    # The same project with one model changed (a longer name): --check must fail and say what.
    copy = tmp_path / "project"
    shutil.copytree(ROOT / "models", copy / "models", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "service", copy / "service", ignore=shutil.ignore_patterns("__pycache__", "static"))
    migrations = copy / "models" / "migrations"
    committed = {p.name for p in migrations.glob("0*.py")}
    user = copy / "models" / "user.py"
    user.write_text(user.read_text().replace("full_name = fields.CharField(max_length=200)",
                                             "full_name = fields.CharField(max_length=300)"))
    changed = subprocess.run(command, cwd=copy, capture_output=True, text=True, timeout=120)
    assert changed.returncode == 1, changed.stdout + changed.stderr
    assert "full_name" in changed.stdout
    assert {p.name for p in migrations.glob("0*.py")} == committed, "--check must not write a migration"

    # Without --check the migration is written, and afterwards the check passes again.
    written = subprocess.run(command[:-1], cwd=copy, capture_output=True, text=True, timeout=120)
    assert written.returncode == 0, written.stdout + written.stderr
    written_names = {p.name for p in migrations.glob("0*.py")} - committed
    assert len(written_names) == 1 and "full_name" in (migrations / written_names.pop()).read_text()
    again = subprocess.run(command, cwd=copy, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
