"""Shared OpenAPI response declarations, so every operation documents its errors."""

from __future__ import annotations

from sanic_ext import openapi

from service.docs import PROBLEM_DESCRIPTIONS, PROBLEM_SCHEMA, problem_content

__all__ = ["PROBLEM_SCHEMA", "PROTECTED", "TOKEN_SCHEMA", "USER_SCHEMA", "ok", "problems"]


def problems(*statuses: int):
    """Document problem responses (application/problem+json) for ``statuses``."""

    def decorator(handler):
        for status in statuses:
            handler = openapi.response(status, problem_content(), PROBLEM_DESCRIPTIONS[status])(handler)
        return handler

    return decorator


def ok(status: int, schema: dict | None, description: str):
    """Document the success response; ``schema=None`` for one without a body (204)."""
    return openapi.response(status, {"application/json": schema} if schema is not None else {}, description)


USER_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "email", "full_name", "role", "is_active", "created_at"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "email": {"type": "string"},
        "full_name": {"type": "string"},
        "role": {"type": "string", "enum": ["student", "curator", "admin"]},
        "is_active": {"type": "boolean"},
        "created_at": {"type": "string", "format": "date-time"},
    },
}

TOKEN_SCHEMA = {
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
