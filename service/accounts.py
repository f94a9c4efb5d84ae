"""Use cases of the auth blueprint: accounts, sessions and refresh-token rotation.

Everything here goes through the models (``User``, ``Session``, ``RefreshToken``) in one
transaction per use case, the audit row inside it. The per-request session check is the hot
path and lives in ``service.authn``.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from models import RefreshToken, Session, User
from service import audit
from service.context import CurrentUser, RequestContext
from service.errors import (
    Conflict,
    Forbidden,
    InvalidCredentials,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from service.passwords import hash_password, needs_rehash, password_problem, verify_password
from service.platform.database import transaction, violated_constraint
from service.platform.ratelimit import RateLimits
from service.platform.settings import Settings
from service.tokens import hash_refresh_token, issue_access_token, new_refresh_token

USER_FIELDS = ("id", "email", "full_name", "role", "is_active", "created_at", "org_unit_id")
EMAIL_UNIQUE = "users_email_key"
# Why a session ended (sessions.revoked_reason); a reused refresh token's is kept apart.
REUSE = "refresh_reuse"


def user_json(row: Any) -> dict[str, Any]:
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    return {
        "id": get("id"),
        "email": get("email"),
        "full_name": get("full_name"),
        "role": str(get("role")),
        "is_active": get("is_active"),
        "created_at": get("created_at"),
        "org_unit_id": get("org_unit_id"),
    }


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class IssuedSession:
    access_token: str
    refresh_token: str
    refresh_max_age: int
    user: dict[str, Any]
    expires_in: int

    def token_response(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "token_type": "Bearer",
                "expires_in": self.expires_in, "user": self.user}


def _context_words(email: str, full_name: str) -> tuple[str, ...]:
    local = email.split("@", 1)[0]
    return (local, email, *full_name.split())


def _check_new_password(password: str, email: str, full_name: str, field: str) -> None:
    errors = _password_errors(password, email, full_name, field)
    if errors:
        raise ValidationFailed(errors)


def _password_errors(password: str, email: str, full_name: str, field: str) -> list[dict[str, str]]:
    problem = password_problem(password, _context_words(normalise_email(email), full_name))
    return [{"field": field, "message": problem.message, "code": problem.code}] if problem else []


def registration_errors(email: str, password: str, full_name: str) -> list[dict[str, str]]:
    """What the rules refuse in a registration (the email's syntax aside)."""
    return _password_errors(password, email, full_name, "password")


EMAIL_TAKEN = {"field": "email", "message": "is already registered", "code": "email_taken"}


async def email_taken_errors(email: str) -> list[dict[str, str]]:
    taken = await User.filter(email=normalise_email(email)).exists()
    return [dict(EMAIL_TAKEN)] if taken else []


async def register(settings: Settings, ctx: RequestContext, email: str, password: str,
                   full_name: str) -> dict[str, Any]:
    email = normalise_email(email)
    _check_new_password(password, email, full_name, "password")
    password_hash = await hash_password(password, settings.bcrypt_rounds)
    try:
        async with transaction() as tx:
            user = await User.create(using_db=tx, id=uuid.uuid4(), email=email, password_hash=password_hash,
                                     full_name=full_name)
            await audit.record(tx, ctx, "auth.register", actor_id=user.id, target_type="user", target_id=user.id)
    except IntegrityError as exc:
        if violated_constraint(exc) != EMAIL_UNIQUE:
            raise
        raise Conflict("An account with this email already exists.", code="email_taken",
                       errors=[dict(EMAIL_TAKEN)]) from None
    return user_json(user)


async def _create_session(tx, settings: Settings, user_id: uuid.UUID) -> tuple[uuid.UUID, str, int]:
    session = await Session.create(using_db=tx, id=uuid.uuid4(), user_id=user_id,
                                   expires_at=_now() + dt.timedelta(seconds=settings.refresh_token_ttl))
    token, token_hash = new_refresh_token()
    await RefreshToken.create(using_db=tx, token_hash=token_hash, session_id=session.id)
    return session.id, token, settings.refresh_token_ttl


async def login(settings: Settings, limits: RateLimits, ctx: RequestContext, email: str,
                password: str, on_limited) -> IssuedSession:
    email = normalise_email(email)
    try:
        await limits.enforce_ip(limits.login_ip, "login-ip", ctx.ip)
        # Consumed before the password is checked (an atomic increment, in Redis too): of N
        # simultaneous attempts on one account at most the limit's amount are ever evaluated.
        await limits.enforce(limits.login_account, "login-account", email)
    except TooManyRequests:
        await on_limited({"limit": "login", "email": email[:254]})
        raise
    user = await User.get_or_none(email=email)
    ok = await verify_password(password, user.password_hash if user else None, settings.bcrypt_rounds)
    if not ok or not user.is_active:
        raise InvalidCredentials()
    await limits.reset(limits.login_account, "login-account", email)
    upgraded = None
    if needs_rehash(user.password_hash, settings.bcrypt_rounds):
        upgraded = await hash_password(password, settings.bcrypt_rounds)
    async with transaction() as tx:
        if upgraded is not None:
            # Only if the hash is still the one verified (a concurrent change wins).
            await User.filter(id=user.id, password_hash=user.password_hash).using_db(tx).update(
                password_hash=upgraded)
        await prune_refresh_tokens(tx, user.id)
        session_id, token, max_age = await _create_session(tx, settings, user.id)
        await audit.record(tx, ctx, "auth.login.succeeded", actor_id=user.id,
                           target_type="session", target_id=session_id,
                           details={"hash_upgraded": True} if upgraded else None)
    return IssuedSession(
        access_token=issue_access_token(settings, user.id, session_id),
        refresh_token=token, refresh_max_age=max_age, user=user_json(user),
        expires_in=settings.access_token_ttl,
    )


async def prune_refresh_tokens(tx, user_id: uuid.UUID) -> None:
    """Forget the refresh tokens of the user's ended sessions: only a live session needs its
    used tokens (to detect reuse), and a session revoked for reuse keeps them until it expires
    so that every later refresh with one of them is still recognised as that session's."""
    ended = (Session.filter(user_id=user_id)
             .filter(Q(expires_at__lte=_now()) | (Q(revoked_at__isnull=False) & ~Q(revoked_reason=REUSE)))
             .using_db(tx).values_list("id", flat=True))
    ended_ids = await ended
    if ended_ids:
        await RefreshToken.filter(session_id__in=ended_ids).using_db(tx).delete()


def _invalid_refresh(code: str = "invalid_refresh") -> Unauthorized:
    if code == "session_revoked":
        return Unauthorized("The session was ended because a refresh token was used twice; sign in again.",
                            error="invalid_token", code=code)
    return Unauthorized("The refresh token is invalid or has expired.", error="invalid_token", code=code)


async def refresh(settings: Settings, ctx: RequestContext, token: str) -> IssuedSession:
    """Rotate the refresh token; a token that was already used revokes its session."""
    token_hash = hash_refresh_token(token)
    now = _now()
    async with transaction() as tx:
        # Atomic: of two refreshes presenting one token, only one marks it used.
        marked = await RefreshToken.filter(token_hash=token_hash, used_at__isnull=True).using_db(tx).update(
            used_at=now)
        session = await Session.filter(tokens__token_hash=token_hash).using_db(tx).select_related("user").first()
        if session is None:
            failure = "invalid_refresh"
        elif not marked:  # presented a second time: whoever holds it, the session is compromised
            failure = "session_revoked"
            if session.revoked_at is None:
                await Session.filter(id=session.id, revoked_at__isnull=True).using_db(tx).update(
                    revoked_at=now, revoked_reason=REUSE)
                await audit.record(tx, ctx, "auth.refresh.reuse_detected", outcome="denied",
                                   actor_id=session.user_id, target_type="session", target_id=session.id)
                logging.getLogger("service.security").critical(
                    "refresh token reuse detected; session revoked",
                    extra={"event": "authn_token_reuse", "session_id": str(session.id),
                           "user_id": str(session.user_id), "request_id": ctx.request_id, "ip": ctx.ip})
        elif session.revoked_at is not None or session.expires_at <= now or not session.user.is_active:
            failure = "session_revoked" if session.revoked_reason == REUSE else "invalid_refresh"
        else:
            failure = None
            new_token, new_hash = new_refresh_token()
            await RefreshToken.create(using_db=tx, token_hash=new_hash, session_id=session.id)
            await audit.record(tx, ctx, "auth.refresh", actor_id=session.user_id,
                               target_type="session", target_id=session.id)
    if failure is not None:  # raised after the block, so the revocation above is committed
        raise _invalid_refresh(failure)
    remaining = int((session.expires_at - now).total_seconds())
    return IssuedSession(
        access_token=issue_access_token(settings, session.user_id, session.id),
        refresh_token=new_token, refresh_max_age=max(1, remaining),
        user=user_json(session.user), expires_in=settings.access_token_ttl,
    )


async def session_for_refresh_token(token: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    session = await Session.filter(
        tokens__token_hash=hash_refresh_token(token), tokens__used_at__isnull=True, revoked_at__isnull=True,
        expires_at__gt=_now()).first()
    return (session.id, session.user_id) if session else None


async def logout(ctx: RequestContext, session_id: uuid.UUID, user_id: uuid.UUID) -> None:
    async with transaction() as tx:
        await Session.filter(id=session_id, revoked_at__isnull=True).using_db(tx).update(
            revoked_at=_now(), revoked_reason="logout")
        await prune_refresh_tokens(tx, user_id)
        await audit.record(tx, ctx, "auth.logout", actor_id=user_id, target_type="session", target_id=session_id)


async def update_profile(ctx: RequestContext, user: CurrentUser, full_name: str) -> dict[str, Any]:
    async with transaction() as tx:
        account = await User.get(id=user.id, using_db=tx)
        account.full_name = full_name
        await account.save(using_db=tx, update_fields=["full_name", "updated_at"])
        await audit.record(tx, ctx, "user.profile.updated", target_type="user", target_id=user.id,
                           details={"fields": ["full_name"]})
    return user_json(account)


async def change_password(settings: Settings, limits: RateLimits, ctx: RequestContext,
                          user: CurrentUser, current: str, new: str) -> None:
    # Consumed before the current password is checked, like a login (the caller audits a 429).
    await limits.enforce(limits.login_account, "login-account", user.email)
    stored = await User.filter(id=user.id).values_list("password_hash", flat=True)
    if not await verify_password(current, stored[0] if stored else None, settings.bcrypt_rounds):
        await _password_change_refused(ctx, user, "wrong_current_password")
        raise Forbidden("The current password is incorrect.")
    await limits.reset(limits.login_account, "login-account", user.email)
    try:
        _check_new_password(new, user.email, user.full_name, "new_password")
    except ValidationFailed:
        await _password_change_refused(ctx, user, "weak_new_password")
        raise
    new_hash = await hash_password(new, settings.bcrypt_rounds)
    async with transaction() as tx:
        await User.filter(id=user.id).using_db(tx).update(password_hash=new_hash, updated_at=_now())
        revoked = await Session.filter(user_id=user.id, revoked_at__isnull=True).exclude(
            id=user.session_id).using_db(tx).update(revoked_at=_now(), revoked_reason="password_changed")
        await prune_refresh_tokens(tx, user.id)
        await audit.record(tx, ctx, "auth.password.changed", target_type="user", target_id=user.id,
                           details={"sessions_revoked": revoked})


async def _password_change_refused(ctx: RequestContext, user: CurrentUser, reason: str) -> None:
    async with transaction() as tx:
        await audit.record(tx, ctx, "auth.password.changed", outcome="failure",
                           target_type="user", target_id=user.id, details={"reason": reason})
