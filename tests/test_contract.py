"""Schemathesis against a real server process (the Procfile's command), from the COMMITTED
spec openapi/openapi.json: every operation, signed in once as a student and once as an admin,
with schema-valid and schema-violating data (ERR-02, ERR-03).

Checks: not_a_server_error (zero 5xx), status_code_conformance, content_type_conformance,
response_schema_conformance, response_headers_conformance, negative_data_rejection,
positive_data_acceptance (see ``positive_data_accepted`` for the business rules a JSON Schema
cannot state), missing_required_header, unsupported_method, allow_header_conformance and
ignored_auth. Left off: use_after_free and ensure_resource_availability need the stateful
phase, which needs OpenAPI links the spec does not declare (test_achievements.py covers
"deleted is gone"); object_level_authorization needs several peer identities configured
through schemathesis' own auth machinery (test_achievements.py covers BOLA between
students); max_response_time would only measure how busy this machine is.

Bounded: ~25 generated cases per operation and phase, deterministic generation with a fixed
seed (a failure reproduces), no example database, rate limits off.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import http.cookiejar
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import asyncpg
import pytest

from tests.realserver import ROOT, RealServer, real_server_fixture, reset_database

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the dev extra: pip install -e '.[dev]'")

import requests  # noqa: E402  (a dependency of schemathesis)
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.core.failures import Failure  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    allow_header_conformance,
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

SPEC = ROOT / "openapi" / "openapi.json"
PASSWORD = "contract tests pass phrase"
SEED = 20261122
MAX_EXAMPLES = 25
API = "/api/v1"

server = real_server_fixture(
    RATE_LIMIT_LOGIN_IP="0", RATE_LIMIT_LOGIN_ACCOUNT="0", RATE_LIMIT_REGISTER_IP="0", RATE_LIMIT_API_USER="0",
)


# --- the data each run starts from -----------------------------------------------------------------
# Fixed ids, so the (import-time) schemathesis configuration can offer them to generation.

def _fixed_id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://journal.invalid/contract/{name}"))


ACHIEVEMENT_IDS = [_fixed_id(f"achievement/{n}") for n in range(10)]  # GET, PUT, PATCH, review
DELETABLE_IDS = [_fixed_id(f"deletable/{n}") for n in range(6)]  # apart, so DELETE leaves the ones above
STUDENT_ID = _fixed_id("user/student")
TYPE_SLUG = "contract-test-type"  # an admin may rename or deactivate it; no achievement uses it


@dataclass
class World:
    role: str
    email: str
    token: str
    statuses: dict[tuple[str, str], collections.Counter] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter))


def _register(client, role: str) -> dict:
    email = f"contract-{role}-{uuid.uuid4().hex[:8]}@example.org"
    response = client.post(f"{API}/auth/register",
                           json={"email": email, "password": PASSWORD, "full_name": f"Contract {role}"})
    assert response.status_code == 201, response.text
    return response.json()


def _login(client, email: str) -> tuple[str, str]:
    response = client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()["access_token"], response.cookies["refresh_token"]


def _sql(database_url: str, *statements: tuple) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            for statement, *args in statements:
                await conn.execute(statement, *args)
        finally:
            await conn.close()

    asyncio.run(run())


def _seed(server: RealServer, database_url: str, role: str) -> World:
    """A student with achievements under the fixed ids, a spare type, and the signed-in user of
    the run: that student, or an admin (registered, then promoted with SQL)."""
    reset_database(database_url)
    with server.client() as client:
        student = _register(client, "student")
        # No session or achievement refers to the new user yet, so its id can still change.
        _sql(database_url, ("UPDATE users SET id = $2 WHERE id = $1", uuid.UUID(student["id"]), uuid.UUID(STUDENT_ID)))
        token, _ = _login(client, student["email"])
        bearer = {"Authorization": f"Bearer {token}"}
        slugs = [t["slug"] for t in client.get(f"{API}/achievement-types", headers=bearer).json()["items"]]
        renames = []
        for n, fixed in enumerate(ACHIEVEMENT_IDS + DELETABLE_IDS):
            response = client.post(f"{API}/achievements", headers=bearer, json={
                "title": f"Seeded achievement {n}", "type": slugs[n % len(slugs)],
                "date": (dt.date(2020, 1, 1) + dt.timedelta(days=37 * n)).isoformat(),
                "proof_url": "https://example.org/proof.pdf", "description": "Seeded for the contract tests"})
            assert response.status_code == 201, response.text
            renames.append(("UPDATE achievements SET id = $2 WHERE id = $1", uuid.UUID(response.json()["id"]),
                            uuid.UUID(fixed)))
        admin = _register(client, "admin")
        _sql(database_url, *renames, ("UPDATE users SET role = 'admin' WHERE id = $1", uuid.UUID(admin["id"])))
        admin_token, _ = _login(client, admin["email"])
        created = client.post(f"{API}/achievement-types", headers={"Authorization": f"Bearer {admin_token}"},
                              json={"slug": TYPE_SLUG, "name": "Contract test type", "category": "social"})
        assert created.status_code == 201, created.text
    if role == "admin":
        return World(role=role, email=admin["email"], token=admin_token)
    return World(role=role, email=student["email"], token=token)


@pytest.fixture(scope="module", params=["student", "admin"])
def world(request, server, database_url) -> World:
    return _seed(server, database_url, request.param)


def _dates() -> list[str]:
    today = dt.date.today()
    return ["1900-01-01", "1999-12-31", "2024-02-29", (today - dt.timedelta(days=1)).isoformat(), today.isoformat()]


SLUGS = ["olympiad", "competition", "conference", "publication", "grant", "certificate", "exhibition",
         "volunteering"]

CONFIG = schemathesis.Config.from_dict({
    "seed": SEED,
    "request-timeout": 15,
    "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
    "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}, "fuzzing": {"enabled": True},
               "stateful": {"enabled": False}},
    # Known-good values mixed into generation, so the success paths (201, 200, 204) are
    # reached and their responses checked too, not only the refusals.
    "dictionaries": {
        "slugs": {"values": SLUGS},
        "dates": {"values": _dates()},
        "proof_urls": {"values": ["https://example.org/diploma.pdf", "http://olympiad.example.com/results?id=42"]},
        "achievement_ids": {"values": ACHIEVEMENT_IDS},
        "expiries": {"values": [(dt.datetime.now(dt.UTC) + dt.timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ")
                                for d in (1, 30, 200)]},
        "deletable_ids": {"values": DELETABLE_IDS},
        "user_ids": {"values": [STUDENT_ID]},
        "type_slugs": {"values": [TYPE_SLUG]},
        # The seeded versions' ETags: current until something edits or reviews them.
        "etags": {"values": [f'"{fixed}.1"' for fixed in ACHIEVEMENT_IDS]},
        "deletable_etags": {"values": [f'"{fixed}.1"' for fixed in DELETABLE_IDS]},
    },
    "parameters": {
        "body.type": {"dictionary": "slugs", "probability": 0.7},
        "body.items[*].type": {"dictionary": "slugs", "probability": 0.7},
        "body.date": {"dictionary": "dates", "probability": 0.7},
        "body.items[*].date": {"dictionary": "dates", "probability": 0.7},
        "body.proof_url": {"dictionary": "proof_urls", "probability": 0.7},
        "body.expires_at": {"dictionary": "expiries", "probability": 0.7},
        "body.items[*].proof_url": {"dictionary": "proof_urls", "probability": 0.7},
        "path.achievement_id": {"dictionary": "achievement_ids", "probability": 0.6},
        "path.user_id": {"dictionary": "user_ids", "probability": 0.5},
        "path.slug": {"dictionary": "type_slugs", "probability": 0.5},
        "header.If-Match": {"dictionary": "etags", "probability": 0.7},
    },
    "operations": [{
        # Mostly unconditional: PATCH runs first and moves the seeded versions past their ETags.
        "include-name": f"PUT {API}/achievements/{{achievement_id}}",
        "parameters": {"path.achievement_id": {"dictionary": "achievement_ids", "probability": 0.8},
                       "header.If-Match": {"dictionary": "etags", "probability": 0.1}},
    }, {
        "include-name": f"DELETE {API}/achievements/{{achievement_id}}",
        "parameters": {"path.achievement_id": {"dictionary": "deletable_ids", "probability": 0.5},
                       "header.If-Match": {"dictionary": "deletable_etags", "probability": 0.3}},
    }],
})
schema = schemathesis.openapi.from_path(SPEC, config=CONFIG)


# --- checks ----------------------------------------------------------------------------------------

# Rules the service enforces with 422 that a JSON Schema cannot state, by field (an item of a
# batch is "items[3].type"): the catalogue of active types changes at run time; a date must
# not be in the future (nor before 1900-01-01); a proof URL must be http(s) on a public host
# without credentials; a new password must not be a common one or the user's own name or
# email; an email must have a dotted domain.
# An org unit must exist and be of the right kind (a group for a member, a faculty or the
# university for a parent), which the spec cannot state either.
# A share link expires in the future, at most a year ahead.
BUSINESS_RULE_FIELDS = {"type", "date", "proof_url", "password", "new_password", "email", "org_unit_id",
                        "org_unit_ids", "parent_id", "expires_at", "level", "result", "rules", "period_to"}
ITEM_PREFIX = re.compile(r"^(?:items|rules)\[\d+\]\.|\[\d+\]$")


def positive_data_accepted(ctx, response, case):
    """schemathesis' positive_data_acceptance, less the refusals the contract requires for
    schema-valid data: a business rule above (422), or a well-formed cursor the service
    never signed (400: cursors are opaque and HMAC-signed)."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except Failure:
        body = _json(response)
        if response.status_code == 422 and body.get("errors"):
            fields = {ITEM_PREFIX.sub("", error.get("field", "")) for error in body["errors"]}
            if fields <= BUSINESS_RULE_FIELDS:
                return None
        if response.status_code == 400 and "cursor" in (case.query or {}) and "cursor" in body.get("detail", ""):
            return None
        # A precondition is about the current state, which no schema knows: a stale If-Match or
        # an If-None-Match that names the current version is refused (412) whatever its form.
        sent = {name.lower() for name in (case.headers or {})}
        if response.status_code == 412 and sent & {"if-match", "if-none-match"}:
            return None
        raise


