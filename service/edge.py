"""The edge every request crosses: body limits, request ids, security headers, the
request log line, CORS and the CSRF origin check of the cookie endpoints."""

from __future__ import annotations

import logging
import time

from sanic import Sanic
from sanic.request import Request
from sanic.response import HTTPResponse

from service.errors import Forbidden
from service.requestctx import client_ip_of, request_id_of

log = logging.getLogger("service.http")

KIB = 1024
DEFAULT_BODY_LIMIT = 64 * KIB
LARGEST_BODY_LIMIT = 8 * KIB * KIB

API_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; worker-src 'self' blob:; base-uri 'none'; "
    "object-src 'none'; form-action 'none'; frame-ancestors 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"


class JournalRequest(Request):
    """Applies the route's body limit before the body is read (Content-Length or chunked)."""

    async def receive_body(self):
        route = self.route
        limit = getattr(route.ctx, "body_limit", DEFAULT_BODY_LIMIT) if route else DEFAULT_BODY_LIMIT
        if self.stream is not None:
            self.stream.request_max_size = min(limit, self.stream.request_max_size)
        await super().receive_body()


def body_limit(nbytes: int) -> dict:
    """Route keyword arguments that give a route its own body limit."""
    return {"ctx_body_limit": nbytes}


async def start_request(request: Request) -> None:
    request.ctx.started = time.perf_counter()
    request_id_of(request)


def is_https(request: Request) -> bool:
    # request.scheme honours X-Forwarded-Proto only when a proxy is trusted (PROXIES_COUNT).
    return request.scheme in ("https", "wss")


async def finish_response(request: Request, response: HTTPResponse) -> None:
    headers = response.headers
    rid = request_id_of(request)
    headers["X-Request-ID"] = rid
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Frame-Options"] = "DENY"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"
    is_docs = request.path == "/docs" or request.path.startswith("/docs/")
    headers["Content-Security-Policy"] = DOCS_CSP if is_docs and response.status < 400 else API_CSP
    if is_https(request):
        headers["Strict-Transport-Security"] = HSTS
    if "cache-control" not in headers:
        headers["Cache-Control"] = "public, max-age=3600" if is_docs and response.status == 200 else "no-store"
    for name, value in (getattr(request.ctx, "rate_headers", None) or {}).items():
        headers.setdefault(name, value)
    headers.pop("server", None)
    started = getattr(request.ctx, "started", None)
    user = getattr(request.ctx, "user", None)
    log.info("request", extra={
        "event": "http.request",
        "method": request.method,
        "path": request.path,
        "status": response.status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
        "request_id": rid,
        "user_id": str(user.id) if user else None,
        "ip": client_ip_of(request),
    })


def own_origin(request: Request) -> str:
    return f"{request.scheme}://{request.host}"


def check_origin(request: Request) -> None:
    """CSRF defence for the cookie endpoints: a foreign Origin is refused outright."""
    origin = request.headers.getone("origin", None)
    if origin is None:
        return
    allowed = set(request.app.ctx.settings.cors_origins) | {own_origin(request)}
    if origin.rstrip("/") not in allowed:
        raise Forbidden("This origin may not use the session cookie.")


def setup_edge(app: Sanic) -> None:
    settings = app.ctx.settings
    app.config.REQUEST_MAX_SIZE = LARGEST_BODY_LIMIT
    app.config.PROXIES_COUNT = settings.proxies_count
    app.config.REAL_IP_HEADER = None
    app.config.FORWARDED_SECRET = None
    app.config.CORS_ORIGINS = list(settings.cors_origins) or ""
    app.config.CORS_SUPPORTS_CREDENTIALS = True
    app.config.CORS_ALLOW_HEADERS = ["authorization", "content-type", "if-match", "if-none-match",
                                     "x-request-id"]
    app.config.CORS_EXPOSE_HEADERS = ["etag", "location", "x-request-id", "retry-after",
                                      "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"]
    app.config.CORS_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    app.config.CORS_MAX_AGE = 600
    app.config.CORS_SEND_WILDCARD = False
    app.config.CORS_VARY_HEADER = True
    app.register_middleware(start_request, "request", priority=100)
    app.register_middleware(finish_response, "response", priority=-100)
