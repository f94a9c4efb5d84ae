"""Faults against real server processes (the Procfile's command, two workers) on a private
PostgreSQL that these tests may stop and start: the database going away under load, SIGTERM
during load, and a worker killed with SIGKILL.

Every wait is bounded, every request has a timeout, and everything listens on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from tests.realserver import HOST, PrivatePostgres, RealServer, requires_postgres_binaries

pytestmark = requires_postgres_binaries

PASSWORD = "correct horse battery staple"
ACHIEVEMENTS = "/api/v1/achievements/"
GRACE_PERIOD = 30.0  # Heroku sends SIGKILL this long after SIGTERM
# What a problem document must never contain: traces, SQL drivers, file paths.
LEAKS = ("traceback", "asyncpg", "tortoise", "postgres", 'file "', "/work", ".py", "errno")


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL of this module's own, migrated by the Procfile's release command."""
    with PrivatePostgres() as pg:
        pg.migrate()
        yield pg


@pytest.fixture
def running_postgres(postgres):
    """The module's PostgreSQL, running again after the test whatever happened in it."""
    yield postgres
    if not postgres.is_running():
        postgres.start()


def query(pg: PrivatePostgres, sql: str, *args):
    async def run():
        conn = await asyncpg.connect(pg.url())
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def sign_up(server: RealServer, *, email: str | None = None) -> dict:
    email = email or f"student-{uuid.uuid4().hex[:12]}@example.org"
    with server.client() as client:
        registered = client.post("/api/v1/auth/register",
                                 json={"email": email, "password": PASSWORD, "full_name": "Fault Tester"})
        assert registered.status_code == 201, registered.text
        login = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
    return {"email": email, "id": registered.json()["id"], "token": login.json()["access_token"]}


def bearer(user: dict) -> dict:
    return {"Authorization": f"Bearer {user['token']}"}


def new_achievement(label: str) -> dict:
    return {"title": f"Regional olympiad {label}", "type": "olympiad", "date": "2026-03-14"}


# --- a load generator -------------------------------------------------------------------------

@dataclass
class Outcome:
    kind: str
    started: float
    finished: float
    status: int | None = None
    error: str | None = None
    headers: httpx.Headers | None = None
    text: str = ""

    @property
    def elapsed(self) -> float:
        return self.finished - self.started


Step = Callable[[httpx.Client, int], tuple[str, httpx.Response]]


class Load:
    """``threads`` clients (keep-alive, each on its own thread) repeating ``step`` until stopped."""

    def __init__(self, server: RealServer, step: Step, *, threads: int, pause: float = 0.005,
                 timeout: float = 10.0) -> None:
        self.server, self.step, self.pause, self.timeout = server, step, pause, timeout
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]

    def _run(self, worker: int) -> None:
        n = 0
        with self.server.client(timeout=self.timeout) as client:
            while not self._stop.is_set():
                n += 1
                started = time.monotonic()
                try:
                    kind, response = self.step(client, worker * 1_000_000 + n)
                    outcome = Outcome(kind, started, time.monotonic(), status=response.status_code,
                                      headers=response.headers, text=response.text)
                except httpx.HTTPError as exc:
                    outcome = Outcome("?", started, time.monotonic(), error=type(exc).__name__)
                with self._lock:
                    self.outcomes.append(outcome)
                time.sleep(self.pause)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)
        assert not any(thread.is_alive() for thread in self._threads), "a client is stuck on a request"

    def since(self, moment: float) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if o.started >= moment]

    def created_ids(self) -> list[str]:
        with self._lock:
            return [json.loads(o.text)["id"] for o in self.outcomes if o.kind == "create" and o.status == 201]


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False


def fresh_get(server: RealServer, path: str) -> httpx.Response:
    """One request on a new connection, so the kernel may hand it to any worker."""
    return httpx.get(server.url(path), headers={"Connection": "close"}, timeout=10.0)


def assert_problem(outcome_or_response, status: int) -> None:
    headers = outcome_or_response.headers
    text = outcome_or_response.text
    code = getattr(outcome_or_response, "status", None) or outcome_or_response.status_code
    assert code == status
    assert headers["content-type"].startswith("application/problem+json"), headers
    body = json.loads(text)
    assert body["status"] == status and body["title"] and body["detail"]
    assert body["request_id"] and body["request_id"] == headers["x-request-id"]
    assert not [leak for leak in LEAKS if leak in text.lower()], text


# --- (a) the database goes away under load and comes back -------------------------------------

