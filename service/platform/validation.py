"""Request bodies and query strings, parsed strictly.

Bodies: JSON only (the edge has already checked the media type and size), parsed with
orjson (NaN, Infinity and empty bodies are 400), validated by a pydantic model that
forbids unknown fields; failures are 422 with field paths such as ``items[17].date``.
The same model documents the body in the OpenAPI spec.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable, Iterable
from functools import wraps
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictStr
from pydantic import ValidationError as PydanticValidationError
from sanic.request import Request
from sanic_ext import openapi

from service.errors import BadRequest, RuleError, UnsupportedMediaType, ValidationFailed
from service.platform.jsonutil import uuid_or_none
from service.text import (
    BIDI,
    CONTROL,
    CONTROL_MULTI_LINE,
    HAS_BIDI,
    HAS_CONTROL,
    HAS_CONTROL_MULTI_LINE,
    INVISIBLE,
    is_blank,
)

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits only (\d would take any Unicode digit)
# RFC 3339 date-time; a space before the offset is a "+" that was not percent-encoded.
_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
                       r"(?:[Zz]|[+ -][0-9]{2}:[0-9]{2})")
_INTEGER = re.compile(r"[0-9]{1,6}")

# The same rules as JSON Schema patterns (ECMA-262 syntax, which Python's re also reads),
# so the OpenAPI document states what the validators below accept.
NO_CONTROL_PATTERN = f"^[^{CONTROL}]*$"
SINGLE_LINE_PATTERN = f"^[^{CONTROL}{BIDI}]*$"
NOT_BLANK_PATTERN = f"^[^{CONTROL}{BIDI}]*[^{INVISIBLE}][^{CONTROL}{BIDI}]*$"
MULTI_LINE_PATTERN = f"^(?:[^{CONTROL_MULTI_LINE}{BIDI}]*[^{INVISIBLE}][^{CONTROL_MULTI_LINE}{BIDI}]*)?$"
NOT_BLANK_TEXT = f"^[^{CONTROL_MULTI_LINE}{BIDI}]*[^{INVISIBLE}][^{CONTROL_MULTI_LINE}{BIDI}]*$"
SENSITIVE_FIELDS = {"password", "current_password", "new_password"}


class Body(BaseModel):
    """Base of every request body: unknown fields are an error, never ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False, strict=True)


def _single_line(value: str) -> str:
    if HAS_CONTROL.search(value):
        raise RuleError("invalid_characters", "must not contain control characters")
    if HAS_BIDI.search(value):
        raise RuleError("invalid_characters", "must not contain bidirectional control characters")
    return value


def _multi_line(value: str) -> str:
    if HAS_CONTROL_MULTI_LINE.search(value):
        raise RuleError("invalid_characters", "must not contain control characters")
    if HAS_BIDI.search(value):
        raise RuleError("invalid_characters", "must not contain bidirectional control characters")
    if value and is_blank(value):
        raise RuleError("blank", "must contain visible characters")
    return value


def _trimmed(min_len: int, max_len: int) -> Callable[[str], str]:
    def check(value: str) -> str:
        # Control characters are refused before trimming, so "\tTitle" is an error, not "Title".
        value = _single_line(value).strip()
        if len(value) < min_len:
            if min_len == 1:
                raise RuleError("required", "must not be empty")
            raise RuleError("too_short", f"must be at least {min_len} characters")
        if min_len and is_blank(value):
            raise RuleError("blank", "must contain visible characters")
        if len(value) > max_len:
            raise RuleError("too_long", f"must be at most {max_len} characters")
        return value
    return check


