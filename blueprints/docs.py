"""Shared OpenAPI response declarations, so every operation documents its errors."""

from __future__ import annotations

from sanic_ext import openapi
from sanic_ext.extensions.openapi.types import Integer, String

from models.enums import Role, values
from service.platform.docs import PROBLEM_DESCRIPTIONS, PROBLEM_SCHEMA, problem_content
from service.platform.validation import NO_CONTROL_PATTERN

__all__ = ["CURSOR", "DATE", "DATE_TIME", "LIMIT", "PROBLEM_SCHEMA", "PROTECTED", "TOKEN_SCHEMA", "USER_SCHEMA",
           "UUID", "choice", "ok", "problems", "query", "text"]

# Query parameters, described as strictly as service.platform.validation.Query parses them: a value
# outside these schemas gets 400, a value inside them never does (the cursor aside: it must
# also be one the service signed).
LIMIT = Integer(minimum=1, maximum=100)
DATE = String(format="date")
DATE_TIME = String(format="date-time")
UUID = String(format="uuid")
CURSOR = String(pattern=r"^[A-Za-z0-9_-]{1,1000}\.[A-Za-z0-9_-]{1,64}$")


def choice(*values: str) -> String:
    return String(enum=list(values))


def text(max_length: int) -> String:
    return String(maxLength=max_length, pattern=NO_CONTROL_PATTERN)


def query(name: str, schema, description: str, *, required: bool = False):
    """Document a query parameter with its schema."""
    return openapi.parameter(name, schema, "query", description=description, required=required)


def problems(*statuses: int):
    """Document problem responses (application/problem+json) for ``statuses``."""

    def decorator(handler):
        for status in statuses:
            handler = openapi.response(status, problem_content(status), PROBLEM_DESCRIPTIONS[status])(handler)
        return handler

    return decorator


def ok(status: int, schema: dict | None, description: str):
    """Document the success response; ``schema=None`` for one without a body (204)."""
    return openapi.response(status, {"application/json": schema} if schema is not None else {}, description)


USER_SCHEMA = {
    "title": "User",
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "email", "full_name", "role", "is_active", "created_at", "org_unit_id"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "email": {"type": "string"},
        "full_name": {"type": "string"},
        "role": {"title": "Role", "type": "string", "enum": list(values(Role))},
        "is_active": {"type": "boolean"},
        "created_at": {"type": "string", "format": "date-time"},
        "org_unit_id": {"type": ["string", "null"], "format": "uuid",
                        "description": "the user's group (null: the university itself)"},
    },
}

TOKEN_SCHEMA = {
    "title": "TokenResponse",
    "type": "object",
    "additionalProperties": False,
    "required": ["access_token", "token_type", "expires_in", "user"],
    "properties": {
        "access_token": {"type": "string"},
        "token_type": {"type": "string", "enum": ["Bearer"]},
        "expires_in": {"type": "integer"},
        "user": USER_SCHEMA,
    },
}

PROTECTED = (400, 401, 429, 503)
