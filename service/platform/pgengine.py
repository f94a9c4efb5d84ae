"""Tortoise's asyncpg engine, with its pool in reach.

``service.platform.database.fetch`` runs the per-request hot path (the session check, a page,
one achievement) as ``pool.fetch``: asyncpg acquires, runs and releases in one call, where
going through the client's ``acquire_connection()`` wrapper cost several percent of a small
request's CPU (tests.bench). Tortoise names its engine by module (``client_class``) and builds
the pool in the overridable ``create_pool``; this engine keeps what that returns.
"""

from __future__ import annotations

import asyncio

import asyncpg
from tortoise.backends.asyncpg.client import AsyncpgDBClient

# The default connection's pool and the loop it lives on: looking the client up through
# Tortoise's connection handler on every statement (context variables, a loop check) was
# itself a twentieth of a small request's CPU.
_default: tuple[asyncio.AbstractEventLoop, asyncpg.Pool] | None = None


class JournalClient(AsyncpgDBClient):
    pool: asyncpg.Pool | None = None  # None until the pool is created (and after close)

    async def create_pool(self, **kwargs) -> asyncpg.Pool:
        global _default
        self.pool = await super().create_pool(**kwargs)
        if self.connection_name == "default":
            _default = (asyncio.get_running_loop(), self.pool)
        return self.pool

    async def close(self) -> None:
        global _default
        if _default is not None and _default[1] is self.pool:
            _default = None
        self.pool = None
        await super().close()


def default_pool() -> asyncpg.Pool | None:
    """The default connection's pool, if it is open and serves the running loop (else None:
    the caller goes through Tortoise, which connects, or reconnects on a new loop)."""
    if _default is not None and _default[0] is asyncio.get_running_loop():
        return _default[1]
    return None


client_class = JournalClient
