"""Fast JSON in and out (orjson), with the strictness the contract wants."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import orjson

MAX_DEPTH = 64


def _default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, default=_default, option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC)
    except orjson.JSONEncodeError:
        # A lone surrogate (header bytes that were not UTF-8, decoded with surrogateescape)
        # is no JSON: replace it rather than lose the document (a log line, an audit row).
        return orjson.dumps(scrub(value), default=_default, option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC)


def clean_text(value: str) -> str:
    """``value`` with every undecodable byte (a lone surrogate) replaced by U+FFFD."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        pass
    try:  # bytes Sanic decoded with surrogateescape: back to bytes, then decoded leniently
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # any other lone surrogate
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def scrub(value: Any) -> Any:
    """A copy of ``value`` whose strings are all valid UTF-8 (see :func:`clean_text`)."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [scrub(v) for v in value]
    return value


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


def uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        parsed = uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None
    # Only the canonical textual form is accepted, so ids have one spelling.
    return parsed if str(parsed) == value.lower() and len(value) == 36 else None
