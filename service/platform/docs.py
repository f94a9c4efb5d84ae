"""The OpenAPI document and the interactive docs.

Operations are described where they are defined, with sanic-ext's decorators
(``openapi.summary``, ``tag``, ``secured``, ``parameter``, ``response``), the helpers in
``blueprints/docs.py`` and ``json_body``. This module turns those records into one
OpenAPI 3.1 document per app, serves it at ``/docs/openapi.json`` and shows it with
Swagger UI (``/docs``) and ReDoc (``/docs/redoc``). Every asset of those pages is served
from here — Swagger UI from the ``swagger-ui-py`` package, ReDoc vendored in
``service/platform/static`` (see redoc.README.md there) — so the docs work with no internet access.

sanic-ext's own docs blueprint is switched off (``OAS = False``): its pages load Swagger
UI from a CDN through an inline script, its ``oauth2-redirect.html`` route fetches from
a CDN at request time, and its builder keeps one global specification in which the app
started last owns every operation.

``python -m service.platform.openapi_export`` writes the same document to ``openapi/openapi.json``.
"""

from __future__ import annotations

import copy
import hashlib
import html
import importlib.util
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from sanic import Blueprint, Sanic
from sanic.request import Request
from sanic.response import HTTPResponse
from sanic_ext.extensions.openapi.builders import OperationBuilder, OperationStore
from sanic_ext.extensions.openapi.types import Schema

from service.errors import PROBLEM, NotFound

OPENAPI_VERSION = "3.1.0"
API_TITLE = "Achievement Journal API"
API_VERSION = "1.0.0"
API_DESCRIPTION = """\
Students record their achievements; curators verify them; admins run the service.

* JSON in and out, UTF-8, under `/api/v1`. Ids are UUIDs, timestamps RFC 3339 in UTC.
* **Authentication**: `POST /api/v1/auth/login` answers with a short-lived access token
  (send it as `Authorization: Bearer <token>`) and sets the refresh token as an
  `HttpOnly` cookie scoped to `/api/v1/auth`; `POST /api/v1/auth/refresh` rotates it.
* **Errors** are RFC 9457 problem documents (`application/problem+json`); validation
  errors list each failing field in `errors`.
* Every response carries `X-Request-ID`; rate-limited requests get 429 with `Retry-After`.
"""

DOCS_PREFIX = "/docs"
SPEC_PATH = f"{DOCS_PREFIX}/openapi.json"
ASSETS_PATH = f"{DOCS_PREFIX}/assets"
STATIC_DIR = Path(__file__).resolve().parent / "static"

BEARER = "bearer"
SCHEMA_REF = "#/components/schemas/{model}"
PROBLEM_REF = SCHEMA_REF.format(model="Problem")
PROBLEM_JSON = "application/problem+json"

VALIDATION_PROBLEM_REF = SCHEMA_REF.format(model="ValidationProblem")
VALIDATION_PROBLEM_SCHEMA: dict[str, Any] = {
    "description": "A problem document for a body that failed validation (422): `errors` lists every "
                   "failing field with its `code`.",
    "allOf": [{"$ref": PROBLEM_REF}, {"type": "object", "required": ["errors"]}],
}

PROBLEM_DESCRIPTIONS = {
    400: "Malformed JSON or query parameter",
    401: "Missing, invalid, expired or revoked credentials",
    403: "The caller's role may not do this",
    404: "No such resource, or not visible to the caller",
    405: "Method not allowed",
    409: "Duplicate, quota exceeded or state conflict",
    408: "The body did not arrive in time",
    412: "If-Match is stale, or If-None-Match matches the current version",
    413: "Body too large",
    415: "Body is not JSON",
    422: "Body failed validation",
    428: "If-Match is required",
    429: "Rate limited (see Retry-After)",
    503: "Database unavailable",
}

