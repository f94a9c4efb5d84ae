"""``create-admin``: the only way the first admin comes to exist (never over HTTP)."""

from __future__ import annotations

import getpass
import sys
import uuid

from tortoise.transactions import in_transaction

from service import audit
from service.accounts import _context_words, normalise_email
from service.context import RequestContext
from service.database import close_database, open_database
from service.passwords import hash_password, password_problem


def _prompt_password(email: str, full_name: str) -> str:
    if not sys.stdin.isatty():
        raise ValueError("set ADMIN_PASSWORD or run interactively to be prompted for the password")
    first = getpass.getpass("Password for the new admin: ")
    second = getpass.getpass("Repeat it: ")
    if first != second:
        raise ValueError("the passwords differ")
    return first


class AdminExists(ValueError):
    """The email is registered already and --promote was not given."""


async def create_admin(settings, email: str, full_name: str, password: str | None, *,
                       promote: bool = False, prompt=None) -> None:
    """Create an admin. An email that is already registered is refused (whoever registered it
    first may be an attacker waiting for exactly this) unless ``promote``: then that account
    becomes an admin with the operator's password, and every session it had is revoked."""
    email = normalise_email(email)
    full_name = full_name.strip()
    if "@" not in email or not 1 <= len(full_name) <= 200:
        raise ValueError("give a valid --email and a --full-name of 1-200 characters")
    ctx = RequestContext(request_id=f"cli-{uuid.uuid4().hex[:12]}", ip="cli", user_agent="create-admin")
    await open_database(settings)
    try:
        async with in_transaction() as conn:
            rows = await conn.execute_query_dict("SELECT id, role FROM users WHERE email = $1", [email])
        if rows and not promote:
            raise AdminExists(f"{email} is already registered; nothing was changed. Pass --promote to make "
                              "that account an admin with a new password (its sessions are revoked).")
        if password is None:
            password = (prompt or _prompt_password)(email, full_name)
        problem = password_problem(password, _context_words(email, full_name))
        if problem:
            raise ValueError(f"the password {problem}")
        password_hash = await hash_password(password, settings.bcrypt_rounds)
        if rows:
            user_id = rows[0]["id"]
            async with in_transaction() as conn:
                await conn.execute_query(
                    "UPDATE users SET role = 'admin', is_active = true, password_hash = $2, updated_at = now() "
                    "WHERE id = $1", [user_id, password_hash])
                revoked = await conn.execute_query_dict(
                    "UPDATE sessions SET revoked_at = now(), revoked_reason = 'promoted' "
                    "WHERE user_id = $1 AND revoked_at IS NULL RETURNING id", [user_id])
                await audit.record(conn, ctx, "admin.user.updated", target_type="user", target_id=user_id,
                                   details={"via": "cli", "role": [rows[0]["role"], "admin"],
                                            "password_reset": True, "sessions_revoked": len(revoked)})
            print(f"promoted {email} to admin; its password was replaced and {len(revoked)} session(s) revoked")
            return
        user_id = uuid.uuid4()
        async with in_transaction() as conn:
            await conn.execute_query(
                "INSERT INTO users (id, email, password_hash, full_name, role) VALUES ($1, $2, $3, $4, 'admin')",
                [user_id, email, password_hash, full_name])
            await audit.record(conn, ctx, "auth.register", actor_id=user_id, target_type="user",
                               target_id=user_id, details={"via": "cli", "role": "admin"})
        print(f"created admin {email}")
    finally:
        await close_database()
