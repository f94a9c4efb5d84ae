"""Errors with meaning, raised anywhere, rendered once as RFC 9457 problem documents."""

from __future__ import annotations

import asyncio
import logging
import uuid
from http import HTTPStatus
from typing import Annotated, Any, NotRequired

import asyncpg
from pydantic import Field
from sanic import Sanic
from sanic.exceptions import SanicException
from sanic.request import Request
from sanic.response import HTTPResponse
from tortoise.exceptions import DBConnectionError
from typing_extensions import TypedDict

from service.platform.i18n import language_of, localise_problem
from service.platform.jsonutil import scrub
from service.platform.requestctx import request_id_of
from service.platform.views import View

log = logging.getLogger("service.errors")

PROBLEM_JSON = "application/problem+json"


class FieldError(TypedDict):
    field: str
    message: str
    code: NotRequired[str]


class Problem(TypedDict):
    """An RFC 9457 problem document."""
    type: str
    title: str
    status: int
    detail: str
    request_id: str
    code: NotRequired[Annotated[str, Field(description=(
        "A stable snake_case code, e.g. `validation_failed`, `duplicate_achievement`, `email_taken`, "
        "`precondition_required`, `quota_exceeded`."))]]
    errors: NotRequired[Annotated[list[FieldError], Field(description=(
        "Validation errors (422), one per failing field, e.g. `items[17].date`."))]]
    existing_id: NotRequired[uuid.UUID | None]
    duplicates: NotRequired[list[int]]
    existing_ids: NotRequired[list[uuid.UUID]]
    quota: NotRequired[Annotated[int, Field(description="With `quota_exceeded`: the most a user may hold.")]]


PROBLEM = View(Problem)


