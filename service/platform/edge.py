"""The edge every request crosses: body limits, request ids, security headers, the
request log line, CORS and the CSRF origin check of the cookie endpoints."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time

from sanic import Sanic
from sanic.exceptions import PayloadTooLarge, RequestTimeout
from sanic.request import Request
from sanic.response import HTTPResponse

from service.authn import bearer_token
from service.errors import Forbidden, Unauthorized
from service.platform.logs import info_line
from service.platform.requestctx import client_ip_of, request_id_of
from service.tokens import InvalidToken, verify_access_token

log = logging.getLogger("service.http")
PID = os.getpid()  # the request log's "pid" (a system call per line otherwise)


def _forked() -> None:
    global PID
    PID = os.getpid()


os.register_at_fork(after_in_child=_forked)

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


CORS_ALLOW_HEADERS = ("authorization", "content-type", "if-match", "if-none-match", "x-request-id")
CORS_EXPOSE_HEADERS = ("etag", "location", "x-request-id", "retry-after", "content-disposition",
                       "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")
CORS_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class JournalRequest(Request):
    """Reads the body under the route's limit: a Content-Length over it is refused before a
    byte of the body is read, a chunked body as soon as its running total passes it, and a
    client that stops sending mid-body gets 408."""

    async def receive_body(self):
        stream = self.stream
        if self.body or stream is None or not stream.request_body:
            return
        limit = body_limit_of(self)
        stream.request_max_size = min(limit, stream.request_max_size)
        announced = self.headers.getone("content-length", None)
        if announced is not None and announced.isdigit() and int(announced) > limit:
            # No "100 Continue" for a body we will not read; the connection is closed
            # after the answer instead of draining the rest.
            stream.expecting_continue = False
            stream.keep_alive = False
            raise PayloadTooLarge("Request body exceeds the size limit")
        config = self.app.config
        # Sanic counts body time as handler time (RESPONSE_TIMEOUT, answered with 503); a
        # stalled upload is the client's fault, so answer it with 408 just before that.
        idle = max(0.5, min(config.REQUEST_TIMEOUT, config.RESPONSE_TIMEOUT - 1))
        # A body that trickles in (a byte now and then, never idle for long) must still
        # arrive whole within REQUEST_BODY_TIMEOUT, or one client holds a worker's slot forever.
        deadline = time.monotonic() + self.app.ctx.settings.request_body_timeout
        chunks = []
        while stream.request_body:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                data = await asyncio.wait_for(stream.read(), min(idle, remaining))
            except TimeoutError:
                stream.keep_alive = False
                stream.request_body = None  # nothing more is read from this connection
                raise RequestTimeout("Request Timeout") from None
            if data:
                chunks.append(data)
        self.body = b"".join(chunks)


def body_limit_of(request: Request) -> int:
    """The route's limit; above the default only for a caller with a validly signed token,
    so an anonymous client cannot make a worker buffer megabytes before it gets its 401."""
    route = request.route
    limit = getattr(route.ctx, "body_limit", DEFAULT_BODY_LIMIT) if route else DEFAULT_BODY_LIMIT
    if limit <= DEFAULT_BODY_LIMIT or getattr(route.ctx, "public", False):
        return limit
    token = bearer_token(request)
    if token and _signature_valid(request, token):
        return limit
    announced = request.headers.getone("content-length", "")
    if announced.isdigit() and int(announced) <= DEFAULT_BODY_LIMIT:
        return DEFAULT_BODY_LIMIT  # small enough: authentication answers as usual
    # The 401 authentication would give anyway, given before the body is read.
    request.stream.expecting_continue = False
    request.stream.keep_alive = False
    request.stream.request_max_size = DEFAULT_BODY_LIMIT  # at most this much is drained
    if token is None:
        raise Unauthorized()
    raise Unauthorized("The access token is invalid or has expired.", error="invalid_token")


def _signature_valid(request: Request, token: str) -> bool:
    try:
        verify_access_token(request.app.ctx.settings, token)
    except InvalidToken:
        return False
    return True


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
    # Only the docs pages (routes declared with ctx_docs_page=True) may run their scripts.
    docs_page = request.route is not None and getattr(request.route.ctx, "docs_page", False)
    headers["Content-Security-Policy"] = DOCS_CSP if docs_page and response.status < 400 else API_CSP
    if is_https(request):
        headers["Strict-Transport-Security"] = HSTS
    if "cache-control" not in headers:
        headers["Cache-Control"] = "public, max-age=3600" if is_docs and response.status == 200 else "no-store"
    for name, value in (getattr(request.ctx, "rate_headers", None) or {}).items():
        headers.setdefault(name, value)
    headers.pop("server", None)
    started = getattr(request.ctx, "started", None)
    user = getattr(request.ctx, "user", None)
    info_line(log, "request", {
        "event": "http.request",
        "method": request.method,
        "path": loggable_path(request.path),
        "status": response.status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
        "request_id": rid,
        "user_id": str(user.id) if user else None,
        "ip": client_ip_of(request),
        "pid": PID,  # which worker answered
    })


PUBLIC_PORTFOLIO = "/api/v1/public/portfolio/"


def loggable_path(path: str) -> str:
    """The path as the request log shows it: a share link's token is a secret, never logged."""
    if path.startswith(PUBLIC_PORTFOLIO):
        return PUBLIC_PORTFOLIO + "[redacted]"
    return path


