"""Fast JSON in and out (orjson), with the strictness the contract wants."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import orjson
from sanic.response import HTTPResponse

MAX_DEPTH = 64


def _default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC)


def loads(raw: bytes | str) -> Any:
    """Parse JSON. orjson refuses NaN and Infinity and nests at most 1024 deep."""
    return orjson.loads(raw)


def iso(value: dt.datetime | None) -> str | None:
    """RFC 3339 in UTC with a Z, whole seconds dropped only when zero microseconds."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> HTTPResponse:
    return HTTPResponse(dumps(body), status=status, headers=headers, content_type="application/json")


def uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        parsed = uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None
    # Only the canonical textual form is accepted, so ids have one spelling.
    return parsed if str(parsed) == value.lower() and len(value) == 36 else None
