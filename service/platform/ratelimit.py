"""Rate limits with the ``limits`` library: in memory by default, in Redis when
REDIS_URL is set so that every worker and instance shares one count.

If Redis cannot be reached the limiter fails open: no request is refused or delayed
because of the outage. It logs a warning and keeps counting in this worker's memory
until Redis answers again (tried again every few seconds), so limits still hold per
worker rather than vanishing, and the audit bounding keeps working.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string
from sanic.request import Request

from service.errors import TooManyRequests
from service.platform.settings import Settings

log = logging.getLogger("service.platform.ratelimit")

STORE_TIMEOUT = 0.5  # seconds; a slow Redis must not hold requests up
STORE_RETRY_AFTER = 5.0  # seconds spent on local counters before Redis is tried again


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
    def __init__(self, settings: Settings, storage: Storage | None = None) -> None:
        if storage is None:
            if settings.redis_url:
                storage = storage_from_string(
                    "async+" + settings.redis_url, implementation="redispy",
                    socket_timeout=STORE_TIMEOUT, socket_connect_timeout=STORE_TIMEOUT,
                )
            else:
                storage = MemoryStorage()
        self.storage = storage
        self.limiter = FixedWindowRateLimiter(storage)
        # Where counting goes on while the store is unreachable (memory itself never is).
        self.local = MemoryStorage()
        self.local_limiter = FixedWindowRateLimiter(self.local)
        self._retry_store_at = 0.0
        self.login_ip = _item(settings.rate_limit_login_ip)
        self.login_account = _item(settings.rate_limit_login_account)
        self.register_ip = _item(settings.rate_limit_register_ip)
        self.api_user = _item(settings.rate_limit_api_user)
        self.refresh_ip = _item(settings.rate_limit_refresh_ip)
        self.public_ip = _item(settings.rate_limit_public_ip)
        self.trusted_networks = settings.rate_limit_trusted_networks
        self.trusted_multiplier = settings.rate_limit_trusted_multiplier

    def for_ip(self, item: RateLimitItem | None, ip: str) -> RateLimitItem | None:
        """A per-IP limit as it applies to ``ip``: multiplied for a trusted campus network,
        where a whole class shares one public address. (Per-account and per-user limits
        never go through here: they are never relaxed.)"""
        if item is None or not self.trusted_networks or not _in_networks(ip, self.trusted_networks):
            return item
        return type(item)(item.amount * self.trusted_multiplier, item.multiples, item.namespace)

    async def enforce_ip(self, item: RateLimitItem | None, name: str, ip: str) -> Decision | None:
        """Count one request of ``ip`` against a per-IP limit; 429 when exhausted."""
        return await self.enforce(self.for_ip(item, ip), name, ip)

    async def _run(self, operation: Callable[[FixedWindowRateLimiter, Storage], Awaitable[Any]]) -> Any:
        """Run ``operation`` on the shared store, or on local memory while it is down."""
        if time.monotonic() >= self._retry_store_at:
            try:
                result = await operation(self.limiter, self.storage)
            except Exception as exc:
                log.warning("rate-limit store unavailable; failing open to per-worker counters",
                            extra={"event": "ratelimit.store_error", "error": type(exc).__name__,
                                   "retry_in_s": STORE_RETRY_AFTER})
                self._retry_store_at = time.monotonic() + STORE_RETRY_AFTER
            else:
                if self._retry_store_at:
                    log.warning("rate-limit store reachable again", extra={"event": "ratelimit.store_ok"})
                    self._retry_store_at = 0.0
                return result
        return await operation(self.local_limiter, self.local)

    async def hit(self, item: RateLimitItem | None, *key: str) -> Decision | None:
        """Count one event; None when the limit is off."""
        if item is None:
            return None

        async def count(limiter: FixedWindowRateLimiter, _storage: Storage) -> Decision:
            allowed = await limiter.hit(item, *key)
            return await _decision(limiter, item, key, allowed)

        return await self._run(count)

    async def check(self, item: RateLimitItem | None, *key: str) -> Decision | None:
        """Whether the limit is already exhausted, without counting."""
        if item is None:
            return None

        async def test(limiter: FixedWindowRateLimiter, _storage: Storage) -> Decision:
            allowed = await limiter.test(item, *key)
            return await _decision(limiter, item, key, allowed)

        return await self._run(test)

    async def enforce(self, item: RateLimitItem | None, *key: str, count: bool = True) -> Decision | None:
        """Count (or only check) and raise 429 when exhausted. A counted decision is also
        reported on the current response as RateLimit-* headers (the tightest one wins)."""
        decision = await (self.hit(item, *key) if count else self.check(item, *key))
        if decision is None:
            return None
        if not decision.allowed:
            raise TooManyRequests(decision.reset_in, headers=decision.headers())
        if count:
            _report(decision)
        return decision

    async def reset(self, item: RateLimitItem | None, *key: str) -> None:
        if item is not None:
            await self._run(lambda limiter, _storage: limiter.clear(item, *key))

    async def once_per(self, seconds: int, *key: str) -> bool:
        """True the first time ``key`` is seen in a window of ``seconds`` (audit bounding)."""
        item = parse(f"1/{seconds} second")
        return await self._run(lambda limiter, _storage: limiter.hit(item, "once", *key))

    async def add(self, key: str, amount: int = 1, expiry: int = 120) -> int:
        return await self._run(lambda _limiter, storage: storage.incr(key, expiry, amount))

    async def take(self, key: str) -> int:
        """Read and reset a counter."""

        async def take_from(_limiter: FixedWindowRateLimiter, storage: Storage) -> int:
            value = await storage.get(key)
            if value:
                await storage.clear(key)
            return int(value or 0)

        return await self._run(take_from)


async def _decision(limiter: FixedWindowRateLimiter, item: RateLimitItem, key: tuple[str, ...],
                    allowed: bool) -> Decision:
    stats = await limiter.get_window_stats(item, *key)
    reset_in = max(1, math.ceil(stats.reset_time - time.time()))
    return Decision(allowed, item.amount, stats.remaining, reset_in)


def _report(decision: Decision) -> None:
    """Keep the decision closest to exhaustion on the request being served, if any."""
    try:
        request = Request.get_current()
    except Exception:  # no request in flight (a command, a background task)
        return
    current = getattr(request.ctx, "rate_decision", None)
    if current is None or decision.remaining < current.remaining:
        request.ctx.rate_decision = decision
        request.ctx.rate_headers = decision.headers()


def _in_networks(ip: str, networks) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in networks)


def _item(spec: str | None) -> RateLimitItem | None:
    return parse(spec) if spec else None