def test_database_outage_under_load_answers_503_and_recovers_without_restart(running_postgres):
    pg = running_postgres
    with RealServer(pg.url(), workers=2, name="faults-outage") as server:
        user = sign_up(server)
        workers_before = server.worker_pids()
        assert len(workers_before) == 2

        def step(client: httpx.Client, n: int) -> tuple[str, httpx.Response]:
            if n % 3 == 0:
                return "healthz", client.get("/healthz")
            if n % 3 == 1:
                return "create", client.post(ACHIEVEMENTS, json=new_achievement(f"#{n}"), headers=bearer(user))
            return "list", client.get(ACHIEVEMENTS + "?limit=5", headers=bearer(user))

        with Load(server, step, threads=6) as load:
            time.sleep(1.0)
            assert {o.status for o in load.outcomes} >= {200, 201}, "no traffic before the outage"

            pg.stop("fast")  # every client connection is cut; the socket disappears
            down = time.monotonic()
            time.sleep(1.5)
            probes = [fresh_get(server, "/readyz") for _ in range(4)]
            for probe in probes:
                assert_problem(probe, 503)
                assert probe.headers["retry-after"]
            assert [fresh_get(server, "/healthz").status_code for _ in range(3)] == [200] * 3
            during = load.since(down + 0.5)

            pg.start()
            back = time.monotonic()
            assert wait_until(lambda: all(fresh_get(server, "/readyz").status_code == 200 for _ in range(4)),
                              timeout=15), "/readyz did not recover"
            ready = time.monotonic()
            time.sleep(1.5)
        after = [o for o in load.since(ready + 0.5) if o.finished <= time.monotonic()]

        outcomes = load.outcomes
        assert not [o for o in outcomes if o.error], Counter(o.error for o in outcomes if o.error)
        assert {o.status for o in outcomes} <= {200, 201, 503}, Counter(o.status for o in outcomes)
        slowest = max(o.elapsed for o in outcomes)
        assert slowest < 5.0, f"a request took {slowest:.1f}s"
        # During the outage the database-backed requests fail fast with a problem document,
        # and liveness never depends on the database.
        assert [o for o in during if o.kind != "healthz"], "no database request ran during the outage"
        assert {o.status for o in during if o.kind != "healthz"} == {503}
        for outcome in (o for o in outcomes if o.status == 503):
            assert_problem(outcome, 503)
            assert outcome.headers["retry-after"]
        assert {o.status for o in outcomes if o.kind == "healthz"} == {200}
        # Back to normal, in both workers, with no restart of anything.
        assert after and {o.status for o in after} <= {200, 201}, Counter(o.status for o in after)
        assert server.process.poll() is None
        assert server.worker_pids() == workers_before
        assert not server.log_events("http.unhandled"), "a 500 was logged"

        with server.client() as client:
            created = client.post(ACHIEVEMENTS, json=new_achievement("after the outage"), headers=bearer(user))
            assert created.status_code == 201, created.text
            location, etag = created.headers["location"], created.headers["etag"]
            patched = client.patch(location, json={"description": "recovered"},
                                   headers={**bearer(user), "If-Match": etag})
            assert patched.status_code == 200 and patched.json()["description"] == "recovered"
            assert client.get(location, headers=bearer(user)).status_code == 200
            assert client.delete(location, headers=bearer(user)).status_code == 204
            login = client.post("/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD})
            assert login.status_code == 200

    # Every creation acknowledged with 201, before or after the outage, is stored.
    acknowledged = load.created_ids()
    stored = query(pg, "SELECT id::text FROM achievements WHERE id = ANY($1::uuid[])", acknowledged)
    assert len(stored) == len(acknowledged) > 0
    print(f"\noutage: {len(outcomes)} requests, {sum(o.status == 503 for o in outcomes)} answered 503, "
          f"slowest {slowest * 1000:.0f} ms, ready {ready - back:.2f}s after PostgreSQL was back")


# --- (b) SIGTERM during load ------------------------------------------------------------------

def requests_all_read(port: int, connections: int) -> bool:
    """Every byte the clients sent to ``port`` has been read by the server: nothing waits in
    a send queue on the client side or a receive queue on the server side (/proc/net/tcp)."""
    server_side = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state = fields[1], fields[2], fields[3]
        unsent, unread = (int(n, 16) for n in fields[4].split(":"))
        if state != "01":  # ESTABLISHED
            continue
        if int(local.rsplit(":", 1)[1], 16) == port:
            server_side += 1
            if unread:
                return False
        elif int(remote.rsplit(":", 1)[1], 16) == port and unsent:
            return False
    return server_side >= connections


def connection_refused(port: int) -> bool | None:
    """True when a new connection is refused; False when it is answered; None otherwise."""
    try:
        sock = socket.create_connection((HOST, port), timeout=1.0)
    except ConnectionRefusedError:
        return True
    with sock:
        sock.settimeout(2.0)
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            reply = sock.recv(64)
        except OSError:
            return None  # accepted and then dropped: neither refused nor served
    return False if reply.startswith(b"HTTP/1.1 ") else None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/net/tcp")
@pytest.mark.parametrize("target", ["every-process", "manager-only"])
def test_sigterm_lets_in_flight_requests_finish_refuses_new_connections_and_exits_in_time(
        running_postgres, target):
    pg = running_postgres
    logins, items = 6, 5000
    server = RealServer(pg.url(), workers=2, name=f"faults-sigterm-{target}", env={"BCRYPT_ROUNDS": "12"})
    with server:
        user = sign_up(server)
        workers = server.worker_pids()
        assert len(workers) == 2
        # Slow requests in flight: bcrypt at cost 12 (about 0.4 s of CPU each, two cores) and
        # a 5,000-item batch, each on a keep-alive connection a worker has already accepted.
        sent = Counter()

        def mark_sent(_request: httpx.Request) -> None:
            sent["requests"] += 1

        clients = [server.client(timeout=40.0) for _ in range(logins + 1)]
        results: dict[int, tuple[int | str, float, str]] = {}

        def send(index: int, client: httpx.Client) -> None:
            try:
                if index < logins:
                    response = client.post("/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD})
                else:
                    batch = {"items": [new_achievement(f"batch {i:04d}") for i in range(items)]}
                    response = client.post(ACHIEVEMENTS + "batch", json=batch, headers=bearer(user))
                results[index] = (response.status_code, time.monotonic(), response.text)
            except httpx.HTTPError as exc:
                results[index] = (type(exc).__name__, time.monotonic(), "")

        try:
            for client in clients:
                assert client.get("/healthz").status_code == 200
                client.event_hooks["request"] = [mark_sent]
            threads = [threading.Thread(target=send, args=(i, c), daemon=True) for i, c in enumerate(clients)]
            for thread in threads:
                thread.start()
            # Signal once every request has been sent and read by a worker.
            assert wait_until(lambda: sent["requests"] == len(clients), timeout=10, interval=0.01)
            time.sleep(0.2)
            assert wait_until(lambda: requests_all_read(server.port, len(clients)), timeout=15, interval=0.05)
            time.sleep(0.2)
            assert len(results) < len(clients), "everything finished before the signal"

            server.signal(signal.SIGTERM, group=target == "every-process")
            signalled = time.monotonic()
            refused_at = None
            while refused_at is None and time.monotonic() - signalled < 5:
                if connection_refused(server.port):
                    refused_at = time.monotonic()
                else:
                    time.sleep(0.05)
            assert refused_at is not None, "new connections were still accepted after SIGTERM"
            later = [connection_refused(server.port) for _ in range(5)]

            for thread in threads:
                thread.join(GRACE_PERIOD)
            exit_code = server.process.wait(GRACE_PERIOD)
            exited = time.monotonic()
        finally:
            for client in clients:
                client.close()

    statuses = Counter(status for status, _, _ in results.values())
    assert statuses == {200: logins, 201: 1}, statuses
    finished = [moment for _, moment, _ in results.values()]
    assert sum(moment > signalled for moment in finished) >= 3, "too few requests were still in flight"
    # The port refused new connections while the workers were still finishing requests.
    assert refused_at < max(finished)
    assert refused_at - signalled < 1.0
    assert later == [True] * 5, later
    assert exit_code == 0
    assert not [e for e in server.log_events() if e.get("level") == "ERROR"], "the shutdown logged errors"
    assert exited - signalled < GRACE_PERIOD
    assert wait_until(lambda: not any(psutil.pid_exists(pid) for pid in workers), timeout=5)
    # The batch was acknowledged, so it is stored; so is every session a login answered.
    batch_ids = json.loads(results[logins][2])["ids"]
    stored = query(pg, "SELECT count(*) AS n FROM achievements WHERE id = ANY($1::uuid[])", batch_ids)
    assert stored[0]["n"] == items
    print(f"\nSIGTERM to {target}: {sum(m > signalled for m in finished)} of {len(clients)} requests "
          f"finished after the signal, refusing after {(refused_at - signalled) * 1000:.0f} ms, "
          f"exit after {exited - signalled:.2f}s")


# --- (c) a worker killed with SIGKILL ---------------------------------------------------------

def test_killed_worker_is_replaced_and_no_acknowledged_write_is_lost(running_postgres):
    pg = running_postgres
    with RealServer(pg.url(), workers=2, name="faults-sigkill") as server:
        user = sign_up(server)
        workers = server.worker_pids()
        assert len(workers) == 2

        def step(client: httpx.Client, n: int) -> tuple[str, httpx.Response]:
            return "create", client.post(ACHIEVEMENTS, json=new_achievement(f"#{n}"), headers=bearer(user))

        threads = 4
        with Load(server, step, threads=threads, pause=0.01) as load:
            time.sleep(1.0)
            victim = workers[0]
            psutil.Process(victim).kill()
            killed = time.monotonic()
            replaced = wait_until(lambda: len(pids := server.worker_pids()) == 2 and victim not in pids
                                  and set(pids) <= server.ready_pids(), timeout=30)
            assert replaced, f"the killed worker was not replaced: {server.worker_pids()}"
            replacement = (set(server.worker_pids()) - set(workers)).pop()
            back = time.monotonic()
            time.sleep(1.0)

        served_meanwhile = [o for o in load.since(killed) if o.status == 201 and o.finished < back]
        assert served_meanwhile, "nothing was answered while the worker was being replaced"
        errors = [o for o in load.outcomes if o.error]
        # Only the requests the dead worker held fail, and only at the transport level.
        assert len(errors) <= threads, Counter(o.error for o in errors)
        assert {o.status for o in load.outcomes if not o.error} == {201}
        assert server.process.poll() is None
        assert [e for e in server.log_events("worker.replaced") if e.get("exitcode") == -signal.SIGKILL]

        # The new worker takes its share of connections.
        def replacement_served() -> bool:
            fresh_get(server, "/healthz")
            return any(e.get("pid") == replacement for e in server.log_events("http.request"))

        assert wait_until(replacement_served, timeout=20, interval=0.02)

    # Nothing acknowledged is lost: every 201 id is in the database.
    acknowledged = load.created_ids()
    stored = query(pg, "SELECT id::text FROM achievements WHERE id = ANY($1::uuid[])", acknowledged)
    assert {row["id"] for row in stored} == set(acknowledged)
    print(f"\nSIGKILL: {len(acknowledged)} creations acknowledged, {len(errors)} dropped at the transport, "
          f"replacement ready {back - killed:.2f}s after the kill")


def test_request_lines_still_waiting_in_the_log_batch_are_written_when_the_server_stops(running_postgres):
    """INFO lines leave in batches (service.platform.logs): a SIGTERM right after a request must
    not lose its line."""
    server = RealServer(running_postgres.url(), workers=1, name="faults-log-flush")
    with server:
        with server.client() as client:
            ids = [client.get("/healthz").headers["x-request-id"] for _ in range(3)]
        server.stop()
        logged = {e["request_id"] for e in server.log_events("http.request")}
    assert set(ids) <= logged


def test_an_edit_and_a_review_need_no_second_connection_while_their_transaction_holds_one(running_postgres):
    """The checks of an edit (type, level) and of a review (the curator's scope, SQL on the hot
    path's fetch) run on the use case's own transaction. Asked on another pooled connection, a
    write held its connection while it waited for one more: with DB_POOL_MAX=1 a single review
    hung (behind PgBouncer, with few server connections, several did)."""
    server = RealServer(running_postgres.url(), workers=1, name="faults-one-connection", env={"DB_POOL_MAX": "1"})
    with server:
        student, curator = sign_up(server), sign_up(server)
        query(running_postgres, "UPDATE users SET role = 'curator' WHERE id = $1", uuid.UUID(curator["id"]))
        query(running_postgres, "INSERT INTO curator_scopes (user_id, org_unit_id) "
                                "SELECT $1, id FROM org_units WHERE parent_id IS NULL", uuid.UUID(curator["id"]))
        with server.client(timeout=15.0) as client:
            created = client.post(ACHIEVEMENTS, json=new_achievement("one connection"), headers=bearer(student))
            assert created.status_code == 201, created.text
            path = f"{ACHIEVEMENTS}{created.json()['id']}"
            edited = client.patch(path, json={"type": "publication", "level": "regional"},
                                  headers={**bearer(student), "If-Match": created.headers["etag"]})
            assert edited.status_code == 200, edited.text
            assert edited.json()["category"] == "scientific" and edited.json()["level"] == "regional"
            seen = client.get(path, headers=bearer(curator))
            assert seen.status_code == 200, seen.text
            reviewed = client.post(f"{path}/review", json={"decision": "approved"},
                                   headers={**bearer(curator), "If-Match": seen.headers["etag"]})
        assert reviewed.status_code == 200, reviewed.text
        assert reviewed.json()["status"] == "approved"
