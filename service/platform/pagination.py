"""Opaque, tamper-evident keyset cursors.

A cursor holds the sort key and the last row's (value, id), signed with a key derived
from JWT_SECRET and bound to the query's filters: a forged, truncated or re-used
(other filters or sort) cursor is a 400, never a 500.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import uuid
from typing import Any

import orjson
from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.queryset import QuerySet

from service.errors import BadRequest

INVALID = "The cursor is invalid; start again from the first page."


class Cursors:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"cursor/v1/" + secret.encode()).digest()

    def _mac(self, payload: bytes) -> str:
        digest = hmac.new(self._key, payload, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def encode(self, scope: str, position: list[Any]) -> str:
        payload = orjson.dumps({"s": scope, "p": position})
        body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
        return f"{body}.{self._mac(payload)}"

    def decode(self, scope: str, cursor: str) -> list[Any]:
        try:
            body, mac = cursor.split(".", 1)
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            if not hmac.compare_digest(mac, self._mac(payload)):
                raise ValueError
            data = orjson.loads(payload)
            if data.get("s") != scope or not isinstance(data.get("p"), list):
                raise ValueError
            return data["p"]
        except (ValueError, TypeError, AttributeError, orjson.JSONDecodeError):
            raise BadRequest(INVALID) from None


def scope_of(*parts: Any) -> str:
    """A short digest of the sort and filters a cursor belongs to."""
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


# --- keyset positions: the sort value and the id of a page's last row -------------------------

def position_of(value: Any, row_id: Any) -> list[Any]:
    return [value.isoformat() if isinstance(value, dt.date) else value, str(row_id)]


def parse_position(kind: type, raw: list[Any]) -> tuple[Any, uuid.UUID]:
    """The (value, id) a cursor's position names; ``kind`` is the sort column's type."""
    try:
        value, raw_id = raw
        if kind is dt.datetime:
            parsed: Any = dt.datetime.fromisoformat(value)
        elif kind is dt.date:
            parsed = dt.date.fromisoformat(value)
        else:
            parsed = str(value)
        return parsed, uuid.UUID(raw_id)
    except (ValueError, TypeError):
        raise BadRequest(INVALID) from None


async def orm_page(queryset: QuerySet, cursors: Cursors, scope: str, cursor: str | None, limit: int, *,
                   column: str, kind: type, descending: bool = True) -> tuple[list[Model], str | None]:
    """One page of ``queryset`` in (column, id) order after the cursor's position, and the
    cursor of the next page (None on the last). Ties on ``column`` are broken by id, so pages
    never overlap and rows inserted meanwhile never shift them."""
    if cursor:
        value, after_id = parse_position(kind, cursors.decode(scope, cursor))
        op = "lt" if descending else "gt"
        queryset = queryset.filter(Q(**{f"{column}__{op}": value}) | Q(**{column: value, f"id__{op}": after_id}))
    order = "-" if descending else ""
    rows = await queryset.order_by(f"{order}{column}", f"{order}id").limit(limit + 1)
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, cursors.encode(scope, position_of(getattr(last, column), last.id))