def _date(value: str) -> dt.date:
    if not _DATE.fullmatch(value):
        raise RuleError("invalid_format", "must be a date in the form YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise RuleError("invalid_format", "is not a valid calendar date") from None


def trimmed(min_len: int, max_len: int):
    """A single-line string of min_len..max_len characters once surrounding white space is
    trimmed. (The document's maxLength counts the untrimmed string: send it trimmed.)"""
    schema = {"minLength": min_len, "maxLength": max_len,
              "pattern": NOT_BLANK_PATTERN if min_len else SINGLE_LINE_PATTERN}
    return Annotated[StrictStr, AfterValidator(_trimmed(min_len, max_len)), Field(json_schema_extra=schema)]


Text = Annotated[StrictStr, AfterValidator(_multi_line), Field(json_schema_extra={"pattern": MULTI_LINE_PATTERN})]
SingleLine = Annotated[StrictStr, AfterValidator(_single_line),
                       Field(json_schema_extra={"pattern": SINGLE_LINE_PATTERN})]


def _no_control(value: str) -> str:
    if HAS_CONTROL.search(value):
        raise RuleError("invalid_characters", "must not contain control characters")
    return value


# A password: any Unicode but control characters (what else it may hold is the password rules').
Secret = Annotated[StrictStr, AfterValidator(_no_control), Field(json_schema_extra={"pattern": NO_CONTROL_PATTERN})]


def not_null(schema: dict[str, Any]) -> None:
    """``json_schema_extra`` for a PATCH field that may be left out but never set to null
    (``patch_changes`` answers null with 422), so the document does not offer null."""
    schema.pop("default", None)
    options = [option for option in schema.pop("anyOf", []) if option != {"type": "null"}]
    if len(options) == 1:
        schema.update(options[0])
    elif options:
        schema["anyOf"] = options


def _date_input(value: Any) -> dt.date:
    if not isinstance(value, str):
        raise RuleError("invalid_format", "must be a date in the form YYYY-MM-DD")
    return _date(value)


DateStr = Annotated[dt.date, BeforeValidator(_date_input)]


def _path(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


# pydantic's error types -> the contract's codes
_CODES = {
    "extra_forbidden": "unknown_field", "missing": "required", "string_too_long": "too_long",
    "string_too_short": "too_short", "too_long": "too_many", "too_short": "too_few",
    "literal_error": "invalid_choice", "enum": "invalid_choice", "string_pattern_mismatch": "invalid_format",
    "greater_than_equal": "out_of_range", "less_than_equal": "out_of_range", "greater_than": "out_of_range",
    "less_than": "out_of_range",
}


def _code(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "value_error":
        return getattr(error.get("ctx", {}).get("error"), "code", "invalid")
    if kind.endswith("_type"):
        return "invalid_type"
    return _CODES.get(kind, "invalid")


def _message(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "is not an allowed field"
    if kind == "missing":
        return "is required"
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error", "is invalid"))
    if kind.endswith("_type"):
        return "has the wrong type: " + error.get("msg", "")
    return error.get("msg", "is invalid")


def validation_errors(exc: PydanticValidationError, prefix: str = "") -> list[dict[str, str]]:
    errors = []
    for error in exc.errors(include_input=False, include_url=False):
        path = _path(error["loc"])
        errors.append({"field": f"{prefix}{path}" if prefix else path, "message": _message(error),
                       "code": _code(error)})
    return errors


def parse_json(request: Request, media_types: tuple[str, ...] = ("application/json",)) -> Any:
    content_type = request.headers.getone("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in media_types:
        raise UnsupportedMediaType(f"Send the body as {' or '.join(media_types)}.")
    raw = request.body
    if not raw:
        raise BadRequest("The request body is empty; a JSON document is required.")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("The request body is not valid JSON.") from None


def validate(model: type[Body], data: Any) -> Body:
    body, errors = validate_all(model, data)
    if errors:
        raise ValidationFailed(errors)
    return body


def validate_all(model: type[Body], data: Any) -> tuple[Body | None, list[dict[str, str]]]:
    """The validated body, or None and every error pydantic found."""
    if not isinstance(data, dict):
        return None, [{"field": "body", "message": "must be a JSON object", "code": "invalid_type"}]
    try:
        return model.model_validate(data), []
    except PydanticValidationError as exc:
        return None, validation_errors(exc)


def patch_changes(body: Body, nullable: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The fields a PATCH body sets; null is refused for fields that cannot be cleared."""
    errors = null_errors(body, nullable)
    if errors:
        raise ValidationFailed(errors)
    return {name: getattr(body, name) for name in body.model_fields_set}


def null_errors(body: Body, nullable: frozenset[str] = frozenset()) -> list[dict[str, str]]:
    nulls = sorted(name for name in body.model_fields_set if getattr(body, name) is None and name not in nullable)
    return [{"field": name, "message": "must not be null", "code": "required"} for name in nulls]


# A body rule pydantic cannot state (a null in a PATCH, a rejection without a comment).
Rule = Callable[[Body], list[dict[str, str]]]
# A check that needs the database (a catalogue, a taken email): given the request, the raw
# JSON object and the fields that already failed, it returns its own errors.
Check = Callable[[Request, dict[str, Any], set[str]], Awaitable[list[dict[str, str]]]]


def json_body(model: type[Body], *, media_types: tuple[str, ...] = ("application/json",),
              rules: Rule | None = None, checks: Check | None = None):
    """Validate the body with ``model``, pass it as ``body``, document it in OpenAPI.

    One 422 lists every failing field: when the syntax or a rule fails, ``checks`` runs too,
    so the fields only the database can judge are reported next to the others. (When the
    body is sound, the use case makes those checks itself, in its own transaction.)"""

    def decorator(handler):
        @wraps(handler)
        async def wrapped(request: Request, *args, **kwargs):
            data = parse_json(request, media_types)
            body, errors = validate_all(model, data)
            if body is not None and rules is not None:
                errors = rules(body)
            if errors:
                if checks is not None and isinstance(data, dict):
                    errors += await checks(request, data, {error["field"] for error in errors})
                raise ValidationFailed(errors)
            kwargs["body"] = body
            return await handler(request, *args, **kwargs)

        # The model's own JSON schema (required fields, additionalProperties: false);
        # service/platform/docs.py files it under components/schemas/<model name>.
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        content = {media: {"schema": schema} for media in media_types}
        return openapi.body(content, required=True)(wrapped)

    return decorator


def parse_timestamp(raw: str) -> dt.datetime | None:
    """An RFC 3339 date-time in UTC, or None when ``raw`` is not one."""
    if not _DATETIME.fullmatch(raw):
        return None
    try:
        value = dt.datetime.fromisoformat(raw.upper().replace("Z", "+00:00").replace(" ", "+"))
        # In UTC here, so 9999-12-31T23:59:59-14:00 is refused rather than overflowing later.
        return value.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        return None


class Query:
    """Allow-listed query parameters; anything unknown, repeated or malformed is 400."""

    def __init__(self, request: Request, allowed: set[str], repeatable: frozenset[str] = frozenset()):
        self.args: dict[str, list[str]] = {}
        for key, values in request.get_args(keep_blank_values=True).items():
            if key not in allowed:
                raise BadRequest(f"Unknown query parameter: {key[:64]}")
            if len(values) > 1 and key not in repeatable:
                raise BadRequest(f"Query parameter {key} may be given once")
            self.args[key] = values

    def get(self, key: str) -> str | None:
        values = self.args.get(key)
        return values[0] if values else None

    def all(self, key: str) -> list[str]:
        return self.args.get(key, [])

    def int(self, key: str, default: int, low: int, high: int) -> int:
        raw = self.get(key)
        if raw is None:
            return default
        if not _INTEGER.fullmatch(raw) or not low <= int(raw) <= high:
            raise BadRequest(f"{key} must be an integer from {low} to {high}")
        return int(raw)

    def date(self, key: str) -> dt.date | None:
        raw = self.get(key)
        if raw is None:
            return None
        try:
            return _date(raw)
        except ValueError:
            raise BadRequest(f"{key} must be a date in the form YYYY-MM-DD") from None

    def datetime(self, key: str) -> dt.datetime | None:
        raw = self.get(key)
        if raw is None:
            return None
        value = parse_timestamp(raw)
        if value is None:
            raise BadRequest(f"{key} must be an RFC 3339 timestamp")
        return value

    def choice(self, key: str, choices: Iterable[str]) -> str | None:
        raw = self.get(key)
        if raw is not None and raw not in choices:
            raise BadRequest(f"{key} must be one of: {', '.join(choices)}")
        return raw

    def boolean(self, key: str) -> bool | None:
        raw = self.get(key)
        if raw is None:
            return None
        if raw not in ("true", "false"):
            raise BadRequest(f"{key} must be true or false")
        return raw == "true"

    def uuid(self, key: str):
        raw = self.get(key)
        if raw is None:
            return None
        parsed = uuid_or_none(raw)
        if parsed is None:
            raise BadRequest(f"{key} must be a UUID")
        return parsed

    def cursor(self) -> str | None:
        raw = self.get("cursor")
        if raw is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,1000}\.[A-Za-z0-9_-]{1,64}", raw):
            raise BadRequest("The cursor is invalid; start again from the first page.")
        return raw

    def text(self, key: str, max_len: int = 200) -> str | None:
        raw = self.get(key)
        if raw is None:
            return None
        if len(raw) > max_len or HAS_CONTROL.search(raw):
            raise BadRequest(f"{key} must be at most {max_len} printable characters")
        return raw
