"""Liveness and readiness probes."""

from sanic import Blueprint
from sanic.request import Request
from sanic_ext import openapi

from blueprints.docs import ok, problems
from blueprints.schemas import HEALTH
from service.errors import ServiceUnavailable
from service.platform.database import connection

bp = Blueprint("system")

@bp.get("/healthz", ctx_public=True)
@openapi.summary("Liveness: the process answers (no database touch)")
@openapi.tag("system")
@ok(200, HEALTH, "Alive")
async def healthz(request: Request):
    return HEALTH.response({"status": "ok"})


@bp.get("/readyz", ctx_public=True)
@openapi.summary("Readiness: the database answers")
@openapi.tag("system")
@ok(200, HEALTH, "Ready")
@problems(503)
async def readyz(request: Request):
    try:
        await connection().execute_query("SELECT 1")
    except Exception:
        raise ServiceUnavailable("The database is not reachable.") from None
    return HEALTH.response({"status": "ok"})
