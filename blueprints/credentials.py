"""Verifiable credentials: an approved achievement as a signed Open Badges 3.0 credential, the
student's CLR bundle, the public revocation list and the issuer's public keys."""

from __future__ import annotations

from sanic import Blueprint
from sanic.request import Request
from sanic.response import HTTPResponse
from sanic_ext import openapi

from blueprints.docs import PROTECTED, ok, problems
from blueprints.schemas import JWKS
from service import credentials
from service.authn import current_user, parse_uuid_or_404
from service.platform.edge import own_origin
from service.platform.validation import Query

achievement_credentials = Blueprint("credentials", url_prefix="/")
well_known = Blueprint("well_known", url_prefix="/.well-known")

JWS = {credentials.MEDIA_TYPE: {"type": "string", "description": "a compact JWS (header.payload.signature)"}}


def _jws(token: str) -> HTTPResponse:
    return HTTPResponse(token, content_type=credentials.MEDIA_TYPE, headers={"Cache-Control": "no-store"})


@achievement_credentials.get("/achievements/<achievement_id>/credential")
@openapi.summary("The achievement as a signed Open Badges 3.0 credential (owner or staff in scope; approved only)")
@openapi.tag("credentials")
@openapi.secured("bearer")
@openapi.response(200, JWS, "An OpenBadgeCredential as a VC-JWT (EdDSA or ES256, kid)")
@problems(*PROTECTED, 404, 409)
async def get_credential(request: Request, achievement_id: str):
    Query(request, set())
    token = await credentials.credential_for(current_user(request), parse_uuid_or_404(achievement_id),
                                             request.app.ctx.credential_keys, own_origin(request))
    return _jws(token)


@achievement_credentials.get("/me/clr")
@openapi.summary("A CLR 2.0 credential bundling the caller's approved achievements' credentials")
@openapi.tag("credentials")
@openapi.secured("bearer")
@openapi.response(200, JWS, "A ClrCredential as a VC-JWT")
@problems(*PROTECTED)
async def get_clr(request: Request):
    Query(request, set())
    return _jws(await credentials.clr_for(current_user(request), request.app.ctx.credential_keys,
                                          own_origin(request)))


@achievement_credentials.get("/credentials/status/1", ctx_public=True)
@openapi.summary("The revocation status list (W3C Bitstring Status List), signed like the credentials")
@openapi.tag("credentials")
@openapi.response(200, JWS, "A BitstringStatusListCredential as a VC-JWT")
@problems(400, 503)
async def get_status_list(request: Request):
    Query(request, set())
    token = await credentials.status_list(request.app.ctx.credential_keys, own_origin(request))
    return HTTPResponse(token, content_type=credentials.MEDIA_TYPE, headers={"Cache-Control": "no-cache"})


@well_known.get("/jwks.json", ctx_public=True)
@openapi.summary("The public keys that verify the credentials (the previous one too during a rotation)")
@openapi.tag("credentials")
@ok(200, JWKS, "The JWK set")
async def get_jwks(request: Request):
    Query(request, set())
    return JWKS.response(request.app.ctx.credential_keys.jwks(), headers={"Cache-Control": "public, max-age=300"})
