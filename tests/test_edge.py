"""The edge, in process: body limits, content checks, rate limits, client IP and CORS.

What needs a real server process (several workers, Redis, raw sockets, lying bodies) is
in test_realserver_edge.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid

import pytest
from limits.aio.storage import MemoryStorage
from sanic.response import HTTPResponse

from service.errors import TooManyRequests
from service.platform import ratelimit
from service.platform.jsonutil import dumps
from service.platform.ratelimit import RateLimits
from service.platform.validation import Query
from tests.conftest import PASSWORD, Users, make_settings

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
ME = "/api/v1/auth/me"
BATCH = "/api/v1/achievements/batch"
KIB = 1024
APP = "https://app.example.com"
JSON = {"Content-Type": "application/json"}
SECURITY_HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
                    "x-frame-options": "DENY"}
CORS_REQUEST_HEADERS = "authorization, content-type, if-match, if-none-match, x-request-id"


@contextlib.contextmanager
def built(build_api, setup=None, **env):
    client = build_api(setup, **env)
    try:
        yield client
    finally:
        client.close()


def padded(document: dict, size: int) -> bytes:
    """``document`` as JSON padded with spaces to exactly ``size`` bytes."""
    raw = json.dumps(document).encode()
    return raw[:-1] + b" " * (size - len(raw)) + b"}"


def assert_problem(response, status: int) -> dict:
    assert response.status == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json
    assert body["status"] == status and body["request_id"] == response.headers["x-request-id"]
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    assert "Traceback" not in response.text and "sanic" not in response.text.lower()
    return body


def cors_headers(response) -> dict:
    return {k.lower(): v for k, v in response.headers.items() if k.lower().startswith("access-control-")}


def login_body(email="nobody@example.org", password="wrong password !"):
    return {"email": email, "password": password}


# --- body size ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [REGISTER, LOGIN])
def test_json_body_over_64_kib_is_413_problem(api, path):
    response = api.post(path, content=padded(login_body(), 64 * KIB + 1), headers=JSON)
    body = assert_problem(response, 413)
    assert body["title"] == "Request Entity Too Large"
    assert response.headers["connection"] == "close"


def test_json_body_of_exactly_64_kib_is_read(api, users):
    user = users.make()
    response = api.post(LOGIN, content=padded(login_body(user["email"], PASSWORD), 64 * KIB), headers=JSON)
    assert response.status == 200


def test_two_megabyte_body_is_413_not_read(api):
    response = api.post(REGISTER, content=b"[" + b"1," * (1024 * KIB) + b"1]", headers=JSON)
    assert_problem(response, 413)


def _batch_route_declared() -> bool:
    try:
        from blueprints.achievements import bp
    except ImportError:
        return False
    return any(route.uri.rstrip("/") == "/batch" and "POST" in route.methods for route in bp._future_routes)


batch_route = pytest.mark.skipif(not _batch_route_declared(),
                                 reason="POST /api/v1/achievements/batch is not registered yet")


@batch_route
def test_batch_route_allows_8_mib(api):
    route = next(r for r in api.app.router.routes
                 if r.path.rstrip("/") == BATCH.strip("/") and "POST" in r.methods)
    assert route.ctx.body_limit == 8 * KIB * KIB


@batch_route
def test_batch_body_over_64_kib_is_read_for_a_signed_in_user(api, users):
    session = users.signed_in()
    item = {"title": "x", "type": "no-such-type", "date": "2020-01-01"}
    items = [item] * 4000  # about 200 KiB: more than any other route takes
    response = api.post(BATCH, token=session["token"], content=json.dumps({"items": items}).encode(),
                        headers=JSON)
    assert len(json.dumps({"items": items})) > 64 * KIB
    assert response.status not in (413, 500), response.text
    assert response.status == 422


@batch_route
def test_batch_large_body_without_valid_token_is_401_before_reading(api, users):
    big = json.dumps({"items": [{"title": "x" * 100}] * 1000}).encode()  # > 64 KiB
    assert_problem(api.post(BATCH, content=big, headers=JSON), 401)
    assert_problem(api.post(BATCH, content=big, headers=JSON, token="not.a.token"), 401)
    small = api.post(BATCH, content=b'{"items": []}', headers=JSON)
    assert_problem(small, 401)
    assert small.headers["www-authenticate"] == "Bearer"


# --- content checks -------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [REGISTER, LOGIN])
@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz",
    "application/xml", "application/json-patch+json", "application/merge-patch+json", None,
])
def test_non_json_body_is_415(api, path, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = api.post(path, content=json.dumps(login_body()).encode(), headers=headers)
    assert_problem(response, 415)


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON"])
def test_json_content_types_accepted(api, content_type):
    response = api.post(LOGIN, content=json.dumps(login_body()).encode(), headers={"Content-Type": content_type})
    assert response.status == 401


def test_patch_accepts_merge_patch_json_only(api, users):
    session = users.signed_in()
    body = json.dumps({"full_name": "New Name"}).encode()
    merge = api.patch(ME, token=session["token"], content=body,
                      headers={"Content-Type": "application/merge-patch+json"})
    assert merge.status == 200 and merge.json["full_name"] == "New Name"
    assert_problem(api.patch(ME, token=session["token"], content=body, headers={"Content-Type": "text/plain"}),
                   415)
    assert_problem(api.patch(ME, token=session["token"], content=body), 415)


@pytest.mark.parametrize("raw", [
    b"", b" ", b"{", b'{"email": "a@b.org",}', b"{'email': 'a'}", b'{"password": NaN}',
    b'{"password": Infinity}', b'{"password": -Infinity}', b'{"password": 1e999999}',
    b'{"password": ' + b"9" * 400 + b"}", b"\xef\xbb\xbf{}", b'{"email": "\xff"}', b"null null",
    b'{"a": 1} trailing',
], ids=lambda raw: repr(raw[:24]))
def test_malformed_json_is_400(api, raw):
    body = assert_problem(api.post(LOGIN, content=raw, headers=JSON), 400)
    assert "errors" not in body


@pytest.mark.parametrize("opening, closing", [(b"[", b"]"), (b'{"a":', b"}")])
def test_deeply_nested_json_is_a_fast_400(api, opening, closing):
    raw = opening * 10_000 + b"1" + closing * 10_000
    started = time.perf_counter()
    response = api.post(LOGIN, content=raw, headers=JSON)
    assert time.perf_counter() - started < 1.0
    assert_problem(response, 400)


def test_moderately_nested_json_is_a_422(api):
    response = api.post(LOGIN, content=b'{"email": ' + b"[" * 500 + b"]" * 500 + b"}", headers=JSON)
    assert_problem(response, 422)


def test_duplicate_keys_last_one_wins_every_time(api):
    email = f"dup-{uuid.uuid4().hex[:8]}@example.org"
    raw = f'{{"email": "first@example.org", "password": "{PASSWORD}", "full_name": "Dup", "email": "{email}"}}'
    raw = raw.encode()
    response = api.post(REGISTER, content=raw, headers=JSON)
    assert response.status == 201 and response.json["email"] == email
    again = api.post(REGISTER, content=raw, headers=JSON)
    assert again.status == 409  # the same (last) value both times


def test_duplicate_keys_cannot_smuggle_a_restricted_field(api):
    raw = b'{"email": "x@example.org", "password": "long enough pw", "full_name": "X", "role": "admin", "role": 1}'
    body = assert_problem(api.post(REGISTER, content=raw, headers=JSON), 422)
    assert {"field": "role", "message": "is not an allowed field", "code": "unknown_field"} in body["errors"]


@pytest.mark.parametrize("number", ["123456789012345678901234567890", "-0", "1e308", "18446744073709551616",
                                    "-9223372036854775809", "0.1e-400"])
def test_huge_numbers_are_4xx_never_500(api, number):
    raw = f'{{"email": {number}, "password": {number}}}'.encode()
    response = api.post(LOGIN, content=raw, headers=JSON)
    assert 400 <= response.status < 500, response.text
    assert_problem(response, response.status)


def _query_route(app):
    @app.get("/api/v1/test-query", ctx_public=True)
    async def test_query(request):
        query = Query(request, {"type", "sort", "limit", "date_from", "cursor", "q"}, frozenset({"type"}))
        return HTTPResponse(dumps({
            "type": query.all("type"), "sort": query.choice("sort", ("date", "-date")),
            "limit": query.int("limit", 20, 1, 100), "date_from": str(query.date("date_from")),
            "q": query.text("q"),
        }), content_type="application/json")


@pytest.fixture(scope="module")
def query_api(build_api):
    client = build_api(_query_route)
    yield client
    client.close()


def test_allowed_query_parameters_parsed(query_api):
    response = query_api.get("/api/v1/test-query?type=a&type=b&sort=-date&limit=100&date_from=2024-02-29&q=x")
    assert response.status == 200
    assert response.json == {"type": ["a", "b"], "sort": "-date", "limit": 100, "date_from": "2024-02-29", "q": "x"}


@pytest.mark.parametrize("query", [
    "owner__password_hash=1", "sort=owner__password_hash", "sort=date&sort=-date", "limit=0", "limit=101",
    "limit=-1", "limit=1e3", "limit=", "limit=10&limit=100000", "limit=%00", "date_from=2024-02-30",
    "date_from=0000-01-01", "date_from=yesterday", "q=%0d%0aInjected", "access_token=abc", "LIMIT=5",
])
def test_unknown_or_malformed_query_parameter_is_400(query_api, query):
    body = assert_problem(query_api.get(f"/api/v1/test-query?{query}"), 400)
    assert "errors" not in body


# --- rate limits ----------------------------------------------------------------------------------

def assert_rate_limited(response, limit: int, window: int):
    body = assert_problem(response, 429)
    assert body["title"] == "Too Many Requests"
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= window
    assert response.headers["ratelimit-limit"] == str(limit)
    assert response.headers["ratelimit-remaining"] == "0"
    assert 1 <= int(response.headers["ratelimit-reset"]) <= window


def register(client, email=None, headers=None):
    email = email or f"edge-{uuid.uuid4().hex[:10]}@example.org"
    return client.post(REGISTER, json={"email": email, "password": PASSWORD, "full_name": "Edge Test"},
                       headers=headers)


def test_register_limit_per_ip_from_env(build_api):
    with built(build_api, RATE_LIMIT_REGISTER_IP="2/minute") as client:
        first, second = register(client), register(client)
        assert first.status == second.status == 201
        assert (first.headers["ratelimit-limit"], first.headers["ratelimit-remaining"]) == ("2", "1")
        assert second.headers["ratelimit-remaining"] == "0"
        assert_rate_limited(register(client), 2, 60)
        events = client.sql("SELECT ip, details FROM audit_events WHERE action = 'security.rate_limited'")
        assert [e["ip"] for e in events] == ["127.0.0.1"]


def test_login_limit_per_ip_from_env_and_headers_on_success(build_api):
    with built(build_api, RATE_LIMIT_LOGIN_IP="3/hour") as client:
        user = Users(client).make()
        ok = client.post(LOGIN, json=login_body(user["email"], PASSWORD))
        assert ok.status == 200
        assert (ok.headers["ratelimit-limit"], ok.headers["ratelimit-remaining"]) == ("3", "2")
        assert 0 < int(ok.headers["ratelimit-reset"]) <= 3600
        assert client.post(LOGIN, json=login_body()).status == 401
        assert client.post(LOGIN, json=login_body(user["email"], PASSWORD)).status == 200
        assert_rate_limited(client.post(LOGIN, json=login_body(user["email"], PASSWORD)), 3, 3600)


def test_failed_login_limit_per_account_from_env(build_api):
    with built(build_api, RATE_LIMIT_LOGIN_ACCOUNT="2/minute") as client:
        user = Users(client).make()
        assert [client.post(LOGIN, json=login_body(user["email"])).status for _ in range(2)] == [401, 401]
        assert_rate_limited(client.post(LOGIN, json=login_body(user["email"], PASSWORD)), 2, 60)
        other = Users(client).make()
        assert client.post(LOGIN, json=login_body(other["email"], PASSWORD)).status == 200


def test_api_limit_per_user_from_env(build_api):
    with built(build_api, RATE_LIMIT_API_USER="3/minute") as client:
        users = Users(client)
        first, second = users.signed_in(), users.signed_in()
        responses = [client.get(ME, token=first["token"]) for _ in range(3)]
        assert [r.status for r in responses] == [200, 200, 200]
        assert [r.headers["ratelimit-remaining"] for r in responses] == ["2", "1", "0"]
        assert all(r.headers["ratelimit-limit"] == "3" for r in responses)
        assert_rate_limited(client.get(ME, token=first["token"]), 3, 60)
        assert client.get(ME, token=second["token"]).status == 200  # a per-user count
        # anonymous requests are not counted against anyone
        assert "ratelimit-limit" not in client.get("/healthz").headers


def test_limits_switched_off_with_0_or_unlimited(build_api):
    with built(build_api, RATE_LIMIT_LOGIN_IP="0", RATE_LIMIT_LOGIN_ACCOUNT="unlimited",
               RATE_LIMIT_REGISTER_IP="unlimited", RATE_LIMIT_API_USER="0") as client:
        user = Users(client).make()
        statuses = {client.post(LOGIN, json=login_body(user["email"])).status for _ in range(12)}
        assert statuses == {401}
        session = Users(client).login(user)
        me = [client.get(ME, token=session["token"]) for _ in range(5)]
        assert {r.status for r in me} == {200}
        assert not any(k.lower().startswith("ratelimit") for r in me for k in r.headers)
        assert register(client).status == 201


def test_spoofed_forwarded_for_changes_neither_bucket_nor_audit_ip(build_api):
    with built(build_api, RATE_LIMIT_REGISTER_IP="2/minute") as client:
        statuses = [register(client, headers={"X-Forwarded-For": f"198.51.100.{i}", "X-Real-IP": f"10.1.1.{i}",
                                              "Forwarded": f"for=192.0.2.{i}"}).status for i in range(3)]
        assert statuses == [201, 201, 429]
        ips = client.sql("SELECT DISTINCT ip FROM audit_events")
        assert ips == [{"ip": "127.0.0.1"}]


def test_trusted_proxy_supplies_the_client_ip(build_api):
    with built(build_api, PROXIES_COUNT=1, RATE_LIMIT_REGISTER_IP="2/minute") as client:
        def from_client(chain):
            return register(client, headers={"X-Forwarded-For": chain}).status

        assert from_client("203.0.113.7") == 201
        assert from_client("6.6.6.6, 203.0.113.7") == 201  # the client's own prefix is not trusted
        assert from_client("7.7.7.7, 203.0.113.7") == 429
        assert from_client("203.0.113.8") == 201  # another client, another bucket
        ips = {row["ip"] for row in client.sql("SELECT ip FROM audit_events")}
        assert ips == {"203.0.113.7", "203.0.113.8"}


class FlakyStorage(MemoryStorage):
    """A shared store that can be switched off, as Redis going away."""

    def __init__(self):
        super().__init__()
        self.down = False
        self.calls = 0

    async def _maybe_fail(self):
        self.calls += 1
        if self.down:
            raise ConnectionError("store down")

    async def incr(self, *args, **kwargs):
        await self._maybe_fail()
        return await super().incr(*args, **kwargs)

    async def get(self, *args, **kwargs):
        await self._maybe_fail()
        return await super().get(*args, **kwargs)

    async def clear(self, *args, **kwargs):
        await self._maybe_fail()
        return await super().clear(*args, **kwargs)


def test_store_outage_fails_open_to_local_counters_and_recovers(database_url, caplog, monkeypatch):
    settings = make_settings(database_url, RATE_LIMIT_LOGIN_IP="2/minute")
    store = FlakyStorage()
    limits = RateLimits(settings, storage=store)

    async def scenario():
        await limits.enforce(limits.login_ip, "login-ip", "1.1.1.1")
        store.down = True
        with caplog.at_level(logging.WARNING, logger="service.platform.ratelimit"):
            # fails open: not refused although the shared store holds a count of 1 already
            assert (await limits.enforce(limits.login_ip, "login-ip", "1.1.1.1")).remaining == 1
            assert (await limits.enforce(limits.login_ip, "login-ip", "1.1.1.1")).remaining == 0
            calls = store.calls
            # ... but still counted (per worker) rather than unlimited
            with pytest.raises(TooManyRequests):
                await limits.enforce(limits.login_ip, "login-ip", "1.1.1.1")
            assert store.calls == calls  # the dead store is not asked again at once
            assert await limits.once_per(60, "audit", "1.1.1.1") is True
            assert await limits.once_per(60, "audit", "1.1.1.1") is False  # audit bounding holds
        warnings = [r for r in caplog.records if getattr(r, "event", None) == "ratelimit.store_error"]
        assert len(warnings) == 1
        store.down = False
        monkeypatch.setattr(ratelimit, "STORE_RETRY_AFTER", 0.0)
        limits._retry_store_at = 0.0001  # the retry time has come
        decision = await limits.enforce(limits.login_ip, "login-ip", "1.1.1.1")
        assert decision.remaining == 0  # back on the shared count (1 before the outage, 2 now)

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()


# --- CORS -----------------------------------------------------------------------------------------

def preflight(client, path, method="POST", origin=APP, request_headers=CORS_REQUEST_HEADERS):
    headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if request_headers:
        headers["Access-Control-Request-Headers"] = request_headers
    return client.request("OPTIONS", path, headers=headers)


def assert_vary_origin(response):
    assert "origin" in {v.strip().lower() for v in response.headers["vary"].split(",")}


@pytest.mark.parametrize("path, method", [(ME, "PATCH"), (ME, "GET"), (LOGIN, "POST"), ("/api/v1/auth/logout", "POST")])
def test_preflight_granted_for_allowed_origin_without_credentials(api, path, method):
    response = preflight(api, path, method)
    assert response.status == 204, response.text  # not 401: a preflight never carries a token
    cors = cors_headers(response)
    assert cors["access-control-allow-origin"] == APP
    assert cors["access-control-allow-credentials"] == "true"
    assert method in cors["access-control-allow-methods"].split(",")
    assert "TRACE" not in cors["access-control-allow-methods"]
    assert set(cors["access-control-allow-headers"].split(",")) == {
        "authorization", "content-type", "if-match", "if-none-match", "x-request-id"}
    assert int(cors["access-control-max-age"]) > 0
    assert_vary_origin(response)
    assert "www-authenticate" not in response.headers
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert response.headers["x-request-id"]
    assert "server" not in {k.lower() for k in response.headers}


def test_preflight_only_lists_the_routes_methods(api):
    response = preflight(api, LOGIN)
    assert set(response.headers["access-control-allow-methods"].split(",")) <= {"POST", "OPTIONS"}


def test_allowed_origin_gets_exact_origin_credentials_and_exposed_headers(api, users):
    session = users.signed_in()
    for response in (api.get(ME, token=session["token"], headers={"Origin": APP}),
                     api.get(ME, headers={"Origin": APP}),  # errors too: the SPA must read the 401
                     api.get("/healthz", headers={"Origin": APP})):
        cors = cors_headers(response)
        assert cors["access-control-allow-origin"] == APP
        assert cors["access-control-allow-credentials"] == "true"
        assert {"etag", "location", "x-request-id", "retry-after", "content-disposition"} <= set(
            cors["access-control-expose-headers"].split(","))
        assert "access-control-allow-methods" not in cors  # only on preflights
        assert_vary_origin(response)


BAD_ORIGINS = ["https://evil.example", "null", "https://app.example.com.evil.example",
               "https://evilapp.example.com", "http://app.example.com", "https://app.example.com:444",
               "https://APP.example.com.evil.example", "https://app.example.co", "https://app.example.comx",
               "*", ""]


@pytest.mark.parametrize("origin", BAD_ORIGINS)
def test_other_origins_get_no_cors_headers_at_all(api, users, origin):
    session = users.signed_in()
    responses = [
        api.get(ME, token=session["token"], headers={"Origin": origin}),
        api.get("/healthz", headers={"Origin": origin}),
        api.post(LOGIN, json=login_body(), headers={"Origin": origin}),
        preflight(api, ME, "PATCH", origin=origin),
        preflight(api, LOGIN, origin=origin),
    ]
    for response in responses:
        assert cors_headers(response) == {}, (origin, response.status)
        assert response.status != 500


@pytest.mark.parametrize("method, request_headers", [
    ("TRACE", "content-type"), ("CONNECT", None), ("TRACK", None), ("DELETE", "authorization"),
    ("PATCH", "authorization, x-evil"), ("PATCH", "cookie"), ("PATCH", "x-forwarded-for"), ("PATCH", "*"),
    ("patch", None),
])
def test_preflight_for_disallowed_method_or_header_is_not_granted(api, method, request_headers):
    response = preflight(api, ME, method, request_headers=request_headers)
    assert response.status < 500
    assert cors_headers(response) == {}
    assert response.headers["x-content-type-options"] == "nosniff"


def test_plain_options_lists_methods_without_cors_or_auth(api):
    response = api.request("OPTIONS", ME)
    assert response.status == 204
    assert "TRACE" not in response.headers["allow"]
    assert cors_headers(response) == {}


def test_never_a_wildcard_origin(api):
    for response in (preflight(api, ME, "PATCH"), api.get("/healthz", headers={"Origin": APP}),
                     api.get("/nope", headers={"Origin": APP})):
        assert response.headers.get("access-control-allow-origin") == APP
        assert "*" not in response.headers.get("access-control-allow-headers", "")


def test_several_configured_origins_each_get_their_own(build_api):
    with built(build_api, CORS_ORIGINS="https://a.example, https://b.example:8443") as client:
        for origin in ("https://a.example", "https://b.example:8443"):
            assert client.get("/healthz", headers={"Origin": origin}).headers[
                "access-control-allow-origin"] == origin
        assert cors_headers(client.get("/healthz", headers={"Origin": "https://b.example"})) == {}
        assert cors_headers(client.get("/healthz", headers={"Origin": APP})) == {}


def test_no_configured_origins_means_no_cors(build_api):
    with built(build_api, CORS_ORIGINS="") as client:
        assert cors_headers(client.get("/healthz", headers={"Origin": APP})) == {}
        assert cors_headers(preflight(client, ME, "PATCH")) == {}
