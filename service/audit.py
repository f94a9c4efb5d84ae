"""The audit log: every state change and security event, with the request's context.

State changes are recorded with :func:`record` on the use case's own transaction, so
the change and its record commit or roll back together. Security events use
:func:`security_event`, which for unauthenticated callers writes at most one row per
client IP and action per minute (counting the suppressed ones) while still emitting
a JSON log line for every event.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sanic.request import Request

from models import AuditEvent
from service.context import RequestContext, context_of
from service.platform.database import connection
from service.platform.jsonutil import scrub

log = logging.getLogger("service.audit")

# Keys that must never reach an audit row, whatever a caller passes.
_SECRET_KEYS = {"password", "current_password", "new_password", "token", "access_token",
                "refresh_token", "cookie", "authorization", "password_hash", "secret"}


def _clean(details: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (details or {}).items() if k.lower() not in _SECRET_KEYS}


async def record(
    conn,
    ctx: RequestContext,
    action: str,
    *,
    outcome: str = "success",
    target_type: str | None = None,
    target_id: Any = None,
    details: dict[str, Any] | None = None,
    actor_id: uuid.UUID | None = None,
) -> None:
    """Write one audit row on ``conn`` (the caller's transaction) and its log line; occurred_at
    is the database's clock_timestamp()."""
    actor = actor_id or ctx.actor_id
    clean = scrub(_clean(details))  # strings from headers may hold undecodable bytes
    await AuditEvent.create(
        using_db=conn, id=uuid.uuid4(), request_id=ctx.request_id, actor_id=actor, ip=ctx.ip, action=action,
        target_type=target_type, target_id=None if target_id is None else str(target_id), outcome=outcome,
        details=clean)
    _log(ctx, action, outcome, actor, target_type, target_id, clean)


def log_line(ctx: RequestContext, action: str, *, outcome: str = "success", target_type: str | None = None,
             target_id: Any = None, details: dict[str, Any] | None = None) -> None:
    """The JSON log line of an event whose row a statement of its own wrote (the create path)."""
    _log(ctx, action, outcome, ctx.actor_id, target_type, target_id, details or {})


def _log(ctx, action, outcome, actor, target_type, target_id, details, level=logging.INFO):
    log.log(level, action, extra={
        "event": action, "outcome": outcome, "request_id": ctx.request_id,
        "actor_id": str(actor) if actor else None, "ip": ctx.ip, "user_agent": ctx.user_agent,
        "target_type": target_type, "target_id": None if target_id is None else str(target_id),
        "details": details,
    })


async def security_event(
    request: Request,
    action: str,
    *,
    outcome: str = "denied",
    target_type: str | None = None,
    target_id: Any = None,
    details: dict[str, Any] | None = None,
    level: int = logging.WARNING,
) -> None:
    """Record a security event in its own transaction, bounded for anonymous callers."""
    ctx = context_of(request)
    clean = _clean(details)
    limits = request.app.ctx.limits
    # Anonymous callers are bounded per IP; a signed-in caller hammering a rate limit is
    # bounded per user, so neither can turn a flood into a flood of audit writes.
    flood_key = ctx.ip if ctx.user is None else (str(ctx.user.id) if action == "security.rate_limited" else None)
    if flood_key is not None:
        if not await limits.once_per(60, action, flood_key):
            await limits.add(f"audit-suppressed/{action}/{flood_key}")
            _log(ctx, action, outcome, ctx.actor_id, target_type, target_id, {**clean, "audited": False}, level)
            return
        suppressed = await limits.take(f"audit-suppressed/{action}/{flood_key}")
        if suppressed:
            clean["suppressed"] = suppressed
    try:
        await record(connection(), ctx, action, outcome=outcome, target_type=target_type,
                     target_id=target_id, details=clean)
    except Exception as exc:  # the event is still in the log line; the request goes on
        _log(ctx, action, outcome, ctx.actor_id, target_type, target_id,
             {**clean, "audited": False, "audit_error": type(exc).__name__}, logging.ERROR)
