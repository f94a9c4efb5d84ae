"""Shared OpenAPI response declarations, so every operation documents its errors."""

from __future__ import annotations

from sanic_ext import openapi

PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "request_id"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                "required": ["field", "message"],
            },
        },
        "existing_id": {"type": "string", "format": "uuid"},
        "duplicates": {"type": "array", "items": {"type": "integer"}},
        "existing_ids": {"type": "array", "items": {"type": "string", "format": "uuid"}},
    },
}

_DESCRIPTIONS = {
    400: "Malformed JSON or query parameter",
    401: "Missing, invalid, expired or revoked credentials",
    403: "The caller's role may not do this",
    404: "No such resource, or not visible to the caller",
    405: "Method not allowed",
    409: "Duplicate or state conflict",
    412: "If-Match is stale",
    413: "Body too large",
    415: "Body is not JSON",
    422: "Body failed validation",
    429: "Rate limited (see Retry-After)",
    503: "Database unavailable",
}


def problems(*statuses: int):
    """Document problem responses for ``statuses``."""

    def decorator(handler):
        for status in statuses:
            handler = openapi.response(
                status, {"application/problem+json": PROBLEM_SCHEMA}, _DESCRIPTIONS[status]
            )(handler)
        return handler

    return decorator


def ok(status: int, schema: dict | None, description: str):
    if schema is None:
        return openapi.response(status, description=description)
    return openapi.response(status, {"application/json": schema}, description)


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
