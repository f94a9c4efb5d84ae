"""``create-admin``: the only way the first admin comes to exist (never over HTTP)."""

from __future__ import annotations

import datetime as dt
import getpass
import sys
import uuid

from models import Role, Session, User
from service import audit
from service.accounts import _context_words, normalise_email
from service.context import RequestContext
from service.passwords import hash_password, password_problem
from service.platform.database import close_database, open_database, transaction


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
        existing = await User.get_or_none(email=email)
        if existing is not None and not promote:
            raise AdminExists(f"{email} is already registered; nothing was changed. Pass --promote to make "
                              "that account an admin with a new password (its sessions are revoked).")
        if password is None:
            password = (prompt or _prompt_password)(email, full_name)
        problem = password_problem(password, _context_words(email, full_name))
        if problem:
            raise ValueError(f"the password {problem}")
        password_hash = await hash_password(password, settings.bcrypt_rounds)
        if existing is not None:
            async with transaction() as tx:
                before = str(existing.role)
                existing.role, existing.is_active, existing.password_hash = Role.ADMIN, True, password_hash
                await existing.save(using_db=tx, update_fields=["role", "is_active", "password_hash", "updated_at"])
                revoked = await Session.filter(user_id=existing.id, revoked_at__isnull=True).using_db(tx).update(
                    revoked_at=dt.datetime.now(dt.UTC), revoked_reason="promoted")
                await audit.record(tx, ctx, "admin.user.updated", target_type="user", target_id=existing.id,
                                   details={"via": "cli", "role": [before, "admin"], "password_reset": True,
                                            "sessions_revoked": revoked})
            print(f"promoted {email} to admin; its password was replaced and {revoked} session(s) revoked")
            return
        async with transaction() as tx:
            user = await User.create(using_db=tx, id=uuid.uuid4(), email=email, password_hash=password_hash,
                                     full_name=full_name, role=Role.ADMIN)
            await audit.record(tx, ctx, "auth.register", actor_id=user.id, target_type="user",
                               target_id=user.id, details={"via": "cli", "role": "admin"})
        print(f"created admin {email}")
    finally:
        await close_database()