class RuleError(ValueError):
    """A field rule's refusal, with the stable code a client maps to its form field."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ApiError(Exception):
    status = 500
    type = "about:blank"
    title: str | None = None
    # A stable snake_case code a client can branch on (the texts may change and be translated).
    code = "internal_error"
    # Set when the refusal is an access-control decision worth an audit event
    # (e.g. a student probing someone else's achievement gets a plain 404).
    denied_reason: str | None = None

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail or HTTPStatus(self.status).phrase
        self.headers = headers or {}
        if "code" in extra:
            self.code = extra.pop("code")
        self.extra = extra

    def problem(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "title": self.title or HTTPStatus(self.status).phrase,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            **self.extra,
        }


class BadRequest(ApiError):
    code = "bad_request"
    status = 400


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"

    def __init__(self, detail: str = "Authentication is required.", *, error: str | None = None, **kw):
        challenge = "Bearer"
        if error:
            challenge += f' error="{error}"'
            kw.setdefault("code", error)
        super().__init__(detail, headers={"WWW-Authenticate": challenge}, **kw)


class InvalidCredentials(ApiError):
    """One body for unknown email, wrong password and deactivated account."""

    status = 401
    code = "invalid_credentials"

    def __init__(self) -> None:
        super().__init__("The email or password is incorrect.")


class Forbidden(ApiError):
    code = "forbidden"
    status = 403


class NotFound(ApiError):
    status = 404
    code = "not_found"

    def __init__(self, detail: str = "The resource does not exist.", **kw):
        super().__init__(detail, **kw)


class Conflict(ApiError):
    code = "conflict"
    status = 409


class PreconditionFailed(ApiError):
    status = 412
    code = "precondition_failed"

    def __init__(self, detail: str = "The resource has changed; fetch it again.", **kw):
        super().__init__(detail, **kw)


class PreconditionRequired(ApiError):
    status = 428
    code = "precondition_required"


class QuotaExceeded(ApiError):
    status = 409
    code = "quota_exceeded"

    def __init__(self, quota: int):
        super().__init__(f"You may hold at most {quota} achievements.", quota=quota)


class PayloadTooLarge(ApiError):
    code = "payload_too_large"
    status = 413


class UnsupportedMediaType(ApiError):
    code = "unsupported_media_type"
    status = 415


class ValidationFailed(ApiError):
    status = 422
    title = "Validation failed"
    code = "validation_failed"

    def __init__(self, errors: list[dict[str, str]], detail: str = "The request body is invalid."):
        super().__init__(detail, errors=errors)


class TooManyRequests(ApiError):
    status = 429
    code = "rate_limited"

    def __init__(self, retry_after: int, headers: dict[str, str] | None = None):
        retry_after = max(1, int(retry_after))
        super().__init__(
            "Too many requests; try again later.",
            headers={"Retry-After": str(retry_after), **(headers or {})},
        )


class ServiceUnavailable(ApiError):
    status = 503
    code = "service_unavailable"

    def __init__(self, detail: str = "The service is temporarily unavailable.", **kw):
        super().__init__(detail, headers={"Retry-After": "5"}, **kw)


DATABASE_DOWN = (
    DBConnectionError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    # A pooled connection the server has just cut (its FATAL message read, the end of the
    # stream not yet) refuses the next query with a protocol-state error: no bug, an outage.
    asyncpg.exceptions.InternalClientError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)

_SANIC_DETAIL = {
    400: "The request could not be parsed.",
    404: "No such resource.",
    405: "The method is not allowed on this resource.",
    408: "The request took too long to arrive.",
    413: "The request body is too large.",
    416: "The range is not satisfiable.",
    417: "The expectation cannot be met.",
}


_SANIC_CODE = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    416: "range_not_satisfiable",
    417: "expectation_failed",
}


def problem_response(request: Request | None, error: ApiError) -> HTTPResponse:
    body = error.problem()
    body["request_id"] = request_id_of(request) if request is not None else None
    language = "en"
    if request is not None:
        language = language_of(request.headers.getone("accept-language", None))
        if language != "en":
            body = localise_problem(body, language)
    headers = {**error.headers, "Content-Language": language, "Vary": "Accept-Language"}
    try:
        payload = PROBLEM.dump(body)
    except ValueError:  # a lone surrogate (undecodable request bytes quoted in the detail)
        payload = PROBLEM.dump(scrub(body))
    return HTTPResponse(payload, status=error.status, headers=headers, content_type=PROBLEM_JSON)


ROUTABLE_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods_of(request: Request) -> tuple[str, ...]:
    """The methods the router serves on the request's path. sanic-routing names them in
    its 405 only for static paths (``/achievements``), not for parameterised ones
    (``/achievements/<id>``), yet every 405 must carry ``Allow`` (RFC 9110)."""
    host = request.headers.getone("host", None)
    allowed = []
    for method in ROUTABLE_METHODS:
        try:
            request.app.router.get(request.path, method, host)
        except SanicException:
            continue
        allowed.append(method)
    return tuple(allowed)


def to_api_error(exception: BaseException, request: Request | None = None) -> ApiError:
    if isinstance(exception, ApiError):
        return exception
    if isinstance(exception, SanicException):
        status = exception.status_code or 500
        if status >= 500:
            return _internal()
        error = ApiError(_SANIC_DETAIL.get(status, HTTPStatus(status).phrase))
        error.status = status
        error.code = _SANIC_CODE.get(status, "bad_request")
        headers = dict(getattr(exception, "headers", None) or {})
        allowed = getattr(exception, "allowed_methods", None)
        if status == 405 and not allowed and request is not None:
            allowed = allowed_methods_of(request)
        if status == 405 and allowed:
            headers["Allow"] = ", ".join(sorted(m for m in allowed if m != "TRACE"))
        error.headers = {k: v for k, v in headers.items() if k.lower() in {"allow", "retry-after"}}
        return error
    if _is_database_down(exception):
        return ServiceUnavailable()
    return _internal()


def _internal() -> ApiError:
    error = ApiError("An unexpected error occurred. Quote the request_id when reporting it.")
    error.status = 500
    return error


def _is_database_down(exception: BaseException) -> bool:
    seen = 0
    current: BaseException | None = exception
    while current is not None and seen < 5:
        if isinstance(current, DATABASE_DOWN):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def setup_errors(app: Sanic) -> None:
    @app.exception(Exception)
    async def render_problem(request: Request, exception: Exception) -> HTTPResponse:
        error = to_api_error(exception, request)
        if error.status >= 500:
            if isinstance(error, ServiceUnavailable):
                log.warning("database unavailable", extra={"event": "db.unavailable",
                                                             "error": type(exception).__name__})
            else:
                log.error("unhandled exception", exc_info=exception,
                          extra={"event": "http.unhandled"})
        if error.denied_reason:
            from service.audit import security_event
            from service.platform.edge import loggable_path

            await security_event(request, "security.access_denied",
                                 details={"reason": error.denied_reason, "path": loggable_path(request.path)[:200],
                                          "method": request.method})
        return problem_response(request, error)
