"""Use cases of the auth blueprint: accounts, sessions and refresh-token rotation."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from tortoise.exceptions import IntegrityError

from service import audit
from service.context import CurrentUser, RequestContext
from service.database import connection, transaction
from service.errors import (
    Conflict,
    Forbidden,
    InvalidCredentials,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from service.jsonutil import iso
from service.passwords import hash_password, needs_rehash, password_problem, verify_password
from service.ratelimit import RateLimits
from service.settings import Settings
from service.tokens import hash_refresh_token, issue_access_token, new_refresh_token

USER_COLUMNS = "id, email, full_name, role, is_active, created_at"


def user_json(row: Any) -> dict[str, Any]:
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    return {
        "id": str(get("id")),
        "email": get("email"),
        "full_name": get("full_name"),
        "role": get("role"),
        "is_active": get("is_active"),
        "created_at": iso(get("created_at")),
    }


def normalise_email(email: str) -> str:
    return email.strip().lower()


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
    rows = await connection().execute_query_dict("SELECT 1 FROM users WHERE email = $1", [normalise_email(email)])
    return [dict(EMAIL_TAKEN)] if rows else []


async def register(settings: Settings, ctx: RequestContext, email: str, password: str,
                   full_name: str) -> dict[str, Any]:
    email = normalise_email(email)
    _check_new_password(password, email, full_name, "password")
    password_hash = await hash_password(password, settings.bcrypt_rounds)
    user_id = uuid.uuid4()
    try:
        async with transaction() as conn:
            rows = await conn.execute_query_dict(
                f"INSERT INTO users (id, email, password_hash, full_name) VALUES ($1, $2, $3, $4) "
                f"RETURNING {USER_COLUMNS}",
                [user_id, email, password_hash, full_name],
            )
            await audit.record(conn, ctx, "auth.register", actor_id=user_id,
                               target_type="user", target_id=user_id)
    except IntegrityError as exc:
        if "users_email_key" not in str(exc):
            raise
        raise Conflict("An account with this email already exists.", code="email_taken",
                       errors=[dict(EMAIL_TAKEN)]) from None
    return user_json(rows[0])


async def _create_session(conn, settings: Settings, user_id: uuid.UUID) -> tuple[uuid.UUID, str, int]:
    session_id = uuid.uuid4()
    expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=settings.refresh_token_ttl)
    await conn.execute_query(
        "INSERT INTO sessions (id, user_id, expires_at) VALUES ($1, $2, $3)",
        [session_id, user_id, expires_at],
    )
    token, token_hash = new_refresh_token()
    await conn.execute_query(
        "INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)", [token_hash, session_id]
    )
    return session_id, token, settings.refresh_token_ttl


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
    rows = await connection().execute_query_dict(
        f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1", [email]
    )
    row = rows[0] if rows else None
    ok = await verify_password(password, row["password_hash"] if row else None, settings.bcrypt_rounds)
    if not ok or not row["is_active"]:
        raise InvalidCredentials()
    await limits.reset(limits.login_account, "login-account", email)
    upgraded = None
    if needs_rehash(row["password_hash"], settings.bcrypt_rounds):
        upgraded = await hash_password(password, settings.bcrypt_rounds)
    async with transaction() as conn:
        if upgraded is not None:
            # Only if the hash is still the one verified (a concurrent change wins).
            await conn.execute_query(
                "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2",
                [row["id"], row["password_hash"], upgraded])
        await prune_refresh_tokens(conn, row["id"])
        session_id, token, max_age = await _create_session(conn, settings, row["id"])
        await audit.record(conn, ctx, "auth.login.succeeded", actor_id=row["id"],
                           target_type="session", target_id=session_id,
                           details={"hash_upgraded": True} if upgraded else None)
    return IssuedSession(
        access_token=issue_access_token(settings, row["id"], session_id),
        refresh_token=token, refresh_max_age=max_age, user=user_json(row),
        expires_in=settings.access_token_ttl,
    )


async def prune_refresh_tokens(conn, user_id: uuid.UUID) -> None:
    """Forget the refresh tokens of the user's ended sessions: only a live session needs its
    used tokens (to detect reuse), and a session revoked for reuse keeps them until it expires
    so that every later refresh with one of them is still recognised as that session's."""
    await conn.execute_query(
        "DELETE FROM refresh_tokens t USING sessions s WHERE t.session_id = s.id AND s.user_id = $1 "
        "AND (s.expires_at <= now() OR (s.revoked_at IS NOT NULL "
        "AND s.revoked_reason IS DISTINCT FROM 'refresh_reuse'))", [user_id])


