"""PostgreSQL through Tortoise ORM: configuration, lifecycle and migrations."""

from __future__ import annotations

import ssl as ssl_lib
from typing import Any

import asyncpg
from tortoise import Tortoise, connections
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionContext
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from service.platform.pgengine import JournalClient, default_pool
from service.platform.settings import DatabaseURL, Settings

APP_LABEL = "models"
MIGRATIONS = "models.migrations"


async def keep_session(_connection: asyncpg.Connection) -> None:
    """Pool reset on release: asyncpg still rolls back an open transaction first, but skips
    its default reset query (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL). The service
    never sets session state, so that query would only cost a round trip per released
    connection, i.e. after every query outside a transaction."""


def tortoise_config(settings: Settings, *, pool_max: int | None = None) -> dict[str, Any]:
    url: DatabaseURL = settings.database
    credentials: dict[str, Any] = {
        "host": url.host,
        "port": url.port,
        "user": url.user,
        "password": url.password,
        "database": url.database,
        "minsize": 1,
        "maxsize": pool_max or settings.db_pool_max,
        # A dead server must not hang a request: fail fast and answer 503.
        "timeout": 5,
        "command_timeout": 30,
        "reset": keep_session,
    }
    if not settings.db_statement_cache:
        # PgBouncer in transaction mode cannot keep prepared statements.
        credentials["statement_cache_size"] = 0
    if url.ssl in {"require", "verify-ca", "verify-full"}:
        context = ssl_lib.create_default_context()
        if url.ssl == "require":
            # libpq's "require" encrypts without verifying the certificate (Heroku's setting).
            context.check_hostname = False
            context.verify_mode = ssl_lib.CERT_NONE
        credentials["ssl"] = context
    return {
        "connections": {"default": {"engine": "service.platform.pgengine", "credentials": credentials}},
        "apps": {
            APP_LABEL: {
                "models": ["models"],
                "default_connection": "default",
                "migrations": MIGRATIONS,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


_open = False  # this process's pool is open (several apps share one in the tests)


async def open_database(settings: Settings) -> bool:
    """Open the pool; False when this process already has one."""
    global _open
    if _open:
        return False
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)
    _open = True
    return True


async def close_database() -> None:
    global _open
    _open = False
    # Closes the pool and clears the global fallback context, so a later init works.
    await Tortoise.close_connections()


def connection() -> BaseDBAsyncClient:
    return connections.get("default")


def transaction() -> TransactionContext:
    """``async with transaction() as tx:`` runs the block in one transaction (Tortoise's
    ``in_transaction``): ORM queries inside it take ``using_db=tx``, the few SQL statements
    ``tx.execute_query_dict``; a broken constraint raises the ORM's ``IntegrityError``."""
    return in_transaction("default")


async def fetch(query: str, *args: Any) -> list[asyncpg.Record]:
    """Run one read statement on a pooled connection and return asyncpg's records.

    Only for the per-request hot path (the session check, a page, one achievement): the same
    pool as the ORM (``service.platform.pgengine``), without its result conversion, which costs
    about a tenth of the CPU time of a small request (measured with tests.bench).

    Inside ``transaction()`` it runs on the transaction's connection, as the ORM's queries do:
    a use case holding one connection while it waits for a second deadlocks a full pool (a
    curator's scope check inside a review did, behind PgBouncer or with DB_POOL_MAX=1).
    """
    client = connection()
    pool = default_pool() if isinstance(client, JournalClient) else None
    if pool is None:  # a transaction; or not connected yet (or a new loop): the client connects
        async with client.acquire_connection() as conn:
            return await conn.fetch(query, *args)
    return await pool.fetch(query, *args)


def violated_constraint(error: IntegrityError) -> str | None:
    """The name of the constraint (or unique index) an ``IntegrityError`` broke."""
    seen: BaseException | None = error
    for _ in range(4):
        if seen is None:
            break
        name = getattr(seen, "constraint_name", None)
        if name:
            return name
        cause = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
        seen = cause or seen.__cause__
    return None


async def run_migrations(settings: Settings) -> list[str]:
    """Apply pending migrations; returns the names applied."""
    return await migrate_to(settings, MIGRATIONS)


async def migrate_to(settings: Settings, migrations: str) -> list[str]:
    """Apply the pending migrations of the ``migrations`` package (tests build a version-1
    database with an old package)."""
    from tortoise.migrations.api.migrate import migrate

    applied: list[str] = []

    def progress(event: str, app_label: str, name: str) -> None:
        if event == "apply_done":
            applied.append(f"{app_label}.{name}")

    config = tortoise_config(settings, pool_max=2)
    config["apps"][APP_LABEL]["migrations"] = migrations
    try:
        await migrate(config=config, progress=progress)
    finally:
        await connections.close_all()
    return applied


async def make_migrations(*, check: bool = False, name: str | None = None) -> list[tuple[str, list[str]]]:
    """Compare the models with the state the migrations build (Tortoise's autodetector) and
    write a migration for the difference, unless ``check``. Returns (migration, operations)
    for each migration that is (or would be) written. Needs no database."""
    from tortoise.context import TortoiseContext
    from tortoise.migrations.autodetector import MigrationAutodetector

    app = {"models": [APP_LABEL], "default_connection": "default", "migrations": MIGRATIONS}
    # The autodetector reads models and migration files only; the URL is never connected to.
    config = {"connections": {"default": "postgres://localhost/unused"}, "apps": {APP_LABEL: app}}
    async with TortoiseContext() as ctx:
        await ctx.init(config=config)
        writers = await MigrationAutodetector(ctx.apps, {APP_LABEL: dict(app)}).changes()
    result = []
    for writer in writers:
        if name:
            writer.name = f"{writer.name.split('_', 1)[0]}_{name}"
        if not check:
            writer.write()
        result.append((writer.name, [operation.describe() for operation in writer.operations]))
    return result
