"""JWT verification shared by every protected blueprint.

Routes under ``/api/`` require a bearer token unless declared with ``ctx_public=True``.
The session and the user are loaded with one indexed query on every request, so
logout, password change, deactivation and role changes take effect at once.
"""

from __future__ import annotations

import uuid
from functools import wraps

from sanic.request import Request

from service.audit import security_event
from service.context import CurrentUser
from service.errors import Forbidden, NotFound, TooManyRequests, Unauthorized
from service.platform.database import fetch
from service.platform.jsonutil import uuid_or_none
from service.tokens import InvalidToken, verify_access_token

# SQL, the measured hot path: every authenticated request runs it (one indexed join); the role,
# the account state and the membership are read here each time, so changes apply at once.
SESSION_USER = (
    "SELECT u.id, u.email, u.full_name, u.role, u.is_active, u.created_at, u.org_unit_id "
    "FROM sessions s JOIN users u ON u.id = s.user_id "
    "WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL "
    "AND s.expires_at > now() AND u.is_active"
)


def bearer_token(request: Request) -> str | None:
    header = request.headers.getone("authorization", None)
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return ""
    return token.strip()


async def user_for_token(request: Request, token: str) -> CurrentUser:
    settings = request.app.ctx.settings
    try:
        claims = verify_access_token(settings, token)
    except InvalidToken:
        await security_event(request, "security.access_denied", outcome="failure",
                             details={"reason": "invalid_token"})
        raise Unauthorized("The access token is invalid or has expired.", error="invalid_token") from None
    rows = await fetch(SESSION_USER, claims.session_id, claims.user_id)
    if not rows:
        await security_event(request, "security.access_denied", outcome="failure",
                             details={"reason": "session_revoked_or_user_inactive"})
        raise Unauthorized("The session has ended; sign in again.", error="invalid_token")
    row = rows[0]
    return CurrentUser(
        id=row["id"], email=row["email"], full_name=row["full_name"], role=row["role"],
        is_active=row["is_active"], created_at=row["created_at"], session_id=claims.session_id,
        org_unit_id=row["org_unit_id"],
    )


async def authenticate(request: Request) -> None:
    """Request middleware: set ``request.ctx.user`` on protected routes or answer 401."""
    request.ctx.user = None
    route = request.route
    if route is None or not request.path.startswith("/api/") or getattr(route.ctx, "public", False):
        return
    token = bearer_token(request)
    if token is None:
        raise Unauthorized()
    if not token:
        raise Unauthorized("The Authorization header must carry a Bearer token.", error="invalid_request")
    user = await user_for_token(request, token)
    request.ctx.user = user
    limits = request.app.ctx.limits
    if limits.api_user is None:  # switched off
        return
    try:
        decision = await limits.enforce(limits.api_user, "api-user", str(user.id))
    except TooManyRequests:
        await security_event(request, "security.rate_limited", details={"limit": "api_user"})
        raise
    if decision is not None:
        request.ctx.rate_headers = decision.headers()


def current_user(request: Request) -> CurrentUser:
    user = getattr(request.ctx, "user", None)
    if user is None:  # a handler on a public route asked for a user: a programming error
        raise Unauthorized()
    return user


def require_role(*roles: str):
    """Refuse (403) callers whose role is not one of ``roles``, before any lookup."""

    def decorator(handler):
        @wraps(handler)
        async def wrapped(request: Request, *args, **kwargs):
            user = current_user(request)
            if user.role not in roles:
                await security_event(request, "security.access_denied",
                                     details={"reason": "role", "required": list(roles),
                                              "role": user.role, "path": request.path})
                raise Forbidden("Your role does not allow this action.")
            return await handler(request, *args, **kwargs)

        return wrapped

    return decorator


def parse_uuid_or_404(value: str) -> uuid.UUID:
    parsed = uuid_or_none(value)
    if parsed is None:
        raise NotFound()
    return parsed

