"""PostgreSQL through Tortoise ORM: configuration, lifecycle and migrations."""

from __future__ import annotations

import ssl as ssl_lib
from typing import Any

from tortoise import Tortoise, connections

from service.settings import DatabaseURL, Settings

APP_LABEL = "models"


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


async def open_database(settings: Settings) -> bool:
    """Open the pool; False when this process already has one (several apps in tests)."""
    if Tortoise._inited:
        return False
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)
    return True


async def close_database() -> None:
    # Closes the pool and clears the global fallback context, so a later init works.
    await Tortoise.close_connections()


def connection():
    return connections.get("default")


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
