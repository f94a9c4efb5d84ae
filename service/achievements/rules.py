"""The rules of achievements, as pure functions: who may do what, what a valid proof URL and
date are, ETags and preconditions. No I/O here: ``tests/test_rules.py`` checks them directly."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from models.enums import Role
from service.context import CurrentUser
from service.errors import ApiError, Forbidden, NotFound, PreconditionFailed, PreconditionRequired, RuleError

MIN_DATE = dt.date(1900, 1, 1)
CONTENT_FIELDS = ("title", "type", "level", "result", "date", "proof_url", "description")


# --- who may do what ------------------------------------------------------------------------------

def authorize(user: CurrentUser, owner_id: uuid.UUID | None, action: str, *, in_reach: bool = True) -> None:
    """The one place that decides who may do what with an achievement (``owner_id`` None: no
    such achievement; ``in_reach``: the owner is within the caller's scope, see
    ``service.university``). Whoever may not see an achievement gets the same 404 as for a
    missing one; staff who see it get 403 for what their role may not do to it."""
    if owner_id is None:
        raise NotFound("No such achievement.")
    if owner_id == user.id:
        if action == "review":
            raise denied(Forbidden("Nobody reviews their own achievement."), "own_review")
        return
    if not user.is_staff:
        raise denied(NotFound("No such achievement."), "not_owner")
    if not in_reach:
        raise denied(NotFound("No such achievement."), "out_of_scope")
    if action in ("read", "review"):
        return
    if action == "delete" and user.role == Role.ADMIN:
        return
    raise denied(Forbidden("Only the owner may change this achievement."), "not_owner")


def list_owner(user: CurrentUser, requested: uuid.UUID | str | None) -> uuid.UUID | None:
    """Whose achievements a list, export or stats call covers: one's own by default; staff may
    name a user or ``"any"`` (None: everyone), a student who tries gets 403."""
    if requested is None:
        return user.id
    if not user.is_staff:
        raise denied(Forbidden("Only curators and admins may list other users' achievements."), "owner_filter")
    return None if requested == "any" else requested


def denied(error: ApiError, reason: str) -> ApiError:
    """Mark a refusal as an access-control decision: the error handler audits it."""
    error.denied_reason = reason
    return error


# --- ETags and preconditions (RFC 9110 13.1) ---------------------------------------------------------

def etag_of(achievement_id: uuid.UUID, version: int) -> str:
    return f'"{achievement_id}.{version}"'


def body_etag(payload: bytes) -> str:
    return '"' + hashlib.sha256(payload).hexdigest()[:32] + '"'


def etag_matches(header: str | None, etag: str) -> bool:
    """Strong comparison for If-Match; ``*`` matches any current entity; no header matches."""
    if header is None:
        return True
    candidates = [c.strip() for c in header.split(",")]
    return "*" in candidates or etag in candidates


def none_match(header: str | None, etag: str) -> bool:
    """True when If-None-Match names the current entity (weak comparison)."""
    if not header:
        return False
    candidates = [c.strip().removeprefix("W/") for c in header.split(",")]
    return "*" in candidates or etag in candidates


@dataclass(frozen=True)
class Preconditions:
    """What a conditional write asks of the current version."""

    if_match: str | None = None
    if_none_match: str | None = None

    def check(self, etag: str, *, require_match: bool = False) -> None:
        """412 when a precondition fails (If-None-Match that matches, ``*`` included, fails
        a write), 428 when ``If-Match`` is required and missing; nothing is written then."""
        if require_match and (self.if_match is None or self.if_match.strip() == "*"):
            # "*" names no version: it would let a curator judge content they never saw.
            raise PreconditionRequired("Send If-Match with the ETag of the version you reviewed.")
        if not etag_matches(self.if_match, etag) or none_match(self.if_none_match, etag):
            raise PreconditionFailed()


# --- field rules (the request models apply them; the document states them) ---------------------

_HOST_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)


def check_proof_url(value: str) -> str:
    """Absolute http(s) URL, no credentials, no local or private host, at most 2048 chars."""
    if len(value) > 2048:
        raise RuleError("too_long", "must be at most 2048 characters")
    if value != value.strip() or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise RuleError("invalid_url", "must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise RuleError("invalid_url", "must be a valid absolute URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise RuleError("invalid_url", "must be an http or https URL")
    if not parts.netloc or not parts.hostname:
        raise RuleError("invalid_url", "must be an absolute URL with a host")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise RuleError("invalid_url", "must not contain a user name or password")
    if port == 0:
        raise RuleError("invalid_url", "must be a valid absolute URL")
    host = parts.hostname.rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost") or host.endswith(".local"):
        raise RuleError("invalid_url", "must point to a public host")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        labels = host.split(".")
        if host.replace(".", "").isdigit() or host.startswith("0x") or not all(
            _HOST_LABEL.match(label) or label.startswith("xn--") for label in labels
        ):
            raise RuleError("invalid_url", "must have a valid host name") from None
        if len(labels) < 2:
            raise RuleError("invalid_url", "must point to a public host") from None
    else:
        if not address.is_global:
            raise RuleError("invalid_url", "must point to a public host")
    return value


def check_date(value: dt.date) -> dt.date:
    # "Today" anywhere on Earth: a date is in the future only past UTC+14.
    latest = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=14)).date()
    if value < MIN_DATE:
        raise RuleError("too_early", "must not be before 1900-01-01")
    if value > latest:
        raise RuleError("in_future", "must not be in the future")
    return value
