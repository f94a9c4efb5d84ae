"""Scale-out: the service with two workers behind Debian's pgbouncer in transaction pooling
mode, in front of the test PostgreSQL. Server connections are shared between transactions
of different clients, so nothing may rely on session state, prepared statements included:
hence DB_STATEMENT_CACHE=false.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import uuid

import asyncpg
import httpx
import pytest

from tests.realserver import (
    PgBouncer,
    PrivatePostgres,
    RealServer,
    requires_pgbouncer,
    requires_postgres_binaries,
    reset_database,
)

pytestmark = requires_pgbouncer

PASSWORD = "correct horse battery staple"
ACHIEVEMENTS = "/api/v1/achievements/"
POOL_SIZE = 3  # server connections: fewer than the clients' 2 workers x DB_POOL_MAX below
DB_POOL_MAX = 4


@pytest.fixture(scope="module")
def bouncer(database_url):
    with PgBouncer(database_url, pool_mode="transaction", pool_size=POOL_SIZE) as pgbouncer:
        yield pgbouncer
    reset_database(database_url)


def sql(database_url: str, query: str, *args):
    async def run():
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def sign_in(client: httpx.Client, *, role: str | None = None, database_url: str | None = None) -> dict:
    email = f"{role or 'student'}-{uuid.uuid4().hex[:12]}@example.org"
    registered = client.post("/api/v1/auth/register",
                             json={"email": email, "password": PASSWORD, "full_name": "Bouncer User"})
    assert registered.status_code == 201, registered.text
    if role:
        sql(database_url, "UPDATE users SET role = $2 WHERE id = $1", uuid.UUID(registered.json()["id"]), role)
    if role == "curator":  # responsible for the whole university
        sql(database_url, "INSERT INTO curator_scopes (user_id, org_unit_id) SELECT $1, id FROM org_units "
            "WHERE parent_id IS NULL", uuid.UUID(registered.json()["id"]))
    login = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def crud_flow(server: RealServer, curator: dict, n: int) -> None:
    """register, login, create, read, list, patch with If-Match, review, delete, batch."""
    with server.client() as client:
        student = sign_in(client)
        body = {"title": f"Olympiad through the pooler #{n}", "type": "olympiad", "date": "2026-03-14"}
        created = client.post(ACHIEVEMENTS, json=body, headers=student)
        assert created.status_code == 201, created.text
        location, etag = created.headers["location"], created.headers["etag"]
        assert client.post(ACHIEVEMENTS, json=body, headers=student).status_code == 409

        assert client.get(location, headers=student).status_code == 200
        listed = client.get(ACHIEVEMENTS, headers=student)
        assert listed.status_code == 200 and [a["id"] for a in listed.json()["items"]] == [created.json()["id"]]

        patched = client.patch(location, json={"description": "edited"}, headers={**student, "If-Match": etag})
        assert patched.status_code == 200, patched.text
        stale = client.patch(location, json={"description": "again"}, headers={**student, "If-Match": etag})
        assert stale.status_code == 412

        seen = client.get(location, headers=curator).headers["etag"]
        reviewed = client.post(f"{location}/review", json={"decision": "approved"},
                               headers={**curator, "If-Match": seen})
        assert reviewed.status_code == 200 and reviewed.json()["status"] == "approved", reviewed.text

        items = [{"title": f"Certificate {i}", "type": "certificate", "date": "2025-01-01"} for i in range(200)]
        batch = client.post(ACHIEVEMENTS + "batch", json={"items": items}, headers=student)
        assert batch.status_code == 201 and batch.json()["created"] == 200, batch.text
        page = client.get(ACHIEVEMENTS + "?limit=100&type=certificate", headers=student)
        assert page.status_code == 200 and page.json()["total"] == 200 and page.json()["next_cursor"]
        second = client.get(ACHIEVEMENTS + f"?limit=100&type=certificate&cursor={page.json()['next_cursor']}",
                            headers=student)
        assert second.status_code == 200 and len(second.json()["items"]) == 100

        assert client.delete(location, headers=student).status_code == 204
        assert client.get(location, headers=student).status_code == 404


def test_crud_flow_through_pgbouncer_in_transaction_mode(bouncer, database_url):
    env = {"DB_STATEMENT_CACHE": "false", "DB_POOL_MAX": str(DB_POOL_MAX)}
    with RealServer(bouncer.url(), workers=2, env=env, name="pgbouncer") as server:
        with server.client() as client:
            curator = sign_in(client, role="curator", database_url=database_url)
        # Several flows at once, so both workers open several client connections that
        # pgbouncer multiplexes over its few server connections.
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            for future in [pool.submit(crud_flow, server, curator, n) for n in range(6)]:
                future.result(timeout=120)
        assert [fresh.status_code for fresh in
                (httpx.get(server.url("/readyz"), headers={"Connection": "close"}) for _ in range(4))] == [200] * 4
        assert not server.log_events("http.unhandled")
        assert not server.log_events("db.unavailable")

    stats = {row["database"]: row for row in bouncer.show("STATS")}
    assert int(stats[bouncer.target.database]["total_xact_count"]) > 100  # it all went through pgbouncer
    servers = [row for row in bouncer.show("SERVERS") if row["database"] == bouncer.target.database]
    assert 0 < len(servers) <= POOL_SIZE
    audit = sql(database_url, "SELECT count(*) AS n FROM audit_events WHERE action = 'achievement.reviewed'")
    assert audit[0]["n"] == 6


def test_statement_cache_breaks_behind_transaction_pooling(database_url):
    """Why DB_STATEMENT_CACHE=false: asyncpg names its prepared statements per client
    connection (__asyncpg_stmt_1__, ...) and keeps them for reuse, while pgbouncer hands one
    server connection to the transactions of every client. With one server connection, the
    first statement of the second worker's connection collides with the first worker's."""
    with PgBouncer(database_url, pool_mode="transaction", pool_size=1) as pgbouncer, \
            RealServer(pgbouncer.url(), workers=2, name="pgbouncer-cache") as server:
        statuses = []
        for _ in range(200):  # new connections until both workers have answered
            statuses.append(httpx.get(server.url("/readyz"), headers={"Connection": "close"}).status_code)
            if len({e["pid"] for e in server.log_events("http.request") if e["path"] == "/readyz"}) == 2:
                break
    assert statuses[0] == 200, statuses
    assert 503 in statuses, statuses


@requires_postgres_binaries
def test_database_outage_behind_pgbouncer_answers_503_in_time_and_recovers():
    """A pooler hides an outage from its clients: their queries wait for a server connection
    (query_wait_timeout, 120 s by default) and, once PostgreSQL is back, logins stay refused
    for server_login_retry (15 s). With both short, as the README advises, the service
    answers 503 within seconds and is back within a second or two."""
    wait, retry = 2, 1
    with PrivatePostgres() as pg:
        pg.migrate()
        with PgBouncer(pg.url(), pool_size=2, query_wait_timeout=wait, server_login_retry=retry) as pgbouncer, \
                RealServer(pgbouncer.url(), workers=2, env={"DB_STATEMENT_CACHE": "false"},
                           name="pgbouncer-outage") as server, server.client() as client:
            student = sign_in(client)
            body = {"title": "Before the outage", "type": "olympiad", "date": "2026-03-14"}
            assert client.post(ACHIEVEMENTS, json=body, headers=student).status_code == 201

            pg.stop("fast")
            for _ in range(3):
                started = time.monotonic()
                response = client.get(ACHIEVEMENTS, headers=student)
                assert response.status_code == 503, response.text
                assert response.headers["content-type"].startswith("application/problem+json")
                assert time.monotonic() - started < wait + 3
            assert client.get("/healthz").status_code == 200

            pg.start()
            back = time.monotonic()
            while client.get("/readyz").status_code != 200:
                assert time.monotonic() - back < retry + 10, "no recovery through pgbouncer"
                time.sleep(0.2)
            listed = client.get(ACHIEVEMENTS, headers=student)
            assert listed.status_code == 200 and listed.json()["total"] == 1
            body["title"] = "After the outage"
            assert client.post(ACHIEVEMENTS, json=body, headers=student).status_code == 201
            assert not server.log_events("http.unhandled")
