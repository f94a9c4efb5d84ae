"""PostgreSQL through Tortoise ORM: configuration, lifecycle and migrations."""

from __future__ import annotations

import ssl as ssl_lib
from typing import Any

import asyncpg
from tortoise import Tortoise, connections
from tortoise.exceptions import IntegrityError

from service.settings import DatabaseURL, Settings

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
        "connections": {"default": {"engine": "tortoise.backends.asyncpg", "credentials": credentials}},
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


_client = None  # the pool's client, kept for the hot path while the database is open


async def open_database(settings: Settings) -> bool:
    """Open the pool; False when this process already has one (several apps in tests)."""
    global _client
    if Tortoise._inited:
        return False
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)
    _client = connections.get("default")
    return True


async def close_database() -> None:
    global _client
    _client = None
    # Closes the pool and clears the global fallback context, so a later init works.
    await Tortoise.close_connections()


def connection():
    return connections.get("default")


class Transaction:
    """The connection of one open transaction, with the ORM client's two query methods
    (so use cases and ``audit.record`` read the same either way), minus its per-query
    layers. A broken constraint raises the ORM's ``IntegrityError``, as through the ORM."""

    __slots__ = ("connection",)

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection

    async def execute_query_dict(self, query: str, values: list[Any] | None = None) -> list[dict[str, Any]]:
        try:
            return [dict(row) for row in await self.connection.fetch(query, *(values or ()))]
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityError(exc) from exc

    async def execute_query(self, query: str, values: list[Any] | None = None) -> tuple[int, list]:
        try:
            status = await self.connection.execute(query, *(values or ()))
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityError(exc) from exc
        count = status.rsplit(" ", 1)[-1]
        return (int(count) if count.isdigit() else 0), []


class UnitOfWork:
    """One use case's transaction on a pooled connection: committed when the block ends,
    rolled back when it raises. Its queries skip the ORM's transaction wrapper (a lock and
    two coroutine layers per query)."""

    __slots__ = ("_holder", "_transaction")

    async def __aenter__(self) -> Transaction:
        self._holder = (_client or connection()).acquire_connection()
        conn = await self._holder.__aenter__()
        try:
            self._transaction = conn.transaction()
            await self._transaction.start()
        except BaseException as exc:
            await self._holder.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return Transaction(conn)

    async def __aexit__(self, exc_type, exc, traceback) -> None:
        try:
            if exc_type is None:
                await self._transaction.commit()
            else:
                await self._transaction.rollback()
        finally:
            await self._holder.__aexit__(exc_type, exc, traceback)


def transaction() -> UnitOfWork:
    """``async with transaction() as tx:`` runs the block in one transaction."""
    return UnitOfWork()


async def fetch(query: str, *args: Any) -> list[asyncpg.Record]:
    """Run one read query on a pooled connection and return asyncpg's records.

    The per-request hot path (the session check, a page, one achievement) comes here
    rather than through the ORM client's ``execute_query_dict``: the same pool and SQL,
    without the client lookup, wrappers, exception translation and dict copies, which
    cost about a tenth of the CPU time of a small request. Writes and transactions go
    through ``transaction()``.
    """
    pool = getattr(_client, "_pool", None)  # the ORM creates it on first use
    if pool is not None:
        return await pool.fetch(query, *args)
    async with (_client or connection()).acquire_connection() as conn:
        return await conn.fetch(query, *args)


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