def _json(response) -> dict:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def missing_header_rejected(ctx, response, case):
    """schemathesis' missing_required_header, with the contract's own answer to a review
    without If-Match: 428 Precondition Required (RFC 6585)."""
    try:
        return missing_required_header(ctx, response, case)
    except Failure:
        if response.status_code == 428 and case.path.endswith("/review"):
            return None
        raise


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    positive_data_accepted,
    missing_header_rejected,
    unsupported_method,
    allow_header_conformance,
    ignored_auth,
]


# --- the test --------------------------------------------------------------------------------------

def _cookieless_session() -> requests.Session:
    """Keep-alive connections, but no cookie jar: a refresh cookie set by one generated login
    must not ride along on the next generated request."""
    session = requests.Session()
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return session


@pytest.fixture(scope="module")
def http_session() -> Iterator[requests.Session]:
    with _cookieless_session() as session:
        yield session


# The cookie endpoints end or rotate the session they are given: each call gets a fresh one
# of the same user, so the token every other call uses stays valid.
SESSION_ENDING = {("POST", f"{API}/auth/logout"), ("POST", f"{API}/auth/refresh")}


_PICKS = collections.Counter()


LEVELS, RESULTS = ["national", "regional", "international"], ["winner", "prize", "participant"]


def _known_grades(case) -> None:
    """Level and result slugs that exist, in three cases of four (every item of a batch alike);
    only schema-valid slugs are swapped, so negative cases stay negative."""
    _PICKS["grades"] += 1
    if _PICKS["grades"] % 4 == 0:
        return
    bodies = case.body.get("items") if isinstance(case.body, dict) and "items" in case.body else [case.body]
    for n, body in enumerate(bodies if isinstance(bodies, list) else []):
        if not isinstance(body, dict):
            continue
        for key, known in (("level", LEVELS), ("result", RESULTS), ("type", SLUGS)):
            value = body.get(key)
            if isinstance(value, str) and len(value) <= 64 and SLUG_TEXT.fullmatch(value):
                body[key] = known[n % len(known)]
        if isinstance(body.get("date"), str) and _valid_date(body["date"]):
            body["date"] = _dates()[n % len(_dates())]


