"""Response models: declared once, as pydantic ``TypedDict``s, they both serialise the
responses and are the OpenAPI document's named components.

A :class:`View` wraps one model. ``view.response(body)`` serialises ``body`` (plain dicts
and lists with native values: ``uuid.UUID``, ``datetime``, ``date``) with pydantic's compiled
serialiser, which formats ids and times itself, and keeps only the declared keys: a response
model is also the allow-list of what may leave the server (OWASP API3, excessive data
exposure). ``view.schema`` is the model's JSON schema, as the spec uses it.

``TypedDict`` rather than ``BaseModel``: the services hand out dicts straight from the
database rows, and pydantic serialises a dict for a ``TypedDict`` without building an object
per item (a page of 20 achievements serialises in about 30 us, less than the hand-written
serialiser with orjson took).

Tests switch :data:`CHECKED` on: every body is then also validated against its model, so a
missing or mistyped field fails the test that produced it (pytest turns pydantic's
serialiser warnings into errors as well, see setup.cfg).
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import TypeAdapter, WithJsonSchema
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema
from sanic.response import HTTPResponse

__all__ = ["CHECKED", "View", "named_enum"]

CHECKED = False
"""Validate every response body against its model before it is sent (the test suite sets it)."""

_SIMPLE = {"type", "format", "enum", "description", "pattern"}


def named_enum(title: str | None, members: type[enum.Enum] | Iterable[str]) -> Any:
    """A string field whose values are ``members``, documented as the named enum ``title``
    (one ``Category`` type in generated clients, not one per use; None: an inline ``enum``).
    Serialised as the string it is: the database hands out the value, not the enum member."""
    choices = [m.value for m in members] if isinstance(members, type) else list(members)
    schema = {"type": "string", "enum": choices} if title is None else \
        {"title": title, "type": "string", "enum": choices}
    return Annotated[str, WithJsonSchema(schema)]


class _ResponseSchema(GenerateJsonSchema):
    """pydantic's JSON schema as the spec writes it: no property titles (they only repeat the
    name), and a nullable scalar as OpenAPI 3.1's ``type: [t, "null"]``."""

    def field_title_should_be_set(self, schema) -> bool:
        return False

    def nullable_schema(self, schema: core_schema.NullableSchema) -> dict[str, Any]:
        inner = self.generate_inner(schema["schema"])
        kind = inner.get("type")
        if isinstance(kind, str) and set(inner) <= _SIMPLE:
            nullable = {**inner, "type": [kind, "null"]}
            if "enum" in inner:
                nullable["enum"] = [*inner["enum"], None]
            return nullable
        return super().nullable_schema(schema)


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """``node`` with every ``$ref`` to ``$defs`` replaced by the (titled) definition: the
    spec's builder names titled schemas itself (``service.platform.docs.hoist``)."""
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _inline(copy.deepcopy(defs[ref.rsplit("/", 1)[1]]), defs)
    return {key: _inline(value, defs) for key, value in node.items()}


class View:
    """One response model: its serialiser and its schema."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.adapter = TypeAdapter(model)
        self._serialise = self.adapter.serializer.to_json
        generated = self.adapter.json_schema(mode="serialization", schema_generator=_ResponseSchema)
        defs = generated.pop("$defs", {})
        self.schema: dict[str, Any] = _inline(generated, defs)

    def __repr__(self) -> str:
        return f"View({self.schema.get('title', self.model)!r})"

    def dump(self, body: Any) -> bytes:
        if CHECKED:
            self.adapter.validate_python(body, strict=False)
        return self._serialise(body)

    def response(self, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> HTTPResponse:
        return HTTPResponse(self.dump(body), status=status, headers=headers, content_type="application/json")
