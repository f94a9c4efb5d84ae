"""The OpenAPI document and the interactive docs: complete, valid, committed, and
served with every asset from the service itself."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from service.platform.edge import API_CSP, DOCS_CSP
from service.platform.openapi_export import DEFAULT_OUTPUT

ROOT = Path(__file__).resolve().parent.parent
HIDDEN = {"HEAD", "OPTIONS", "TRACE"}
PAGES = ("/docs", "/docs/redoc")


@pytest.fixture(scope="module")
def spec(api) -> dict:
    response = api.get("/docs/openapi.json")
    assert response.status == 200
    assert response.headers["content-type"].startswith("application/json")
    return response.json


def operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def api_routes(app):
    """(OpenAPI path, method, route) for every route the app serves under /api/v1."""
    for route in app.router.routes:
        if not route.path.startswith("api/v1"):
            continue
        path = "/" + re.sub(r"<([^:>]+)(:[^>]*)?>", r"{\1}", route.path).rstrip("/")
        for method in route.methods - HIDDEN:
            yield path, method.lower(), route


def resolve(spec: dict, schema: dict) -> dict:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    assert ref.startswith("#/components/schemas/"), ref
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]]


# --------------------------------------------------------------------------- the document


def test_served_spec_equals_committed_spec(spec):
    committed = json.loads(DEFAULT_OUTPUT.read_text(encoding="utf-8"))
    assert spec == committed, "run `python -m service.platform.openapi_export` and commit openapi/openapi.json"


def export(*args: str) -> subprocess.CompletedProcess:
    # A process of its own: the export builds an app with its own logging settings.
    return subprocess.run([sys.executable, "-m", "service.platform.openapi_export", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def test_committed_spec_is_what_the_export_writes_and_check_catches_drift(tmp_path):
    assert export("--check").returncode == 0, "run `python -m service.platform.openapi_export`"
    stale = tmp_path / "openapi.json"
    stale.write_text("{}\n", encoding="utf-8")
    checked = export("--check", "--output", str(stale))
    assert checked.returncode == 1
    assert "python -m service.platform.openapi_export" in checked.stderr
    assert export("--output", str(stale)).returncode == 0
    assert stale.read_text(encoding="utf-8") == DEFAULT_OUTPUT.read_text(encoding="utf-8")


def test_spec_is_a_valid_openapi_document(spec):
    validate(spec)
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] and spec["info"]["version"]
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": spec["components"]["securitySchemes"]["bearer"]["description"],
    }


def test_every_api_route_and_method_is_documented(api, spec):
    missing = [f"{method.upper()} {path}" for path, method, _ in api_routes(api.app)
               if method not in spec["paths"].get(path, {})]
    assert not missing
    documented = {(path, method) for path, method, _ in operations(spec)}
    assert {(p, m) for p, m, _ in api_routes(api.app)} <= documented
    assert not [op for op in documented if op[1].upper() in HIDDEN]
    assert not [path for path in spec["paths"] if path.startswith("/docs")]


def test_every_operation_has_summary_tags_and_a_unique_id(spec):
    ids = []
    for path, method, operation in operations(spec):
        assert operation.get("summary"), f"{method} {path}"
        assert operation.get("tags"), f"{method} {path}"
        ids.append(operation["operationId"])
    assert len(ids) == len(set(ids))
    # plain camelCase verbs, what generated clients name their methods after
    assert all(re.fullmatch(r"[a-z]+(?:[A-Z][a-z]+)*", op_id) for op_id in ids), ids
    assert {"listAchievements", "createAchievement", "reviewAchievement", "updateAchievement"} <= set(ids)
    declared = {tag["name"] for tag in spec["tags"]}
    assert {t for _, _, op in operations(spec) for t in op["tags"]} == declared


def test_every_operation_documents_problem_responses(spec):
    for path, method, operation in operations(spec):
        if not path.startswith("/api/"):
            continue
        problems = [status for status, response in operation["responses"].items()
                    if status.startswith("4") and response.get("content", {}).get(
                        "application/problem+json", {}).get("schema") == {"$ref": "#/components/schemas/Problem"}]
        assert problems, f"{method} {path} documents no 4xx problem response"
    problem = spec["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "request_id"}


def test_protected_operations_require_bearer_and_public_ones_do_not(api, spec):
    for path, method, route in api_routes(api.app):
        operation = spec["paths"][path][method]
        security = operation.get("security", [])
        if getattr(route.ctx, "public", False):
            assert not security or {} in security, f"{method} {path} is public"
        else:
            assert security == [{"bearer": []}], f"{method} {path}"
            assert "401" in operation["responses"]
            assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]


def test_request_bodies_are_the_strict_validation_models(spec):
    bodies = 0
    for path, method, operation in operations(spec):
        if "requestBody" not in operation:
            continue
        bodies += 1
        body = operation["requestBody"]
        assert body["required"] is True
        assert "application/json" in body["content"], f"{method} {path}"
        for media in body["content"].values():
            schema = resolve(spec, media["schema"])
            assert schema["type"] == "object"
            assert schema["additionalProperties"] is False, f"{method} {path}"
            assert "model_config" not in schema["properties"]
        assert {"400", "413", "415", "422"} <= operation["responses"].keys(), f"{method} {path}"
    assert bodies
    register = spec["paths"]["/api/v1/auth/register"]["post"]["requestBody"]["content"]["application/json"]
    model = resolve(spec, register["schema"])
    assert set(model["required"]) == {"email", "password", "full_name"}


def test_responses_without_a_body_declare_no_content(spec):
    seen = 0
    for _, _, operation in operations(spec):
        for status in ("204", "304"):
            if status in operation["responses"]:
                seen += 1
                assert "content" not in operation["responses"][status]
    assert seen
    logout = spec["paths"]["/api/v1/auth/logout"]["post"]["responses"]["204"]
    assert logout == {"description": logout["description"]}


def test_spec_gets_the_api_csp_and_revalidation(api):
    response = api.get("/docs/openapi.json")
    assert response.headers["content-security-policy"] == API_CSP
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-content-type-options"] == "nosniff"


# --------------------------------------------------------------------------- the pages


class References(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self._in_script_without_src = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href"):
            if attrs.get(name) and tag in ("script", "link", "img", "iframe"):
                self.urls.append(attrs[name])
        if tag == "script" and not attrs.get("src"):
            self._in_script_without_src = True
        if any(name.startswith("on") for name in attrs) or tag == "style":
            self.inline_scripts += tag != "style"

    def handle_data(self, data):
        if self._in_script_without_src and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script_without_src = False


@pytest.mark.parametrize("page", PAGES)
def test_docs_page_loads_only_local_assets(api, page):
    response = api.get(page)
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    refs = References()
    refs.feed(response.text)
    assert refs.urls
    assert refs.inline_scripts == 0
    assert "http://" not in response.text and "https://" not in response.text
    for url in refs.urls:
        assert url.startswith("/docs/") and not url.startswith("//"), url
        asset = api.get(url)
        assert asset.status == 200, url
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert asset.headers["x-content-type-options"] == "nosniff"
        assert asset.headers["content-type"].split(";")[0] in {"text/javascript", "text/css", "image/png"}
        assert asset.content


@pytest.mark.parametrize("page", PAGES)
def test_docs_page_gets_the_docs_csp_and_security_headers(api, page):
    response = api.get(page)
    csp = response.headers["content-security-policy"]
    assert csp == DOCS_CSP
    directives = {part.split()[0]: part.split()[1:] for part in csp.split(";") if part.strip()}
    assert directives["script-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["base-uri"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert not [v for values in directives.values() for v in values if v.startswith(("http", "*"))]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-cache"


def test_swagger_ui_is_configured_to_stay_local(api):
    page = api.get("/docs").text
    init = next(url for url in re.findall(r'src="([^"]+)"', page) if "swagger-init" in url)
    script = api.get(init).text
    assert "validatorUrl: null" in script
    assert "http" not in script


def test_served_redoc_loads_no_image_from_a_cdn(api):
    page = api.get("/docs/redoc").text
    bundle = next(url for url in re.findall(r'src="([^"]+)"', page) if "redoc.standalone" in url)
    # the side menu's logo (ASSET_REWRITES in service/platform/docs.py)
    assert b"cdn.redoc.ly" not in api.get(bundle).content


def test_cdn_backed_sanic_ext_routes_are_gone(api):
    for path in ("/docs/oauth2-redirect.html", "/docs/swagger-config", "/docs/swagger",
                 "/docs/assets/swagger-ui-bundle.js", "/docs/assets/..%2Fdocs.py"):
        response = api.get(path)
        assert response.status == 404, path
        assert response.headers["content-security-policy"] == API_CSP
