"""Portfolio share links: a student's capability URLs, and the public page they open."""

from __future__ import annotations

import hashlib

from pydantic import Field, StrictStr
from sanic import Blueprint
from sanic.request import Request
from sanic.response import HTTPResponse
from sanic_ext import openapi
from sanic_ext.extensions.openapi.types import String

from blueprints.docs import PROTECTED, ok, problems
from blueprints.schemas import ACCESS_LIST, PORTFOLIO, SHARE_LINK_CREATED, SHARE_LINK_LIST
from service import portfolio
from service.audit import security_event
from service.authn import current_user, parse_uuid_or_404
from service.context import context_of
from service.errors import TooManyRequests, ValidationFailed
from service.platform.edge import own_origin
from service.platform.validation import Body, Query, json_body, parse_timestamp, trimmed

share_links = Blueprint("share_links", url_prefix="/share-links")
public = Blueprint("public", url_prefix="/public")

PUBLIC_HEADERS = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex, nofollow", "Referrer-Policy": "no-referrer"}


class ShareLinkCreate(Body):
    label: trimmed(1, 200)
    expires_at: StrictStr = Field(json_schema_extra={"format": "date-time",
                                                     "description": "RFC 3339, in the future, at most a year ahead"})


@share_links.post("/")
@openapi.summary("Create a share link to your approved achievements (the URL is shown only now)")
@openapi.tag("portfolio")
@openapi.secured("bearer")
@ok(201, SHARE_LINK_CREATED, "The link; its url holds the token, shown only in this answer")
@problems(*PROTECTED, 413, 415, 422)
@json_body(ShareLinkCreate)
async def create_link(request: Request, body: ShareLinkCreate):
    expires_at = parse_timestamp(body.expires_at)
    if expires_at is None:
        raise ValidationFailed([{"field": "expires_at", "message": "must be an RFC 3339 timestamp",
                                 "code": "invalid_format"}])
    link = await portfolio.create_link(context_of(request), current_user(request), body.label, expires_at,
                                       own_origin(request))
    return SHARE_LINK_CREATED.response(link, status=201, headers={"Location": f"/api/v1/share-links/{link['id']}"})


@share_links.get("/")
@openapi.summary("Your share links, revoked ones included (without their URLs)")
@openapi.tag("portfolio")
@openapi.secured("bearer")
@ok(200, SHARE_LINK_LIST, "The links, newest first")
@problems(*PROTECTED)
async def list_links(request: Request):
    Query(request, set())
    return SHARE_LINK_LIST.response({"items": await portfolio.list_links(current_user(request))})


@share_links.delete("/<link_id>")
@openapi.summary("Revoke a share link at once")
@openapi.tag("portfolio")
@openapi.secured("bearer")
@ok(204, None, "Revoked")
@problems(*PROTECTED, 404)
async def revoke_link(request: Request, link_id: str):
    await portfolio.revoke_link(context_of(request), current_user(request), parse_uuid_or_404(link_id))
    return HTTPResponse(status=204)


@share_links.get("/<link_id>/accesses")
@openapi.summary("When your link was opened (with a keyed hash of the viewer's IP)")
@openapi.tag("portfolio")
@openapi.secured("bearer")
@ok(200, ACCESS_LIST, "The accesses, newest first (at most 1000)")
@problems(*PROTECTED, 404)
async def list_accesses(request: Request, link_id: str):
    Query(request, set())
    return ACCESS_LIST.response({"items": await portfolio.accesses(current_user(request), parse_uuid_or_404(link_id))})


@public.get("/portfolio/<token>", ctx_public=True)
@openapi.summary("A shared portfolio: the owner's name and unit and their approved achievements (no account)")
@openapi.tag("portfolio")
@openapi.parameter("token", String(pattern=r"^[A-Za-z0-9_-]{43}$"), "path")
@ok(200, PORTFOLIO, "The portfolio (X-Robots-Tag: noindex, Cache-Control: no-store)")
@problems(400, 404, 429, 503)
async def view_portfolio(request: Request, token: str):
    Query(request, set())
    ctx = context_of(request)
    limits = request.app.ctx.limits
    try:
        await limits.enforce_ip(limits.public_ip, "public-ip", ctx.ip)
    except TooManyRequests as refused:
        await security_event(request, "security.rate_limited", details={"limit": "public_ip"})
        refused.headers.update(PUBLIC_HEADERS)
        raise
    key = hashlib.sha256(b"viewer-ip/v1/" + request.app.ctx.settings.jwt_secret.encode()).digest()
    body, link = await portfolio.view(token, portfolio.ip_hash(key, ctx.ip))
    # Bounded like every unauthenticated event: one audit row per IP a minute, a log line each.
    await security_event(request, "share_link.accessed", outcome="success", target_type="share_link",
                         target_id=link.id, level=20)
    return PORTFOLIO.response(body, headers=PUBLIC_HEADERS)
