"""Opaque, tamper-evident keyset cursors.

A cursor holds the sort key and the last row's (value, id), signed with a key derived
from JWT_SECRET and bound to the query's filters: a forged, truncated or re-used
(other filters or sort) cursor is a 400, never a 500.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson

from service.errors import BadRequest


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
            raise BadRequest("The cursor is invalid; start again from the first page.") from None


def scope_of(*parts: Any) -> str:
    """A short digest of the sort and filters a cursor belongs to."""
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