def _known_ids(case) -> None:
    """Path ids declared as ``format: uuid`` get generated UUIDs (schemathesis' dictionaries do
    not apply to formats): most generated valid ones are swapped for the seeded ids, so the
    success paths are reached. Malformed ids (negative cases) are left as they are."""
    params = case.path_parameters or {}
    value = params.get("achievement_id")
    if not isinstance(value, str) or not UUID_TEXT.fullmatch(value):
        return
    key = (case.method.upper(), case.path)
    _PICKS[key] += 1
    pool = DELETABLE_IDS if case.method.upper() == "DELETE" else ACHIEVEMENT_IDS
    if _PICKS[key] % 4:  # three of four
        params["achievement_id"] = pool[_PICKS[key] % len(pool)]
        if case.path.endswith("/review") and "If-Match" in (case.headers or {}):
            case.headers["If-Match"] = f'"{params["achievement_id"]}.1"'  # the seeded version's ETag
        # An empty If-Match names no version and fails (412) by design: most cases drop it, so
        # writes get through too.
        if (case.headers or {}).get("If-Match") == "" and not case.path.endswith("/review"):
            del case.headers["If-Match"]
        # Schema-valid slugs and dates that the catalogue and the calendar accept too.
        body = case.body if isinstance(case.body, dict) else {}
        if isinstance(body.get("type"), str) and len(body["type"]) <= 64 and SLUG_TEXT.fullmatch(body["type"]):
            body["type"] = SLUGS[_PICKS[key] % len(SLUGS)]
        if isinstance(body.get("date"), str) and _valid_date(body["date"]):
            body["date"] = _dates()[_PICKS[key] % len(_dates())]


UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SLUG_TEXT = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _valid_date(text: str) -> bool:
    try:
        return bool(DATE_TEXT.fullmatch(text)) and dt.date.fromisoformat(text) is not None
    except ValueError:
        return False


@schema.parametrize()
def test_api_conforms_to_the_committed_spec(case, world: World, server: RealServer, http_session):
    _known_ids(case)
    if case.path.startswith(f"{API}/achievements"):
        _known_grades(case)
    headers = {"Authorization": f"Bearer {world.token}"}
    cookies = None
    if (case.method.upper(), case.path) in SESSION_ENDING:
        with server.client() as client:
            token, cookie = _login(client, world.email)
        headers["Authorization"] = f"Bearer {token}"
        cookies = {"refresh_token": cookie}
    response = case.call_and_validate(base_url=server.base_url, headers=headers, cookies=cookies, checks=CHECKS,
                                      session=http_session)
    world.statuses[(case.method.upper(), case.path)][response.status_code] += 1


# Runs after every operation of its role (pytest keeps a module-scoped parameter's items together).
def test_contract_run_reached_the_success_paths(world: World):
    """Not only refusals: a broken sign-in would otherwise pass as a wall of documented 401s."""
    seen = world.statuses
    assert seen, "the contract run did not run"
    expected = {
        ("GET", f"{API}/achievements"): 200, ("POST", f"{API}/achievements"): 201,
        ("POST", f"{API}/achievements/batch"): 201, ("GET", f"{API}/achievements/{{achievement_id}}"): 200,
        ("DELETE", f"{API}/achievements/{{achievement_id}}"): 204, ("GET", f"{API}/achievements/stats"): 200,
        ("GET", f"{API}/achievements/export"): 200, ("GET", f"{API}/auth/me"): 200,
        ("PATCH", f"{API}/auth/me"): 200, ("POST", f"{API}/auth/refresh"): 200, ("POST", f"{API}/auth/logout"): 204,
        ("GET", f"{API}/achievement-types"): 200,
    }
    if world.role == "student":
        expected.update({("PUT", f"{API}/achievements/{{achievement_id}}"): 200,
                         ("PATCH", f"{API}/achievements/{{achievement_id}}"): 200})
    else:
        expected.update({("GET", f"{API}/admin/users"): 200, ("GET", f"{API}/admin/audit-events"): 200,
                         ("POST", f"{API}/achievements/{{achievement_id}}/review"): 200,
                         ("POST", f"{API}/achievement-types"): 201,
                         ("PATCH", f"{API}/achievement-types/{{slug}}"): 200,
                         ("PATCH", f"{API}/admin/users/{{user_id}}"): 200})
    missing = {f"{m} {p} -> {s}": dict(seen.get((m, p), {})) for (m, p), s in expected.items()
               if not seen.get((m, p), {}).get(s)}
    assert not missing, f"success never reached as {world.role}: {missing}"
