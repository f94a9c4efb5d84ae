"""The edge against a real server process (the Procfile's command): raw sockets for
oversized, chunked and lying bodies, CORS over the wire, and rate limits shared by two
workers through a real redis-server, which then goes away.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid

import asyncpg
import httpx
import pytest

from tests.realserver import BASE_ENV, HOST, real_server_fixture, requires_redis
from tests.test_edge import BAD_ORIGINS, CORS_REQUEST_HEADERS, _batch_route_declared

KIB = 1024
MIB = KIB * KIB
LOGIN = "/api/v1/auth/login"
REGISTER = "/api/v1/auth/register"
BATCH = "/api/v1/achievements/batch"
APP = BASE_ENV["CORS_ORIGINS"]
PASSWORD = "correct horse battery staple"
BODY_IDLE_TIMEOUT = 2  # SANIC_REQUEST_TIMEOUT of the module's server: how long a stalled body may wait

BODY_TOTAL_TIMEOUT = 3  # REQUEST_BODY_TIMEOUT: how long a whole body may take, however it trickles
server = real_server_fixture(SANIC_REQUEST_TIMEOUT=str(BODY_IDLE_TIMEOUT), REQUEST_BODY_TIMEOUT=str(BODY_TOTAL_TIMEOUT))
shared_server = real_server_fixture(workers=2, redis=True, RATE_LIMIT_LOGIN_IP="5/minute")
outage_server = real_server_fixture(workers=1, redis=True, scope="function", RATE_LIMIT_LOGIN_IP="3/minute")


# --- a tiny raw HTTP/1.1 client -------------------------------------------------------------------

class Reply:
    def __init__(self, raw: bytes, closed: bool, elapsed: float):
        self.raw, self.closed, self.elapsed = raw, closed, elapsed
        head, _, self.rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1]) if lines[0].startswith("HTTP/1.1 ") else None
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        length = int(self.headers.get("content-length", 0))
        self.body, self.after = self.rest[:length], self.rest[length:]

    def json(self):
        return json.loads(self.body)

    def statuses(self) -> list[int]:
        """Status codes of every response on the connection."""
        return [int(part[:3]) for part in self.raw.split(b"HTTP/1.1 ")[1:] if part[:3].isdigit()]


def exchange(port: int, *parts: bytes, pause: float = 0.0, timeout: float = 10.0) -> Reply:
    """Send ``parts`` (with ``pause`` between them) and read until the server closes or is quiet."""
    started = time.monotonic()
    sock = socket.create_connection((HOST, port), timeout=timeout)
    data, closed = b"", False
    try:
        for index, part in enumerate(parts):
            if index and pause:
                time.sleep(pause)
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server has answered and closed: read what it said
        sock.settimeout(0.5 if b"Connection: keep-alive" in parts[0] else timeout)
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            data += chunk
    finally:
        sock.close()
    return Reply(data, closed, time.monotonic() - started)


def head(method: str, path: str, *lines: str) -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n" + "".join(f"{line}\r\n" for line in lines)
            + "\r\n").encode()


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def assert_healthy(server) -> None:
    for _ in range(3):
        response = httpx.get(server.url("/healthz"), timeout=5)
        assert response.status_code == 200 and response.json() == {"status": "ok"}


def assert_problem(reply: Reply, status: int) -> dict:
    assert reply.status == status, reply.raw[:600]
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.headers["x-content-type-options"] == "nosniff"
    body = reply.json()
    assert body["status"] == status and body["request_id"] == reply.headers["x-request-id"]
    return body


def sign_in(server) -> str:
    email = f"real-{uuid.uuid4().hex[:10]}@example.org"
    with server.client() as client:
        registered = client.post(REGISTER, json={"email": email, "password": PASSWORD, "full_name": "Real"})
        assert registered.status_code == 201
        response = client.post(LOGIN, json={"email": email, "password": PASSWORD})
        assert response.status_code == 200
        return response.json()["access_token"]


# --- body size ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [LOGIN, REGISTER])
@pytest.mark.parametrize("expect", [False, True])
def test_oversized_content_length_refused_before_body_is_sent(server, path, expect):
    lines = ["Content-Type: application/json", f"Content-Length: {64 * KIB + 1}"]
    if expect:
        lines.append("Expect: 100-continue")
    reply = exchange(server.port, head("POST", path, *lines))  # headers only: no body ever sent
    assert reply.elapsed < 2
    assert b"100 Continue" not in reply.raw
    body = assert_problem(reply, 413)
    assert body["detail"] == "The request body is too large."
    assert reply.headers["connection"] == "close" and reply.closed
    assert_healthy(server)


def test_oversized_body_sent_eagerly_gets_413_and_close(server):
    body = b'{"email": "' + b"a" * (100 * KIB) + b'"}'
    reply = exchange(server.port, head("POST", LOGIN, "Content-Type: application/json",
                                       f"Content-Length: {len(body)}") + body)
    assert_problem(reply, 413)
    assert reply.closed
    assert_healthy(server)


def test_chunked_body_growing_past_the_limit_is_413(server):
    pieces = [b'{"email": "' + b"a" * (16 * KIB)] + [b"a" * (16 * KIB)] * 5 + [b'"}']
    reply = exchange(server.port, head("POST", LOGIN, "Content-Type: application/json",
                                       "Transfer-Encoding: chunked"), chunked(*pieces))
    assert_problem(reply, 413)
    assert reply.closed
    assert_healthy(server)


def test_chunked_body_under_the_limit_is_read(server):
    pieces = [b'{"email": "nobody@example.org", ', b'"password": "wrong password"}']
    reply = exchange(server.port, head("POST", LOGIN, "Content-Type: application/json",
                                       "Transfer-Encoding: chunked", "Connection: close"), chunked(*pieces))
    assert_problem(reply, 401)


def test_malformed_chunked_encoding_is_400(server):
    reply = exchange(server.port, head("POST", LOGIN, "Content-Type: application/json",
                                       "Transfer-Encoding: chunked"), b"zz\r\n{}\r\n0\r\n\r\n")
    assert_problem(reply, 400)
    assert reply.closed
    assert_healthy(server)


def test_content_length_and_chunked_together_is_400(server):
    reply = exchange(server.port, head("POST", LOGIN, "Content-Type: application/json", "Content-Length: 2",
                                       "Transfer-Encoding: chunked"), b"2\r\n{}\r\n0\r\n\r\n")
    assert reply.status == 400 and reply.closed
    assert_healthy(server)


def test_body_announced_bigger_than_sent_gets_408_and_close(server):
    reply = exchange(server.port, head("POST", LOGIN, "Content-Type: application/json", "Content-Length: 1000"),
                     b'{"email": ')
    body = assert_problem(reply, 408)
    assert body["detail"] == "The request took too long to arrive."
    assert reply.closed
    assert BODY_IDLE_TIMEOUT - 0.5 <= reply.elapsed < BODY_IDLE_TIMEOUT + 3
    assert_healthy(server)


def test_body_announced_smaller_than_sent_is_answered_then_rest_refused(server):
    sent = b'{"email": "nobody@example.org", "password": "wrong password"}'
    reply = exchange(server.port, head("POST", LOGIN, "Content-Type: application/json", "Content-Length: 10"),
                     sent + b"\r\n\r\n")
    statuses = reply.statuses()
    assert statuses[0] == 400  # the first 10 bytes are not a JSON document
    assert statuses[1:] == [400]  # what follows is not a request either
    assert reply.closed
    assert_healthy(server)


def test_body_trickled_slowly_within_the_idle_timeout_is_read(server):
    body = b'{"email": "nobody@example.org", "password": "wrong password"}'
    parts = [head("POST", LOGIN, "Content-Type: application/json", f"Content-Length: {len(body)}",
                  "Connection: close"), body[:20], body[20:40], body[40:]]
    reply = exchange(server.port, *parts, pause=0.3)
    assert_problem(reply, 401)


def test_body_dripping_past_the_total_deadline_gets_408(server):
    """A byte every half second never trips the idle timeout, but the whole body must arrive
    within REQUEST_BODY_TIMEOUT."""
    body = b'{"email": "nobody@example.org", "password": "wrong password"}'
    parts = [head("POST", LOGIN, "Content-Type: application/json", f"Content-Length: {len(body)}")]
    parts += [body[i:i + 1] for i in range(len(body))]
    reply = exchange(server.port, *parts, pause=0.5, timeout=15)
    assert_problem(reply, 408)
    assert reply.closed
    assert BODY_TOTAL_TIMEOUT - 0.5 <= reply.elapsed < BODY_TOTAL_TIMEOUT + 3
    assert_healthy(server)


@pytest.mark.parametrize("method, path", [("GET", "/api/v1/auth/me"), ("POST", "/api/v1/auth/logout"),
                                          ("POST", BATCH)])
def test_non_utf8_authorization_bytes_are_401_over_the_wire(server, method, path):
    for value in (b"Bearer \xff", b"Bearer \xc3\x28.\xa0\xa1.\xe2\x28\xa1", b"\xff\xfe"):
        extra = b"Content-Type: application/json\r\nContent-Length: 100000\r\n" if path == BATCH else b""
        request = (f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n".encode()
                   + b"Authorization: " + value + b"\r\n" + extra + b"\r\n")
        reply = exchange(server.port, request)
        assert_problem(reply, 401)
    assert_healthy(server)


def test_many_abandoned_connections_leave_the_worker_healthy(server):
    sockets = []
    try:
        for _ in range(30):
            sock = socket.create_connection((HOST, server.port), timeout=5)
            sock.sendall(head("POST", LOGIN, "Content-Type: application/json", "Content-Length: 5000") + b"{")
            sockets.append(sock)
        started = time.monotonic()
        assert_healthy(server)
        assert time.monotonic() - started < 2
    finally:
        for sock in sockets:
            sock.close()
    assert_healthy(server)


batch_route = pytest.mark.skipif(not _batch_route_declared(),
                                 reason="POST /api/v1/achievements/batch is not registered yet")


@batch_route
def test_batch_over_8_mib_is_413_before_the_body(server):
    token = sign_in(server)
    lines = ["Content-Type: application/json", f"Authorization: Bearer {token}", f"Content-Length: {8 * MIB + 1}"]
    reply = exchange(server.port, head("POST", BATCH, *lines))
    assert_problem(reply, 413)
    assert reply.elapsed < 2
    assert_healthy(server)


@batch_route
def test_batch_large_body_needs_a_valid_token_before_it_is_read(server):
    reply = exchange(server.port, head("POST", BATCH, "Content-Type: application/json",
                                       f"Content-Length: {4 * MIB}"))
    assert_problem(reply, 401)
    assert reply.headers["www-authenticate"] == "Bearer"
    assert reply.elapsed < 2 and reply.closed


@batch_route
def test_batch_under_8_mib_is_read(server):
    token = sign_in(server)
    items = [{"title": "t" * 150, "type": "no-such-type", "date": "2020-01-01"}] * 20_000  # ~4 MiB
    response = httpx.post(server.url(BATCH), content=json.dumps({"items": items}).encode(),
                          headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
                          timeout=30)
    assert response.status_code == 422  # read and validated (5000 items at most), not 413


# --- CORS over the wire ---------------------------------------------------------------------------

def test_preflight_over_the_wire(server):
    response = httpx.options(server.url("/api/v1/auth/me"), headers={
        "Origin": APP, "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": CORS_REQUEST_HEADERS}, timeout=5)
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "PATCH" in response.headers["access-control-allow-methods"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"].startswith("default-src 'none'")


@pytest.mark.parametrize("origin", BAD_ORIGINS[:6])
def test_foreign_origins_get_no_cors_over_the_wire(server, origin):
    response = httpx.options(server.url("/api/v1/auth/me"), headers={
        "Origin": origin, "Access-Control-Request-Method": "GET"}, timeout=5)
    assert not [k for k in response.headers if k.lower().startswith("access-control-")]


def test_origin_followed_by_a_newline_is_not_reflected(server):
    # The header value is the origin plus a bare LF; a "$"-anchored pattern would accept it
    # and echo the LF into the response's header block.
    reply = exchange(server.port, head("GET", "/healthz", f"Origin: {APP}\n", "Connection: close"))
    assert reply.status in (200, 400)
    assert b"access-control-allow-origin" not in reply.raw.lower()
    assert reply.closed


# --- rate limits shared by two workers through Redis ---------------------------------------------

def audit_ips(database_url: str, action: str) -> set[str]:
    async def query():
        conn = await asyncpg.connect(database_url)
        try:
            return {row["ip"] for row in await conn.fetch("SELECT ip FROM audit_events WHERE action = $1", action)}
        finally:
            await conn.close()

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(query())
    finally:
        loop.close()


@requires_redis
def test_two_workers_share_the_login_limit_through_redis(shared_server):
    statuses, replies = [], []
    for i in range(8):
        # a fresh connection each time (so the kernel spreads them over both workers) and a
        # forged X-Forwarded-For each time (which must not open a new bucket)
        with httpx.Client(base_url=shared_server.base_url, timeout=10) as client:
            response = client.post(LOGIN, json={"email": f"ghost{i}@example.org", "password": "wrong password"},
                                   headers={"X-Forwarded-For": f"198.51.100.{i}"})
        statuses.append(response.status_code)
        replies.append(response)
    assert statuses == [401] * 5 + [429] * 3
    limited = replies[5]
    assert limited.headers["content-type"] == "application/problem+json"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.headers["ratelimit-limit"] == "5" and limited.headers["ratelimit-remaining"] == "0"
    assert replies[0].headers["ratelimit-remaining"] == "4"

    deadline = time.monotonic() + 5
    while True:
        logins = [e for e in shared_server.log_events("http.request") if e["path"] == LOGIN]
        if len(logins) >= 8 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len({e["pid"] for e in logins}) == 2, "both workers should have answered some logins"
    assert {e["ip"] for e in logins} == {"127.0.0.1"}
    assert audit_ips(shared_server.database_url, "auth.login.failed") == {"127.0.0.1"}
    assert shared_server.log_events("ratelimit.store_error") == []


@requires_redis
def test_redis_outage_fails_open_with_a_warning(outage_server):
    with outage_server.client() as client:
        body = {"email": f"fo-{uuid.uuid4().hex[:8]}@example.org", "password": PASSWORD, "full_name": "Fail Open"}
        assert client.post(REGISTER, json=body).status_code == 201
        assert client.post(LOGIN, json={"email": body["email"], "password": PASSWORD}).status_code == 200

        outage_server.redis.stop()

        started = time.monotonic()
        for _ in range(2):
            response = client.post(LOGIN, json={"email": body["email"], "password": PASSWORD})
            assert response.status_code == 200, response.text  # not 500, not 503
        assert client.post(LOGIN, json={"email": body["email"], "password": "wrong password"}).status_code == 401
        token = response.json()["access_token"]
        assert client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert client.get("/healthz").status_code == 200
        assert time.monotonic() - started < 5  # no waiting on the dead store for every request
        # still limited per worker rather than unlimited (3/minute, counted locally since the outage)
        assert client.post(LOGIN, json={"email": body["email"], "password": PASSWORD}).status_code == 429

    deadline = time.monotonic() + 5
    while not outage_server.log_events("ratelimit.store_error") and time.monotonic() < deadline:
        time.sleep(0.1)
    warnings = outage_server.log_events("ratelimit.store_error")
    assert warnings and warnings[0]["level"] == "WARNING"
    assert len(warnings) <= 2  # one per outage and retry window, not one per request
