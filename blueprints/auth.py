"""Auth: register, login, refresh rotation, logout, profile and password."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field
from sanic import Blueprint
from sanic.request import Request
from sanic.response import HTTPResponse
from sanic_ext import openapi

from blueprints.docs import PROTECTED, ok, problems
from blueprints.schemas import TOKEN, USER
from service import accounts
from service.audit import security_event
from service.authn import bearer_token, current_user, user_for_token
from service.context import context_of
from service.errors import Forbidden, InvalidCredentials, TooManyRequests, Unauthorized, ValidationFailed
from service.passwords import MAX_LENGTH, MIN_LENGTH
from service.platform.docs import problem_content
from service.platform.edge import check_origin
from service.platform.validation import Body, Secret, SingleLine, json_body, trimmed

bp = Blueprint("auth", url_prefix="/auth")

COOKIE = "refresh_token"
COOKIE_PATH = "/api/v1/auth"


# Also refused with 422: a common or easily guessed password (service/passwords.py).
NewPassword = Annotated[Secret, Field(json_schema_extra={"minLength": MIN_LENGTH, "maxLength": MAX_LENGTH})]


class Registration(Body):
    email: Annotated[trimmed(3, 254), Field(json_schema_extra={"format": "email"})]
    password: NewPassword
    full_name: trimmed(1, 200)


class LoginRequest(Body):
    email: SingleLine
    password: Secret


class ProfilePatch(Body):
    full_name: trimmed(1, 200)


class PasswordChange(Body):
    current_password: Secret
    new_password: NewPassword


# A practical subset of what the document's "format: email" allows: a dot-atom local part of
# at most 64 characters and a dotted domain of letter-digit-hyphen labels. Quoted local parts,
# IP literals and single-label domains are refused too.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@{_LABEL}(?:\.{_LABEL})+")


def _email_ok(email: str) -> bool:
    return _EMAIL.fullmatch(email) is not None and len(email.rpartition("@")[0]) <= 64


def _set_refresh_cookie(request: Request, response: HTTPResponse, value: str, max_age: int) -> None:
    response.add_cookie(
        COOKIE, value, path=COOKIE_PATH, max_age=max_age, httponly=True, samesite="Strict",
        secure=request.app.ctx.settings.cookie_secure,
    )


def _token_response(request: Request, issued: accounts.IssuedSession) -> HTTPResponse:
    response = TOKEN.response(issued.token_response())
    _set_refresh_cookie(request, response, issued.refresh_token, issued.refresh_max_age)
    return response


async def _check_origin(request: Request) -> None:
    """The CSRF check of the cookie endpoints; a refusal is a security event (bounded per IP)."""
    try:
        check_origin(request)
    except Forbidden:
        await security_event(request, "security.csrf_refused",
                             details={"origin": request.headers.getone("origin", "")[:200],
                                      "path": request.path})
        raise


async def _registration_checks(request: Request, data: dict, failed: set[str]) -> list[dict[str, str]]:
    """What else is wrong with a registration that failed validation: the password rules
    and a taken email, so the form learns everything at once."""
    email, password, full_name = (data.get(k) for k in ("email", "password", "full_name"))
    errors = []
    if "password" not in failed and isinstance(password, str):
        name = full_name if isinstance(full_name, str) else ""
        errors += accounts.registration_errors(email if isinstance(email, str) else "", password, name)
    if "email" not in failed and isinstance(email, str):
        if not _email_ok(email.strip()):
            errors.append({"field": "email", "message": "must be an email address", "code": "invalid_format"})
        else:
            errors += await accounts.email_taken_errors(email)
    return errors


@bp.post("/register", ctx_public=True)
@openapi.summary("Create a student account")
@openapi.tag("auth")
@ok(201, USER, "The new user")
@problems(400, 409, 413, 415, 422, 429, 503)
@json_body(Registration, checks=_registration_checks)
async def register(request: Request, body: Registration):
    limits = request.app.ctx.limits
    try:
        await limits.enforce_ip(limits.register_ip, "register-ip", context_of(request).ip)
    except TooManyRequests:
        await security_event(request, "security.rate_limited", details={"limit": "register_ip"})
        raise
    errors = accounts.registration_errors(body.email, body.password, body.full_name)
    if not _email_ok(body.email):
        errors.insert(0, {"field": "email", "message": "must be an email address", "code": "invalid_format"})
    if errors:
        raise ValidationFailed(errors + await accounts.email_taken_errors(body.email))
    user = await accounts.register(request.app.ctx.settings, context_of(request), body.email,
                                   body.password, body.full_name)
    return USER.response(user, status=201)


@bp.post("/login", ctx_public=True)
@openapi.summary("Sign in: access token in the body, refresh token in an HttpOnly cookie")
@openapi.tag("auth")
@ok(200, TOKEN, "Signed in")
@problems(400, 401, 413, 415, 422, 429, 503)
@json_body(LoginRequest)
async def login(request: Request, body: LoginRequest):
    async def on_limited(details):
        await security_event(request, "security.rate_limited", details=details)

    try:
        issued = await accounts.login(request.app.ctx.settings, request.app.ctx.limits,
                                      context_of(request), body.email[:320], body.password, on_limited)
    except InvalidCredentials:
        await security_event(request, "auth.login.failed", outcome="failure",
                             details={"email": accounts.normalise_email(body.email)[:254]})
        raise
    return _token_response(request, issued)


@bp.post("/refresh", ctx_public=True)
@openapi.summary("Rotate the refresh cookie and get a new access token")
@openapi.tag("auth")
@openapi.secured("refreshCookie")
@ok(200, TOKEN, "A new access token; the cookie is rotated")
@openapi.response(403, problem_content(403), "The request's Origin is neither the service's own nor an allowed one "
                  "(CSRF defence of the cookie endpoints)")
@problems(401, 429, 503)
async def refresh(request: Request):
    await _check_origin(request)
    limits = request.app.ctx.limits
    try:
        await limits.enforce_ip(limits.refresh_ip, "refresh-ip", context_of(request).ip)
    except TooManyRequests:
        await security_event(request, "security.rate_limited", details={"limit": "refresh_ip"})
        raise
    token = request.cookies.get(COOKIE)
    if not token:
        raise Unauthorized("The refresh cookie is missing.")
    issued = await accounts.refresh(request.app.ctx.settings, context_of(request), token)
    return _token_response(request, issued)


@bp.post("/logout", ctx_public=True)
@openapi.summary("End the session: its access and refresh tokens stop working")
@openapi.tag("auth")
@openapi.secured("bearer")
@openapi.secured("refreshCookie")
@ok(204, None, "Signed out; the cookie is cleared")
@openapi.response(403, problem_content(403), "The request's Origin is neither the service's own nor an allowed one "
                  "(CSRF defence of the cookie endpoints)")
@problems(401, 503)
async def logout(request: Request):
    await _check_origin(request)
    token = bearer_token(request)
    if token:
        user = await user_for_token(request, token)
        request.ctx.user = user
        session_id, user_id = user.session_id, user.id
    else:
        cookie = request.cookies.get(COOKIE)
        found = await accounts.session_for_refresh_token(cookie) if cookie else None
        if found is None:
            raise Unauthorized("Send the access token or the refresh cookie.")
        session_id, user_id = found
    await accounts.logout(context_of(request), session_id, user_id)
    response = HTTPResponse(status=204)
    _set_refresh_cookie(request, response, "", 0)
    return response


@bp.get("/me")
@openapi.summary("The signed-in user")
@openapi.tag("auth")
@openapi.secured("bearer")
@ok(200, USER, "The user")
@problems(*PROTECTED)
async def me(request: Request):
    return USER.response(accounts.user_json(current_user(request).__dict__))


@bp.patch("/me")
@openapi.summary("Change the signed-in user's name")
@openapi.tag("auth")
@openapi.secured("bearer")
@ok(200, USER, "The updated user")
@problems(*PROTECTED, 413, 415, 422)
@json_body(ProfilePatch, media_types=("application/json", "application/merge-patch+json"))
async def update_me(request: Request, body: ProfilePatch):
    user = await accounts.update_profile(context_of(request), current_user(request), body.full_name)
    return USER.response(user)


@bp.post("/password")
@openapi.summary("Change the password; every other session is revoked")
@openapi.tag("auth")
@openapi.secured("bearer")
@ok(204, None, "Changed")
@problems(*PROTECTED, 403, 413, 415, 422)
@json_body(PasswordChange)
async def change_password(request: Request, body: PasswordChange):
    try:
        await accounts.change_password(request.app.ctx.settings, request.app.ctx.limits,
                                       context_of(request), current_user(request),
                                       body.current_password, body.new_password)
    except TooManyRequests:
        await security_event(request, "security.rate_limited", details={"limit": "password_change"})
        raise
    return HTTPResponse(status=204)
