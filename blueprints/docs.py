"""Shared OpenAPI response declarations, so every operation documents its errors."""

from __future__ import annotations

from sanic_ext import openapi
from sanic_ext.extensions.openapi.types import Integer, String

from service.platform.docs import PROBLEM_DESCRIPTIONS, problem_content
from service.platform.validation import NO_CONTROL_PATTERN
from service.platform.views import View

__all__ = ["CURSOR", "DATE", "DATE_TIME", "LIMIT", "PROTECTED", "UUID", "choice", "ok", "problems", "query", "text"]

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


def ok(status: int, view: View | None, description: str):
    """Document the success response with its model (``blueprints.schemas``); ``None`` for one
    without a body (204)."""
    return openapi.response(status, {"application/json": view.schema} if view is not None else {}, description)


PROTECTED = (400, 401, 429, 503)