async def answer_options(request: Request) -> HTTPResponse | None:
    """OPTIONS, CORS preflights included, never carries credentials: sanic-ext's automatic
    answer (Allow, and the CORS headers) is given before authentication could refuse it."""
    route = request.route
    if request.method == "OPTIONS" and route is not None and getattr(route.handler, "__auto_handler__", False):
        return await route.handler(request, **request.match_info)
    return None


async def guard_cors(request: Request, response: HTTPResponse) -> None:
    """Runs after sanic-ext's CORS: a preflight asking for a method or header we do not
    allow gets no CORS headers at all, and every response says it varies by Origin."""
    headers = response.headers
    if not request.app.ctx.settings.cors_origins:
        return
    vary = headers.get("vary", "")
    if "origin" not in {v.strip().lower() for v in vary.split(",")}:
        headers["Vary"] = f"{vary}, Origin" if vary else "Origin"
    wanted_method = request.headers.getone("access-control-request-method", None)
    if request.method != "OPTIONS" or wanted_method is None:
        return
    granted_methods = {m.strip() for m in headers.get("access-control-allow-methods", "").split(",")}
    granted_headers = {h.strip().lower() for h in headers.get("access-control-allow-headers", "").split(",")}
    wanted_headers = {h.strip().lower()
                      for h in request.headers.getone("access-control-request-headers", "").split(",")}
    wanted_headers.discard("")
    if wanted_method not in granted_methods or not wanted_headers <= granted_headers:
        for name in [k for k in headers if k.lower().startswith("access-control-")]:
            del headers[name]


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
    # Exact origins: sanic-ext matches with re.match, so each is escaped and anchored with \Z
    # ("$" would also accept the origin followed by a newline).
    app.config.CORS_ORIGINS = [re.compile(re.escape(origin) + r"\Z") for origin in settings.cors_origins] or ""
    app.config.CORS_SUPPORTS_CREDENTIALS = True
    app.config.CORS_ALLOW_HEADERS = list(CORS_ALLOW_HEADERS)
    app.config.CORS_EXPOSE_HEADERS = list(CORS_EXPOSE_HEADERS)
    app.config.CORS_METHODS = list(CORS_METHODS)
    app.config.CORS_MAX_AGE = 600
    app.config.CORS_SEND_WILDCARD = False
    app.config.CORS_ALWAYS_SEND = False
    app.config.CORS_VARY_HEADER = True
    # Request middleware runs highest priority first; response middleware lowest first
    # (so guard_cors, at 100, runs after sanic-ext's CORS middleware at 0).
    app.register_middleware(start_request, "request", priority=100)
    app.register_middleware(answer_options, "request", priority=90)
    app.register_middleware(finish_response, "response", priority=-100)
    app.register_middleware(guard_cors, "response", priority=100)
