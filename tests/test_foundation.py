"""The service foundation: problem documents, request ids, headers, probes, config."""

from __future__ import annotations

import json
import uuid

import pytest

from service.platform.settings import ConfigError, Settings

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def assert_security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "server" not in {k.lower() for k in response.headers}


def test_healthz_ok_with_security_headers(api):
    response = api.get("/healthz")
    assert response.status == 200
    assert response.json == {"status": "ok"}
    assert_security_headers(response)
    assert response.headers["cache-control"] == "no-store"


def test_readyz_ok_when_database_answers(api):
    response = api.get("/readyz")
    assert response.status == 200


def test_unknown_route_is_problem_document(api):
    response = api.get("/nope", headers={"X-Request-ID": "abc-123"})
    assert response.status == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json
    assert body["status"] == 404 and body["title"] == "Not Found"
    assert body["request_id"] == "abc-123" == response.headers["x-request-id"]
    assert set(body) == {"type", "title", "status", "detail", "request_id", "code"} and body["code"] == "not_found"
    assert_security_headers(response)


@pytest.mark.parametrize("supplied", ["", "a" * 129, "bad id", "<script>"])
def test_invalid_request_id_is_replaced(api, supplied):
    response = api.get("/healthz", headers={"X-Request-ID": supplied})
    rid = response.headers["x-request-id"]
    assert rid != supplied and 1 <= len(rid) <= 128


def test_method_not_allowed_has_allow_and_trace_refused(api):
    response = api.delete("/healthz")
    assert response.status == 405
    assert "GET" in response.headers["allow"]
    assert response.headers["content-type"] == "application/problem+json"
    trace = api.request("TRACE", "/healthz")
    assert trace.status == 405
    assert "TRACE" not in trace.headers.get("allow", "")


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("TRACE", "/api/v1/achievements/{id}/review", "OPTIONS, POST"),
    ("GET", "/api/v1/achievements/{id}/review", "OPTIONS, POST"),
    ("POST", "/api/v1/achievements/{id}", "DELETE, GET, HEAD, OPTIONS, PATCH, PUT"),
    ("TRACE", "/api/v1/admin/users/{id}", "OPTIONS, PATCH"),
])
def test_method_not_allowed_on_a_parameterised_path_has_allow(api, method, path, allowed):
    # sanic-routing names the allowed methods only for static paths (schemathesis found this).
    response = api.request(method, path.format(id=uuid.uuid4()))
    assert response.status == 405
    assert response.headers["allow"] == allowed


def test_hsts_only_over_https_via_trusted_proxy(build_api):
    plain = build_api()
    trusted = build_api(PROXIES_COUNT=1)
    try:
        assert "strict-transport-security" not in plain.get(
            "/healthz", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "1.2.3.4"}).headers
        response = trusted.get("/healthz", headers={"X-Forwarded-Proto": "https",
                                                    "X-Forwarded-For": "1.2.3.4"})
        assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    finally:
        plain.close()
        trusted.close()


def test_unhandled_exception_is_generic_500(build_api):
    def add_failing_route(app):
        @app.get("/boom-test", ctx_public=True)
        async def boom(request):
            raise RuntimeError("secret detail /etc/passwd SELECT * FROM users")

    api = build_api(setup=add_failing_route)
    try:
        response = api.get("/boom-test")
    finally:
        api.close()
    assert response.status == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret" not in response.text and "Traceback" not in response.text
    assert "SELECT" not in response.text and "RuntimeError" not in response.text
    assert response.json["request_id"] == response.headers["x-request-id"]


VALID = {"JWT_SECRET": "s" * 32, "CREDENTIAL_SIGNING_KEY": "00" * 32}


@pytest.mark.parametrize("secret", [None, "", "short-secret"])
def test_refuses_missing_or_short_jwt_secret(secret):
    env = {"DATABASE_URL": "postgres://u:p@localhost/db"}
    if secret is not None:
        env["JWT_SECRET"] = secret
    with pytest.raises(ConfigError):
        Settings.from_env(env)


def test_refuses_missing_database_url():
    with pytest.raises(ConfigError):
        Settings.from_env({"JWT_SECRET": "s" * 40})


def test_settings_defaults_follow_contract():
    settings = Settings.from_env({"DATABASE_URL": "postgres://u:p@h:5433/db", **VALID})
    assert settings.access_token_ttl == 900 and settings.refresh_token_ttl == 1_209_600
    assert settings.bcrypt_rounds == 12 and settings.cookie_secure is True
    assert settings.proxies_count == 0 and settings.cors_origins == ()
    assert settings.rate_limit_login_ip == "20/minute"
    assert settings.rate_limit_login_account == "5/15minutes"
    assert settings.db_pool_max == 10 and settings.db_statement_cache is True
    assert settings.database.host == "h" and settings.database.port == 5433


@pytest.mark.parametrize("value", ["0", "unlimited"])
def test_rate_limit_can_be_switched_off(value):
    settings = Settings.from_env({"DATABASE_URL": "postgres://h/db", **VALID,
                                  "RATE_LIMIT_API_USER": value})
    assert settings.rate_limit_api_user is None


def test_cors_wildcard_refused():
    with pytest.raises(ConfigError):
        Settings.from_env({"DATABASE_URL": "postgres://h/db", **VALID, "CORS_ORIGINS": "*"})


def test_heroku_files_are_in_step_with_setup_cfg():
    """Heroku's buildpack installs requirements.txt and pins Python with .python-version."""
    import configparser
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    config = configparser.ConfigParser()
    config.read(root / "setup.cfg")
    declared = {line.strip() for line in config["options"]["install_requires"].splitlines() if line.strip()}
    listed = {line.strip() for line in (root / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    assert listed == declared
    python = (root / ".python-version").read_text().strip()
    assert config["options"]["python_requires"] == f">={python}"
    app = json.loads((root / "app.json").read_text())
    assert app["env"]["JWT_SECRET"]["generator"] == "secret"
    assert {addon["plan"].split(":")[0] for addon in app["addons"]} == {"heroku-postgresql", "heroku-redis"}


def test_problems_speak_russian_when_asked_and_keep_their_codes(api, users):
    from service.platform.i18n import language_of

    session = users.signed_in()
    missing = api.get(f"/api/v1/achievements/{uuid.uuid4()}", token=session["token"],
                      headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.8"})
    assert missing.status == 404 and missing.json["code"] == "not_found"
    assert missing.json["title"] == "Не найдено" and missing.json["detail"] == "Такого достижения нет."
    assert missing.headers["content-language"] == "ru"
    invalid = api.post("/api/v1/achievements", token=session["token"], headers={"Accept-Language": "ru"},
                       json={"title": "x" * 201, "type": "olympiad", "date": "2999-01-01", "extra": 1})
    messages = {e["field"]: (e["code"], e["message"]) for e in invalid.json["errors"]}
    assert messages == {"title": ("too_long", "не длиннее 200 символов"),
                        "date": ("in_future", "не может быть в будущем"),
                        "extra": ("unknown_field", "такого поля нет")}
    assert invalid.json["title"] == "Ошибка проверки данных" and invalid.json["code"] == "validation_failed"
    english = api.get(f"/api/v1/achievements/{uuid.uuid4()}", token=session["token"],
                      headers={"Accept-Language": "ru;q=0.1, en"})
    assert english.json["detail"] == "No such achievement." and english.headers["content-language"] == "en"
    assert language_of("de, fr;q=0.9") == "en" and language_of("RU") == "ru" and language_of("x" * 999) == "en"
    assert language_of(None) == "en" and language_of("en;q=0.5, ru;q=0.6") == "ru"