async def refresh(settings: Settings, ctx: RequestContext, token: str) -> IssuedSession:
    """Rotate the refresh token; a token that was already used revokes its session."""
    token_hash = hash_refresh_token(token)
    async with transaction() as conn:
        used = await conn.execute_query_dict(
            "UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1 AND used_at IS NULL "
            "RETURNING session_id", [token_hash],
        )
        if not used:
            reused = await conn.execute_query_dict(
                "SELECT t.session_id, s.user_id, s.revoked_at FROM refresh_tokens t "
                "JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1", [token_hash],
            )
            if reused:
                session_id, user_id = reused[0]["session_id"], reused[0]["user_id"]
                await conn.execute_query(
                    "UPDATE sessions SET revoked_at = now(), revoked_reason = 'refresh_reuse' "
                    "WHERE id = $1 AND revoked_at IS NULL", [session_id],
                )
                await audit.record(conn, ctx, "auth.refresh.reuse_detected", outcome="denied",
                                   actor_id=user_id, target_type="session", target_id=session_id)
                logging.getLogger("service.security").critical(
                    "refresh token reuse detected; session revoked",
                    extra={"event": "authn_token_reuse", "session_id": str(session_id),
                           "user_id": str(user_id), "request_id": ctx.request_id, "ip": ctx.ip})
        else:
            session_id = used[0]["session_id"]
            rows = await conn.execute_query_dict(
                f"SELECT s.expires_at, u.{USER_COLUMNS.replace(', ', ', u.')} FROM sessions s "
                "JOIN users u ON u.id = s.user_id WHERE s.id = $1 AND s.revoked_at IS NULL "
                "AND s.expires_at > now() AND u.is_active", [session_id],
            )
            if rows:
                row = rows[0]
                new_token, new_hash = new_refresh_token()
                await conn.execute_query(
                    "INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)",
                    [new_hash, session_id],
                )
                await audit.record(conn, ctx, "auth.refresh", actor_id=row["id"],
                                   target_type="session", target_id=session_id)
                remaining = int((row["expires_at"] - dt.datetime.now(dt.UTC)).total_seconds())
                return IssuedSession(
                    access_token=issue_access_token(settings, row["id"], session_id),
                    refresh_token=new_token, refresh_max_age=max(1, remaining),
                    user=user_json(row), expires_in=settings.access_token_ttl,
                )
    raise Unauthorized("The refresh token is invalid or has expired.", error="invalid_token")


async def session_for_refresh_token(token: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    rows = await connection().execute_query_dict(
        "SELECT s.id, s.user_id FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id "
        "WHERE t.token_hash = $1 AND t.used_at IS NULL AND s.revoked_at IS NULL AND s.expires_at > now()",
        [hash_refresh_token(token)],
    )
    return (rows[0]["id"], rows[0]["user_id"]) if rows else None


async def logout(ctx: RequestContext, session_id: uuid.UUID, user_id: uuid.UUID) -> None:
    async with transaction() as conn:
        await conn.execute_query(
            "UPDATE sessions SET revoked_at = now(), revoked_reason = 'logout' "
            "WHERE id = $1 AND revoked_at IS NULL", [session_id],
        )
        await prune_refresh_tokens(conn, user_id)
        await audit.record(conn, ctx, "auth.logout", actor_id=user_id,
                           target_type="session", target_id=session_id)


async def update_profile(ctx: RequestContext, user: CurrentUser, full_name: str) -> dict[str, Any]:
    async with transaction() as conn:
        rows = await conn.execute_query_dict(
            f"UPDATE users SET full_name = $2, updated_at = now() WHERE id = $1 RETURNING {USER_COLUMNS}",
            [user.id, full_name],
        )
        await audit.record(conn, ctx, "user.profile.updated", target_type="user", target_id=user.id,
                           details={"fields": ["full_name"]})
    return user_json(rows[0])


async def change_password(settings: Settings, limits: RateLimits, ctx: RequestContext,
                          user: CurrentUser, current: str, new: str) -> None:
    # Consumed before the current password is checked, like a login (the caller audits a 429).
    await limits.enforce(limits.login_account, "login-account", user.email)
    rows = await connection().execute_query_dict(
        "SELECT password_hash FROM users WHERE id = $1", [user.id])
    if not await verify_password(current, rows[0]["password_hash"] if rows else None,
                                 settings.bcrypt_rounds):
        await _password_change_refused(ctx, user, "wrong_current_password")
        raise Forbidden("The current password is incorrect.")
    await limits.reset(limits.login_account, "login-account", user.email)
    try:
        _check_new_password(new, user.email, user.full_name, "new_password")
    except ValidationFailed:
        await _password_change_refused(ctx, user, "weak_new_password")
        raise
    new_hash = await hash_password(new, settings.bcrypt_rounds)
    async with transaction() as conn:
        await conn.execute_query(
            "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1", [user.id, new_hash])
        revoked = await conn.execute_query_dict(
            "UPDATE sessions SET revoked_at = now(), revoked_reason = 'password_changed' "
            "WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL RETURNING id",
            [user.id, user.session_id],
        )
        await prune_refresh_tokens(conn, user.id)
        await audit.record(conn, ctx, "auth.password.changed", target_type="user", target_id=user.id,
                           details={"sessions_revoked": len(revoked)})


async def _password_change_refused(ctx: RequestContext, user: CurrentUser, reason: str) -> None:
    async with transaction() as conn:
        await audit.record(conn, ctx, "auth.password.changed", outcome="failure",
                           target_type="user", target_id=user.id, details={"reason": reason})
