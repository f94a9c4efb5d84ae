"""Per-request context: the request id and the client IP, computed once."""

from __future__ import annotations

import os
import re

from sanic.request import Request

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def request_id_of(request: Request) -> str:
    ctx = request.ctx
    rid = getattr(ctx, "request_id", None)
    if rid is None:
        supplied = request.headers.getone("x-request-id", "")
        # 128 random bits as 32 hex digits (as uuid4().hex, without building a UUID)
        rid = supplied if _CLIENT_ID.match(supplied) else os.urandom(16).hex()
        ctx.request_id = rid
    return rid


def client_ip_of(request: Request) -> str:
    """Proxy-aware only when PROXIES_COUNT trusts a proxy (Sanic's remote_addr)."""
    ip = getattr(request.ctx, "client_ip", None)
    if ip is None:
        ip = (request.remote_addr if request.app.config.PROXIES_COUNT else "") or request.ip or "unknown"
        request.ctx.client_ip = ip
    return ip
