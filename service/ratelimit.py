"""Rate limits with the ``limits`` library: in memory by default, in Redis when
REDIS_URL is set so that every worker and instance shares one count.

If Redis cannot be reached the limiter fails open (the request goes on) and logs a
warning: an outage of the counter store must not take the whole API down.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string

from service.errors import TooManyRequests
from service.settings import Settings

log = logging.getLogger("service.ratelimit")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_in: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(0, self.remaining)),
            "RateLimit-Reset": str(self.reset_in),
        }


class RateLimits:
    def __init__(self, settings: Settings, storage=None) -> None:
        if storage is None:
            if settings.redis_url:
                url = settings.redis_url
                storage = storage_from_string(
                    "async+" + url, implementation="redispy",
                    socket_timeout=0.5, socket_connect_timeout=0.5,
                )
            else:
                storage = MemoryStorage()
        self.storage = storage
        self.limiter = FixedWindowRateLimiter(storage)
        self.login_ip = _item(settings.rate_limit_login_ip)
        self.login_account = _item(settings.rate_limit_login_account)
        self.register_ip = _item(settings.rate_limit_register_ip)
        self.api_user = _item(settings.rate_limit_api_user)

    async def hit(self, item: RateLimitItem | None, *key: str) -> Decision | None:
        """Count one event; None when the limit is off or the store is unreachable."""
        if item is None:
            return None
        try:
            allowed = await self.limiter.hit(item, *key)
            return await self._decision(item, key, allowed)
        except Exception as exc:  # the store is down: fail open, loudly
            log.warning("rate-limit store unavailable; failing open",
                        extra={"event": "ratelimit.store_error", "error": type(exc).__name__})
            return None

    async def check(self, item: RateLimitItem | None, *key: str) -> Decision | None:
        """Whether the limit is already exhausted, without counting."""
        if item is None:
            return None
        try:
            allowed = await self.limiter.test(item, *key)
            return await self._decision(item, key, allowed)
        except Exception as exc:
            log.warning("rate-limit store unavailable; failing open",
                        extra={"event": "ratelimit.store_error", "error": type(exc).__name__})
            return None

    async def _decision(self, item: RateLimitItem, key: tuple[str, ...], allowed: bool) -> Decision:
        stats = await self.limiter.get_window_stats(item, *key)
        reset_in = max(1, math.ceil(stats.reset_time - time.time()))
        return Decision(allowed, item.amount, stats.remaining, reset_in)

    async def enforce(self, item: RateLimitItem | None, *key: str, count: bool = True) -> Decision | None:
        decision = await (self.hit(item, *key) if count else self.check(item, *key))
        if decision is not None and not decision.allowed:
            raise TooManyRequests(decision.reset_in, headers=decision.headers())
        return decision

    async def reset(self, item: RateLimitItem | None, *key: str) -> None:
        if item is None:
            return
        try:
            await self.limiter.clear(item, *key)
        except Exception as exc:
            log.warning("rate-limit store unavailable", extra={"event": "ratelimit.store_error",
                                                                "error": type(exc).__name__})

    async def once_per(self, seconds: int, *key: str) -> bool:
        """True the first time ``key`` is seen in a window of ``seconds`` (audit bounding)."""
        try:
            return await self.limiter.hit(parse(f"1/{seconds} second"), "once", *key)
        except Exception:
            return True

    async def add(self, key: str, amount: int = 1, expiry: int = 120) -> int:
        try:
            return await self.storage.incr(key, expiry, amount)
        except Exception:
            return 0

    async def take(self, key: str) -> int:
        """Read and reset a counter."""
        try:
            value = await self.storage.get(key)
            if value:
                await self.storage.clear(key)
            return int(value or 0)
        except Exception:
            return 0


def _item(spec: str | None) -> RateLimitItem | None:
    return parse(spec) if spec else None
