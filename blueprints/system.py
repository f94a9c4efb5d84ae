"""Liveness and readiness probes."""

from sanic import Blueprint
from sanic.request import Request
from sanic_ext import openapi

from blueprints.docs import ok, problems
from service.errors import ServiceUnavailable
from service.platform.database import connection
from service.platform.jsonutil import json_response

bp = Blueprint("system")

STATUS_SCHEMA = {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]}


@bp.get("/healthz", ctx_public=True)
@openapi.summary("Liveness: the process answers (no database touch)")
@openapi.tag("system")
@ok(200, STATUS_SCHEMA, "Alive")
async def healthz(request: Request):
    return json_response({"status": "ok"})


@bp.get("/readyz", ctx_public=True)
@openapi.summary("Readiness: the database answers")
@openapi.tag("system")
@ok(200, STATUS_SCHEMA, "Ready")
@problems(503)
async def readyz(request: Request):
    try:
        await connection().execute_query("SELECT 1")
    except Exception:
        raise ServiceUnavailable("The database is not reachable.") from None
    return json_response({"status": "ok"})
