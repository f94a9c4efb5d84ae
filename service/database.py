"""PostgreSQL through Tortoise ORM: configuration, lifecycle and migrations."""

from __future__ import annotations

import ssl as ssl_lib
from typing import Any

import asyncpg
from tortoise import Tortoise, connections

from service.settings import DatabaseURL, Settings

APP_LABEL = "models"


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
                "migrations": "models.migrations",
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


async def fetch(query: str, *args: Any) -> list[asyncpg.Record]:
    """Run one read query on a pooled connection and return asyncpg's records.

    The per-request hot path (the session check, a page, one achievement) comes here
    rather than through the ORM client's ``execute_query_dict``: the same pool and SQL,
    without the client lookup, exception translation and dict copies that would add a
    tenth to the CPU time of a small request. Writes and transactions keep using the ORM.
    """
    async with (_client or connection()).acquire_connection() as conn:
        return await conn.fetch(query, *args)


async def run_migrations(settings: Settings) -> list[str]:
    """Apply pending migrations; returns the names applied."""
    from tortoise.migrations.api.migrate import migrate

    applied: list[str] = []

    def progress(event: str, app_label: str, name: str) -> None:
        if event == "apply_done":
            applied.append(f"{app_label}.{name}")

    try:
        await migrate(config=tortoise_config(settings, pool_max=2), progress=progress)
    finally:
        await connections.close_all()
    return applied
