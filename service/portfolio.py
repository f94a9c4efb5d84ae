"""Portfolio share links (API.md "P"): capability URLs a student hands to an employer or a
committee, showing only their approved achievements.

The token (256 random bits) is shown once, in the creation's answer; only its SHA-256 is
stored. A view looks the hash up (a uniformly random key: the index lookup tells nothing about
the token) and compares it again in constant time. Unknown, expired and revoked links are the
same 404. Accesses are kept per link with a keyed hash of the viewer's IP, never the IP.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import uuid
from typing import Any

from models import Achievement, AchievementType, OrgUnit, ShareLink, ShareLinkAccess, Status, User
from service import audit
from service.context import CurrentUser, RequestContext
from service.errors import NotFound, ValidationFailed
from service.platform.database import transaction
from service.platform.jsonutil import iso

MAX_LIFETIME = dt.timedelta(days=366)  # "at most a year ahead", a leap day included
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
PUBLIC_PATH = "/api/v1/public/portfolio/"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def link_json(link: ShareLink, url: str | None = None) -> dict[str, Any]:
    body = {"id": link.id, "label": link.label, "expires_at": link.expires_at, "created_at": link.created_at,
            "revoked_at": link.revoked_at}
    if url is not None:
        body["url"] = url
    return body


def expiry_errors(expires_at: dt.datetime, now: dt.datetime) -> list[dict[str, str]]:
    if expires_at <= now:
        return [{"field": "expires_at", "message": "must be in the future", "code": "in_past"}]
    if expires_at > now + MAX_LIFETIME:
        return [{"field": "expires_at", "message": "must be at most a year ahead", "code": "too_far"}]
    return []


async def create_link(ctx: RequestContext, user: CurrentUser, label: str, expires_at: dt.datetime,
                      base_url: str) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    errors = expiry_errors(expires_at, now)
    if errors:
        raise ValidationFailed(errors)
    token = secrets.token_urlsafe(32)
    async with transaction() as tx:
        link = await ShareLink.create(using_db=tx, id=uuid.uuid4(), owner_id=user.id, label=label,
                                      token_hash=_hash(token), expires_at=expires_at)
        await audit.record(tx, ctx, "share_link.created", target_type="share_link", target_id=link.id,
                           details={"expires_at": iso(expires_at)})
    return link_json(link, url=f"{base_url}{PUBLIC_PATH}{token}")


async def list_links(user: CurrentUser) -> list[dict[str, Any]]:
    return [link_json(link) for link in await ShareLink.filter(owner_id=user.id).order_by("-created_at", "-id")]


async def _own_link(user: CurrentUser, link_id: uuid.UUID, tx=None) -> ShareLink:
    query = ShareLink.filter(id=link_id, owner_id=user.id)
    link = await (query.using_db(tx).select_for_update() if tx else query).first()
    if link is None:  # someone else's link is as unknown as a missing one
        raise NotFound("No such share link.")
    return link


async def revoke_link(ctx: RequestContext, user: CurrentUser, link_id: uuid.UUID) -> None:
    async with transaction() as tx:
        link = await _own_link(user, link_id, tx)
        if link.revoked_at is None:
            link.revoked_at = dt.datetime.now(dt.UTC)
            await link.save(using_db=tx, update_fields=["revoked_at"])
            await audit.record(tx, ctx, "share_link.revoked", target_type="share_link", target_id=link.id)


async def accesses(user: CurrentUser, link_id: uuid.UUID) -> list[dict[str, Any]]:
    link = await _own_link(user, link_id)
    rows = await ShareLinkAccess.filter(link_id=link.id).order_by("-at", "-id").limit(1000).values("at", "ip_hash")
    return rows


def ip_hash(key: bytes, ip: str) -> str:
    """A keyed hash of the viewer's IP: the owner can tell repeat visits apart, nobody can
    recover the address (IPv4 is too small a space for a plain hash)."""
    return hmac.new(key, ip.encode("utf-8", "replace"), hashlib.sha256).hexdigest()[:32]


async def view(token: str, viewer_ip_hash: str) -> tuple[dict[str, Any], ShareLink]:
    """The public portfolio of a live link (404 for anything else) and the link, its access
    recorded."""
    if not TOKEN_SHAPE.fullmatch(token):
        raise NotFound()
    digest = _hash(token)
    link = await ShareLink.get_or_none(token_hash=digest)
    now = dt.datetime.now(dt.UTC)
    if (link is None or not hmac.compare_digest(link.token_hash, digest) or link.revoked_at is not None
            or link.expires_at <= now):
        raise NotFound()
    owner = await User.get(id=link.owner_id)
    unit = await OrgUnit.get_or_none(id=owner.org_unit_id) if owner.org_unit_id else None
    approved = await Achievement.filter(owner_id=owner.id, status=Status.APPROVED).order_by("-date", "id").values(
        "title", "type", "category", "date", "proof_url", "level", "result")
    names = dict(await AchievementType.filter(slug__in={a["type"] for a in approved}).values_list("slug", "name"))
    await ShareLinkAccess.create(link_id=link.id, ip_hash=viewer_ip_hash)
    portfolio = {
        "owner_name": owner.full_name,
        "org_unit": {"name": unit.name, "kind": str(unit.kind)} if unit else None,
        "items": [{"title": a["title"], "type_name": names.get(a["type"], a["type"]), "category": a["category"],
                   "date": a["date"], "level": a["level"], "result": a["result"],
                   "proof_url": a["proof_url"]}
                  for a in approved],
    }
    return portfolio, link