# What the edge and the middleware answer whatever the handler says, so the document
# lists these even where an operation's decorators forgot one.
BODY_PROBLEMS = (400, 413, 415, 422)
PROTECTED_PROBLEMS = (401, 429, 503)
PROBLEM_HEADERS = {
    401: {"WWW-Authenticate": {"description": "`Bearer`, with `error=\"invalid_token\"` for a bad token",
                               "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
}
NO_CONTENT = {"204", "304"}
HIDDEN_METHODS = {"HEAD", "OPTIONS", "TRACE"}

REFRESH_COOKIE = "refreshCookie"
SECURITY_SCHEMES = {
    REFRESH_COOKIE: {
        "type": "apiKey",
        "in": "cookie",
        "name": "refresh_token",
        "description": "The HttpOnly refresh cookie set by login and refresh (Path=/api/v1/auth); the browser "
                       "sends it when the request is made with credentials: 'include'.",
    },
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The access token from `POST /api/v1/auth/login` or `/refresh`.",
    },
}

TAGS = {
    "auth": "Accounts, sign-in, the rotating refresh cookie and sign-out",
    "achievements": "A student's achievements: record, list, import, export, review",
    "achievement-types": "The catalogue of achievement types",
    "admin": "Users, their groups and curator scopes, and the audit log (admin only)",
    "university": "Faculties and groups, and the curators' review queue",
    "scoring": "Levels, results, scoring rule sets, scores and the scholarship rating",
    "credentials": "Approved achievements as verifiable credentials (Open Badges 3.0), the CLR bundle, "
                   "the revocation list and the issuer's keys",
    "portfolio": "Share links to a student's approved achievements, and the public page they open",
    "system": "Liveness and readiness probes",
}


# Plain camelCase verbs that generated clients turn into method names (route name -> id).
OPERATION_IDS = {
    "achievement_types.list_types": "listAchievementTypes",
    "achievement_types.create_type": "createAchievementType",
    "achievement_types.update_type": "updateAchievementType",
    "scoring.get_rating": "getRating",
    "achievements.create_batch": "createAchievementsBatch",
    "achievements.export": "exportAchievements",
    "achievements.stats": "getAchievementStats",
    "achievements.patch_achievement": "updateAchievement",
    "achievements.list_reviews": "listAchievementReviews",
    "admin.get_scopes": "getCuratorScopes",
    "admin.set_scopes": "setCuratorScopes",
    "auth.me": "getMe",
    "auth.refresh": "refreshSession",
    "auth.register": "registerUser",
    "org_units.list_units": "listOrgUnits",
    "org_units.create_unit": "createOrgUnit",
    "org_units.rename_unit": "renameOrgUnit",
    "org_units.delete_unit": "deleteOrgUnit",
    "public.view_portfolio": "getPublicPortfolio",
    "review_queue.list_queue": "listReviewQueue",
    "share_links.list_links": "listShareLinks",
    "share_links.create_link": "createShareLink",
    "share_links.revoke_link": "revokeShareLink",
    "share_links.list_accesses": "listShareLinkAccesses",
    "system.healthz": "getHealth",
    "system.readyz": "getReadiness",
}


ETAG_OPERATIONS = {"getAchievement", "listAchievements", "createAchievement", "replaceAchievement",
                   "updateAchievement", "reviewAchievement"}
LOCATION_OPERATIONS = {"createAchievement", "createOrgUnit", "createShareLink", "createAchievementType"}
ETAG_HEADER = {"description": "The version's entity tag: send it back as If-Match (writes, review) or "
                              "If-None-Match (reads)", "schema": {"type": "string"}}
LOCATION_HEADER = {"description": "The new resource's path", "schema": {"type": "string"}}


def operation_id(route_name: str, method: str, shared: bool) -> str:
    """The route's operationId: from OPERATION_IDS, else its handler's name in camelCase."""
    name = OPERATION_IDS.get(route_name)
    if name is None:
        first, *rest = route_name.split(".")[-1].split("_")
        name = first + "".join(word.capitalize() for word in rest)
    return f"{name}{method.capitalize()}" if shared else name


def problem_content(status: int | None = None) -> dict[str, Any]:
    """The ``content`` of a problem response, for ``openapi.response``."""
    return {PROBLEM_JSON: {"schema": {"$ref": VALIDATION_PROBLEM_REF if status == 422 else PROBLEM_REF}}}


# --------------------------------------------------------------------------- document


def openapi_document(app: Sanic) -> dict[str, Any]:
    """The OpenAPI document of ``app``: every route outside /docs with every method but
    HEAD, OPTIONS and TRACE. The app's router must be finalized (it is once the server
    has started; ``openapi_export`` finalizes it itself)."""
    schemas: dict[str, Any] = {}
    hoist(PROBLEM.schema, schemas)  # Problem and its FieldError
    schemas["ValidationProblem"] = VALIDATION_PROBLEM_SCHEMA
    paths: dict[str, dict[str, Any]] = {}
    docs = DOCS_PREFIX.strip("/")
    for route in app.router.routes:
        if route.path == docs or route.path.startswith(docs + "/") or getattr(route.extra, "static", False):
            continue
        uri = _openapi_path(route.path)
        for method in sorted(route.methods - HIDDEN_METHODS):
            handler = route.handler
            view = getattr(handler, "view_class", None)
            if view is not None:
                handler = getattr(view, method.lower())
            operation = _operation(route, method, handler, uri, schemas)
            if operation is not None:
                paths.setdefault(uri, {})[method.lower()] = operation
    used_tags = {tag for item in paths.values() for op in item.values() for tag in op.get("tags", [])}
    ordered = [t for t in TAGS if t in used_tags] + sorted(used_tags - TAGS.keys())
    document = {
        "openapi": OPENAPI_VERSION,
        "info": {"title": API_TITLE, "version": API_VERSION, "description": API_DESCRIPTION},
        "tags": [{"name": t, "description": TAGS[t]} if t in TAGS else {"name": t} for t in ordered],
        "paths": paths,
        "servers": [{"url": "/", "description": "this service (generated clients take their base URL as an option)"}],
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
    }
    return _openapi31(copy.deepcopy(document))


def render_document(document: dict[str, Any]) -> str:
    """The document as committed and served: sorted keys, two-space indents, one final newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _openapi_path(path: str) -> str:
    uri = "/" + re.sub(r"<([^:>]+)(?::[^>]*)?>", r"{\1}", path)
    return uri.rstrip("/") or "/"


def _records(handler: Any) -> list[OperationBuilder]:
    """The operation records of ``handler`` and of every function it wraps (innermost
    first), so decorators above or below a wrapping decorator such as ``require_role``
    or ``json_body`` all count."""
    store = OperationStore()
    records, seen, fn = [], set(), handler
    while fn is not None and id(fn) not in seen:
        seen.add(id(fn))
        fn = getattr(fn, "__func__", fn)
        if fn in store:
            records.append(store[fn])
        fn = getattr(fn, "__wrapped__", None)
    return list(reversed(records))


def _operation(route, method: str, handler, uri: str, schemas: dict) -> dict[str, Any] | None:
    records = _records(handler)
    if any(r._exclude for r in records):
        return None
    route_name = route.name.split(".", 1)[-1]  # "auth.login"
    op: dict[str, Any] = {"tags": [], "parameters": [], "responses": {}}
    security: list[dict[str, list[str]]] = []
    for record in records:  # outer decorators win
        for field in ("summary", "description", "operationId"):
            if getattr(record, field, None):
                op[field] = getattr(record, field)
        if record.deprecated:
            op["deprecated"] = True
        op["tags"] += [t for t in record.tags if t not in op["tags"]]
        for parameter in record.parameters:
            data = parameter.serialize()
            op["parameters"] = [p for p in op["parameters"]
                                if (p["name"], p["in"]) != (data["name"], data["in"])] + [data]
        body = getattr(record, "requestBody", None)
        if body is not None:
            op["requestBody"] = _request_body(body.serialize(), schemas)
        for status, response in record.responses.items():
            data = response.serialize()
            merged = op["responses"].setdefault(str(status), {})
            merged.update({k: v for k, v in data.items() if k != "content"})
            content = {media: ({**body, "schema": hoist(body["schema"], schemas)} if "schema" in body else body)
                       for media, body in (data.get("content") or {}).items()}
            merged.setdefault("content", {}).update(content)
        security += [s for s in record.security if s not in security]
    op.setdefault("summary", route_name.split(".")[-1].replace("_", " ").capitalize())
    op.setdefault("operationId", operation_id(route_name, method, len(route.methods - HIDDEN_METHODS) > 1))
    if not op["tags"]:
        op["tags"] = [route_name.split(".")[0]]
    for status, response in op["responses"].items():
        if status in ("200", "201") and op["operationId"] in ETAG_OPERATIONS:
            response.setdefault("headers", {})["ETag"] = ETAG_HEADER
        if status == "201" and op["operationId"] in LOCATION_OPERATIONS:
            response.setdefault("headers", {})["Location"] = LOCATION_HEADER
    declared = {p["name"] for p in op["parameters"] if p["in"] == "path"}
    path_params = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "string", "format": "uuid"} if name.endswith("_id")
         else Schema.make(info.cast).serialize()}
        for name, info in _route_params(route).items() if name not in declared
    ]
    op["parameters"] = path_params + op["parameters"]

    protected = uri.startswith("/api/") and not getattr(route.ctx, "public", False)
    if protected:
        op["security"] = security or [{BEARER: []}]
    elif security:
        # A public route (ctx_public) never requires the token: credentials are optional.
        op["security"] = [*security, {}]
    implied = (PROTECTED_PROBLEMS if protected else ()) + (BODY_PROBLEMS if "requestBody" in op else ())
    for status in implied:
        op["responses"].setdefault(str(status), {"description": PROBLEM_DESCRIPTIONS[status],
                                                 "content": problem_content(status)})
    for status, response in op["responses"].items():
        if status in NO_CONTENT or not response.get("content"):
            response.pop("content", None)
        if status.isdigit() and int(status) in PROBLEM_HEADERS:
            response.setdefault("headers", PROBLEM_HEADERS[int(status)])
    if not op["parameters"]:
        del op["parameters"]
    return op


def _route_params(route) -> dict[str, Any]:
    params = getattr(route, "params", None)
    if params is None:
        raise RuntimeError("Finalize the app's router before building its OpenAPI document.")
    return {info.name: info for info in params.values()}


def _request_body(body: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """Named request schemas (pydantic models, from ``json_body``) move to
    components/schemas, their nested models beside them."""
    for media in body.get("content", {}).values():
        schema = media.get("schema")
        if isinstance(schema, dict) and "title" in schema and "properties" in schema:
            schema = _without_null_defaults(copy.deepcopy(schema))
            for name, nested in schema.pop("$defs", {}).items():
                _add_schema(schemas, name, nested)
            _add_schema(schemas, schema["title"], schema)
            media["schema"] = {"$ref": SCHEMA_REF.format(model=schema["title"])}
    return body


def hoist(schema: Any, schemas: dict[str, Any]) -> Any:
    """Every titled object schema of a response (``blueprints/schemas.py``) becomes a named
    component, referenced wherever it appears: generated clients then get one type per shape."""
    if isinstance(schema, list):
        return [hoist(item, schemas) for item in schema]
    if not isinstance(schema, dict):
        return schema
    inner = {key: hoist(value, schemas) for key, value in schema.items()}
    title = inner.get("title")
    if isinstance(title, str) and ("properties" in inner or "enum" in inner):
        _add_schema(schemas, title, {k: v for k, v in inner.items() if k != "title"})
        return {"$ref": SCHEMA_REF.format(model=title)}
    return inner


def _without_null_defaults(schema: Any) -> Any:
    """pydantic writes ``default: null`` for an optional field; generators read that as a
    required field that may be null. Optional means absent: drop the default."""
    if isinstance(schema, dict):
        if schema.get("default", ...) is None:
            del schema["default"]
        for value in schema.values():
            _without_null_defaults(value)
    elif isinstance(schema, list):
        for value in schema:
            _without_null_defaults(value)
    return schema


def _add_schema(schemas: dict[str, Any], name: str, schema: dict[str, Any]) -> None:
    _drop_property_titles(schema)
    if schemas.setdefault(name, schema) != schema:
        raise ValueError(f"Two different request schemas are named {name!r}: rename one model.")


def _drop_property_titles(schema: Any) -> None:
    """pydantic titles every property after its name; they add nothing to the docs."""
    if isinstance(schema, dict):
        for sub in (schema.get("properties") or {}).values():
            if isinstance(sub, dict):
                sub.pop("title", None)
        for value in schema.values():
            _drop_property_titles(value)
    elif isinstance(schema, list):
        for value in schema:
            _drop_property_titles(value)


def _openapi31(node: Any) -> Any:
    """sanic-ext writes OpenAPI 3.0's ``nullable``; 3.1 spells it as a type."""
    if isinstance(node, dict):
        if node.get("nullable") is True:
            node.pop("nullable")
            kind = node.get("type")
            if isinstance(kind, str):
                node["type"] = [kind, "null"]
            elif kind is None:
                inner = dict(node)
                node.clear()
                node["anyOf"] = [inner, {"type": "null"}]
        for value in node.values():
            _openapi31(value)
    elif isinstance(node, list):
        for value in node:
            _openapi31(value)
    return node


# --------------------------------------------------------------------------- the pages


# What a vendored file would otherwise fetch from the internet, replaced when it is served
# (the file on disk stays the upstream one). ReDoc 2.x shows the Redocly logo in its side
# menu as <img src="https://cdn.redoc.ly/...">, which the docs CSP refuses (a console error):
# an empty inline image takes its place. tests/test_browser.py fails on any new one.
EMPTY_SVG = b"data:image/svg+xml,%3Csvg xmlns=%27http://www.w3.org/2000/svg%27/%3E"
ASSET_REWRITES: dict[str, tuple[tuple[bytes, bytes], ...]] = {
    "redoc.standalone.js": ((b"https://cdn.redoc.ly/redoc/logo-mini.svg", EMPTY_SVG),),
}


@dataclass(frozen=True)
class Asset:
    name: str
    path: Path
    content_type: str

    @property
    def url(self) -> str:
        # The content hash in the name lets browsers keep the file for a year.
        stem, dot, ext = self.name.rpartition(".")
        return f"{ASSETS_PATH}/{stem}.{self.digest}{dot}{ext}"

    @property
    def digest(self) -> str:
        return _digest(self.name, self.path)

    def body(self) -> bytes:
        return _read(self.name, self.path)


@cache
def _digest(name: str, path: Path) -> str:
    return hashlib.sha256(_read(name, path)).hexdigest()[:12]


@cache
def _read(name: str, path: Path) -> bytes:
    data = path.read_bytes()
    for old, new in ASSET_REWRITES.get(name, ()):
        data = data.replace(old, new)
    return data


CONTENT_TYPES = {
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "png": "image/png",
}


def swagger_ui_dir() -> Path:
    """The static files of the swagger-ui-py package, found without importing it."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("The swagger-ui-py package is not installed.")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@cache
def docs_assets() -> dict[str, Asset]:
    """Every file the docs pages load, by the file name in its URL."""
    swagger = swagger_ui_dir()
    files = {
        "swagger-ui-bundle.js": swagger / "swagger-ui-bundle.js",
        "swagger-ui.css": swagger / "swagger-ui.css",
        "favicon-32x32.png": swagger / "favicon-32x32.png",
        "redoc.standalone.js": STATIC_DIR / "redoc.standalone.js",
        "swagger-init.js": STATIC_DIR / "swagger-init.js",
        "redoc-init.js": STATIC_DIR / "redoc-init.js",
        "docs.css": STATIC_DIR / "docs.css",
    }
    assets = [Asset(name, path, CONTENT_TYPES[name.rsplit(".", 1)[1]]) for name, path in files.items()]
    return {asset.url.rsplit("/", 1)[1]: asset for asset in assets}


def render_page(template: str) -> str:
    page = (STATIC_DIR / template).read_text(encoding="utf-8")
    for asset in docs_assets().values():
        page = page.replace(f"__ASSET_{asset.name}__", asset.url)
    page = page.replace("__TITLE__", html.escape(API_TITLE)).replace("__PREFIX__", DOCS_PREFIX)
    page = page.replace("__SPEC_URL__", SPEC_PATH)
    left = re.search(r"__[A-Z][\w.-]*__", page)
    if left:  # a typo in the template, or an asset missing from docs_assets()
        raise RuntimeError(f"Unfilled placeholder {left.group()} in {template}")
    return page


def docs_blueprint() -> Blueprint:
    bp = Blueprint("docs", url_prefix=DOCS_PREFIX)
    pages = {"swagger": render_page("swagger.html"), "redoc": render_page("redoc.html")}
    page_headers = {"Cache-Control": "no-cache"}

    # ctx_docs_page: the edge gives these pages the docs CSP (service/platform/edge.py).
    @bp.get("", ctx_docs_page=True)
    async def swagger_ui(request: Request):
        return HTTPResponse(pages["swagger"], headers=page_headers, content_type="text/html; charset=utf-8")

    @bp.get("/redoc", ctx_docs_page=True)
    async def redoc(request: Request):
        return HTTPResponse(pages["redoc"], headers=page_headers, content_type="text/html; charset=utf-8")

    @bp.get("/openapi.json")
    async def spec(request: Request):
        app = request.app
        if getattr(app.ctx, "openapi_json", None) is None:
            app.ctx.openapi_json = render_document(openapi_document(app)).encode()
        return HTTPResponse(app.ctx.openapi_json, headers={"Cache-Control": "no-cache"},
                            content_type="application/json")

    @bp.get("/assets/<filename:str>")
    async def asset(request: Request, filename: str):
        found = docs_assets().get(filename)
        if found is None:
            raise NotFound()
        return HTTPResponse(found.body(), content_type=found.content_type,
                            headers={"Cache-Control": "public, max-age=31536000, immutable"})

    return bp


def setup_docs(app: Sanic) -> None:
    app.config.OAS = False  # our own docs blueprint replaces sanic-ext's (see above)
    app.blueprint(docs_blueprint())
