"""Regression tests for the defects the outside security review reproduced (API.md "H").

Each test states the attack and what the user sees now; each failed before the fix.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import logging
import time
import uuid

import httpx
import jwt
import openpyxl
import pytest

from service.platform.logs import JsonFormatter
from service.platform.ratelimit import RateLimits
from service.tokens import InvalidToken, verify_access_token
from tests.conftest import PASSWORD, SECRET, make_settings, refresh_cookie, review

ACH = "/api/v1/achievements"
LOGIN = "/api/v1/auth/login"
REGISTER = "/api/v1/auth/register"
REFRESH = "/api/v1/auth/refresh"
APP = "https://app.example.com"


def create(api, session, title="Regional olympiad", **fields):
    body = {"title": title, "type": "olympiad", "date": "2025-05-01", **fields}
    response = api.post(ACH, token=session["token"], json=body)
    assert response.status == 201, response.text
    return response.json


def audit_rows(api, action):
    rows = api.sql("SELECT actor_id, outcome, details FROM audit_events WHERE action = $1 ORDER BY occurred_at",
                   action)
    for row in rows:
        row["details"] = json.loads(row["details"])
    return rows


def concurrently(api, *requests):
    """Send ``requests`` (method, path, json) at the same moment over separate connections."""

    async def send():
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.client.port}") as client:
            return await asyncio.gather(*(client.request(method, path, json=body, headers=headers)
                                          for method, path, body, headers in requests))

    return api.run(send())


# --- 2. one byte in a header --------------------------------------------------------------------

@pytest.mark.parametrize("value", [b"Bearer \xff", b"Bearer \xff\xfe.\x80.\x7f", b"Bearer a.b.c\xff",
                                   b"Bearer " + b"a" * 5000 + b".b.c", b"Bearer eyJ=.eyJ=.sig"])
def test_malformed_bearer_bytes_are_401_never_500(api, value):
    for method, path in (("GET", "/api/v1/auth/me"), ("POST", "/api/v1/auth/logout"), ("GET", ACH)):
        response = api.request(method, path, headers={"Authorization": value})
        assert response.status == 401, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"


def test_token_verification_refuses_undecodable_text_cheaply():
    settings = make_settings("postgres://localhost/unused")
    for token in ("\udcff", "a.b.\udcff", "\x00.\x00.\x00", "é.é.é", "a" * 5000):
        with pytest.raises(InvalidToken):
            verify_access_token(settings, token)


# --- 3. the per-account login limit under concurrency -------------------------------------------

def test_concurrent_wrong_passwords_cannot_hide_a_right_one(build_api, users):
    api = build_api(RATE_LIMIT_LOGIN_ACCOUNT="5/15minutes", BCRYPT_ROUNDS="6")
    try:
        victim = users.make(email="victim@example.org")
        attempts = [("POST", LOGIN, {"email": victim["email"], "password": f"guess number {n}"}, None)
                    for n in range(19)]
        attempts.insert(11, ("POST", LOGIN, {"email": victim["email"], "password": victim["password"]}, None))
        statuses = [r.status_code for r in concurrently(api, *attempts)]
        evaluated = [s for s in statuses if s in (200, 401)]
        assert len(evaluated) <= 5, statuses
        assert statuses.count(429) >= 15
        # While the limit holds, even the right password is refused.
        assert api.post(LOGIN, json={"email": victim["email"], "password": victim["password"]}).status == 429
    finally:
        api.close()


def test_password_change_limit_is_consumed_first_and_its_429_audited(build_api, users):
    api = build_api(RATE_LIMIT_LOGIN_ACCOUNT="3/15minutes")
    try:
        session = users.signed_in()
        statuses = [api.post("/api/v1/auth/password", token=session["token"],
                             json={"current_password": "not my password", "new_password": "a brand new pass 1"}
                             ).status for _ in range(5)]
        assert statuses == [403, 403, 403, 429, 429]
        limited = audit_rows(api, "security.rate_limited")
        assert limited and limited[0]["details"]["limit"] == "password_change"
        refused = audit_rows(api, "auth.password.changed")
        assert [r["outcome"] for r in refused] == ["failure"] * 3
    finally:
        api.close()


def test_weak_new_password_refusal_is_audited(api, users):
    session = users.signed_in()
    response = api.post("/api/v1/auth/password", token=session["token"],
                        json={"current_password": PASSWORD, "new_password": "password1"})
    assert response.status == 422
    rows = audit_rows(api, "auth.password.changed")
    assert [(r["outcome"], r["details"]["reason"]) for r in rows] == [("failure", "weak_new_password")]


# --- 4. refresh throttled, refresh-token rows pruned ------------------------------------------------

def test_refresh_is_throttled_per_ip_and_audited(build_api, users):
    api = build_api(RATE_LIMIT_REFRESH_IP="3/minute")
    try:
        cookie = users.signed_in()["cookie"]
        statuses = []
        for _ in range(5):
            response = api.post(REFRESH, cookie=cookie)
            statuses.append(response.status)
            cookie = refresh_cookie(response) or cookie
        assert statuses == [200, 200, 200, 429, 429]
        assert "retry-after" in {k.lower() for k in response.headers}
        assert audit_rows(api, "security.rate_limited")[0]["details"]["limit"] == "refresh_ip"
        assert len(audit_rows(api, "auth.refresh")) == 3
    finally:
        api.close()


def test_campus_network_multiplies_per_ip_limits_only(build_api, users):
    campus = build_api(RATE_LIMIT_LOGIN_IP="2/minute", RATE_LIMIT_LOGIN_ACCOUNT="1000/minute",
                       RATE_LIMIT_TRUSTED_NETWORKS="10.0.0.0/8, 127.0.0.0/8", RATE_LIMIT_TRUSTED_MULTIPLIER="3")
    plain = build_api(RATE_LIMIT_LOGIN_IP="2/minute", RATE_LIMIT_LOGIN_ACCOUNT="1000/minute")
    try:
        body = {"email": "nobody@example.org", "password": "wrong password"}
        assert [campus.post(LOGIN, json=body).status for _ in range(7)] == [401] * 6 + [429]
        plain.run(plain.app.ctx.limits.storage.reset())
        assert [plain.post(LOGIN, json=body).status for _ in range(3)] == [401, 401, 429]
    finally:
        campus.close()
        plain.close()


def test_trusted_networks_never_relax_per_account_limits():
    settings = make_settings("postgres://localhost/unused", RATE_LIMIT_TRUSTED_NETWORKS="192.0.2.0/24")
    limits = RateLimits(settings)
    assert limits.for_ip(limits.login_ip, "192.0.2.7").amount == 20 * limits.login_ip.amount
    assert limits.for_ip(limits.login_ip, "::ffff:192.0.2.7").amount == 20 * limits.login_ip.amount
    assert limits.for_ip(limits.login_ip, "198.51.100.1") is limits.login_ip
    assert limits.for_ip(limits.login_ip, "unknown") is limits.login_ip


def test_foreign_origin_refresh_is_refused_and_audited(api, users):
    cookie = users.signed_in()["cookie"]
    response = api.post(REFRESH, cookie=cookie, headers={"Origin": "https://evil.example"})
    assert response.status == 403
    rows = audit_rows(api, "security.csrf_refused")
    assert rows and rows[0]["details"]["origin"] == "https://evil.example"


def test_ended_sessions_leave_no_refresh_token_rows(api, users):
    session = users.signed_in()
    cookie = session["cookie"]
    for _ in range(3):
        cookie = refresh_cookie(api.post(REFRESH, cookie=cookie))
    user_id = uuid.UUID(session["id"])
    count = "SELECT count(*) AS n FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE s.user_id = $1"
    assert api.sql(count, user_id)[0]["n"] == 4  # a live session keeps its used tokens (reuse detection)
    assert api.post("/api/v1/auth/logout", token=session["token"]).status == 204
    assert api.sql(count, user_id)[0]["n"] == 0


# --- 5. CSV and XLSX ------------------------------------------------------------------------------

PAYLOAD = "Prize;=cmd|' /C calc'!A0;"


def test_csv_quotes_every_cell_so_separators_cannot_start_a_formula(api, users):
    session = users.signed_in()
    create(api, session, title=PAYLOAD, description="-2+3,=SUM(A1);@x")
    text = api.get(f"{ACH}/export?format=csv", token=session["token"]).text
    lines = text.splitlines()
    assert all(line.startswith('"') and line.endswith('"') for line in lines)
    assert '"Prize;\'=cmd|\' /C calc\'!A0;"' in lines[1]
    # Opened by a spreadsheet that splits on ";" (Russian Excel) or "," the cells stay whole.
    for delimiter in (",", ";"):
        for row in csv.reader(io.StringIO(text), delimiter=delimiter):
            assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row), row
    row = next(r for r in csv.reader(io.StringIO(text)) if r[1].startswith("Prize"))
    assert row[6] == "'-2+3,'=SUM(A1);'@x"


def test_xlsx_export_has_text_cells_real_dates_and_no_formulas(api, users):
    session = users.signed_in()
    create(api, session, title="=HYPERLINK(\"http://evil.example\")", date="2024-02-29")
    create(api, session, title="Plain title", date="2025-01-02", proof_url="https://example.org/x.pdf")
    response = api.get(f"{ACH}/export?format=xlsx&sort=date", token=session["token"])
    assert response.status == 200
    assert response.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert response.headers["content-disposition"] == 'attachment; filename="achievements.xlsx"'
    sheet = openpyxl.load_workbook(io.BytesIO(response.body)).active
    rows = list(sheet.iter_rows(values_only=False))
    assert [c.value for c in rows[0]] == ["id", "title", "type", "category", "date", "proof_url", "description",
                                          "status", "created_at", "updated_at"]
    formula = rows[1]
    assert formula[1].value == "=HYPERLINK(\"http://evil.example\")" and formula[1].data_type == "s"
    assert formula[4].value == dt.datetime(2024, 2, 29) and formula[4].is_date
    assert rows[2][5].value == "https://example.org/x.pdf" and rows[2][5].hyperlink is None
    assert all(cell.data_type != "f" for row in rows for cell in row)


def test_head_on_export_answers_headers_without_a_body(api, users):
    session = users.signed_in()
    create(api, session)
    for fmt in ("csv", "json", "xlsx"):
        response = api.request("HEAD", f"{ACH}/export?format={fmt}", token=session["token"])
        assert response.status == 200 and response.body == b""
        assert response.headers["content-disposition"] == f'attachment; filename="achievements.{fmt}"'


# --- 6. odd bytes in User-Agent -------------------------------------------------------------------

def test_non_utf8_user_agent_keeps_the_audit_row(api):
    response = api.post(LOGIN, json={"email": "sprayer@example.org", "password": "guess guess"},
                        headers={"User-Agent": b"spray \xff\xfe/1.0"})
    assert response.status == 401
    assert len(audit_rows(api, "auth.login.failed")) == 1


def test_log_line_survives_undecodable_bytes():
    record = logging.makeLogRecord({"name": "service.audit", "levelno": logging.INFO, "levelname": "INFO",
                                    "msg": "auth.login.failed", "user_agent": "spray \udcff\udcfe/1.0",
                                    "details": {"email": "x\ud800"}})
    line = json.loads(JsonFormatter().format(record))
    assert line["user_agent"] == "spray \ufffd\ufffd/1.0" and line["message"] == "auth.login.failed"


# --- 7. the smaller ones ------------------------------------------------------------------------------

def test_case_rule_is_the_databases_in_batches_and_search(api, users):
    session = users.signed_in()
    # Python lowers the final sigma to "ς", PostgreSQL to "σ": one rule now, the database's.
    items = [{"title": title, "type": "olympiad", "date": "2025-01-01"} for title in ("ΑΣ", "ασ")]
    response = api.post(f"{ACH}/batch", token=session["token"], json={"items": items})
    assert response.status == 409 and response.json["duplicates"] == [0, 1]
    create(api, session, title="ΣΟΦΙΑΣ olympiad")
    found = api.get(f"{ACH}?q=ΣΟΦΙΑΣ", token=session["token"]).json
    assert [i["title"] for i in found["items"]] == ["ΣΟΦΙΑΣ olympiad"]


@pytest.mark.parametrize("password, reason", [
    ("e\u0301" * 4, "at least 8"),  # 8 code points, 4 characters once NFC-normalised
    ("\u200b" * 12, "visible"),
    (" \u3164\u00a0" * 4, "visible"),
])
def test_password_rules_count_what_is_hashed(api, password, reason):
    response = api.post(REGISTER, json={"email": "p@example.org", "password": password, "full_name": "P"})
    assert response.status == 422
    assert reason in response.json["errors"][0]["message"]


def test_audit_log_refuses_truncate(api):
    from service.platform.database import connection

    with pytest.raises(Exception, match="append-only"):
        api.run(connection().execute_script("TRUNCATE audit_events"))


def test_two_admins_demoting_each_other_leave_one_admin(api, users):
    first, second = users.signed_in("admin"), users.signed_in("admin")
    responses = concurrently(api, *[
        ("PATCH", f"/api/v1/admin/users/{target['id']}", {"role": "student"},
         {"Authorization": f"Bearer {actor['token']}"})
        for actor, target in ((first, second), (second, first))])
    assert sorted(r.status_code for r in responses) != [200, 200]
    admins = api.sql("SELECT count(*) AS n FROM users WHERE role = 'admin' AND is_active")[0]["n"]
    assert admins == 1


def test_last_admin_cannot_be_deactivated(api, users):
    admin = users.signed_in("admin")
    other = users.signed_in("admin")
    ok = api.patch(f"/api/v1/admin/users/{other['id']}", token=admin["token"], json={"is_active": False})
    assert ok.status == 200
    api.sql("UPDATE users SET role = 'admin', is_active = true WHERE id = $1", uuid.UUID(other["id"]))
    relogged = users.login(other)
    api.sql("UPDATE users SET is_active = false WHERE id = $1", uuid.UUID(admin["id"]))
    # "other" is now the only active admin: not even a third party's change may remove it.
    # (Self-demotion is refused anyway; here the admin row is the last one.)
    response = api.patch(f"/api/v1/admin/users/{other['id']}", token=relogged["token"], json={"role": "student"})
    assert response.status == 409


def test_quota_per_user(build_api, users):
    api = build_api(MAX_ACHIEVEMENTS_PER_USER="3")
    try:
        session = users.signed_in()
        for n in range(2):
            create(api, session, title=f"Item {n}")
        items = [{"title": f"Batch {n}", "type": "olympiad", "date": "2025-01-01"} for n in range(2)]
        batch = api.post(f"{ACH}/batch", token=session["token"], json={"items": items})
        assert batch.status == 409 and batch.json["code"] == "quota_exceeded"
        create(api, session, title="Item 3")
        over = api.post(ACH, token=session["token"], json={"title": "Item 4", "type": "olympiad",
                                                           "date": "2025-01-01"})
        assert over.status == 409 and over.json["code"] == "quota_exceeded"
        assert api.sql("SELECT count(*) AS n FROM achievements")[0]["n"] == 3
        # Deleting one makes room again (the count follows deletes too).
        first = api.get(ACH, token=session["token"]).json["items"][0]
        assert api.delete(f"{ACH}/{first['id']}", token=session["token"]).status == 204
        create(api, session, title="Item 4")
        assert api.sql("SELECT sum(n) AS n FROM achievement_counts")[0]["n"] == 3
    finally:
        api.close()


def test_clock_leeway_is_at_most_five_seconds(api, users):
    session = users.signed_in()
    claims = jwt.decode(session["token"], SECRET, algorithms=["HS256"], audience="achievement-journal-api")
    now = int(time.time())
    stale = jwt.encode({**claims, "iat": now - 60, "nbf": now - 60, "exp": now - 10}, SECRET, algorithm="HS256",
                       headers={"typ": "at+jwt"})
    assert api.get("/api/v1/auth/me", token=stale).status == 401
    early = jwt.encode({**claims, "iat": now, "nbf": now + 10, "exp": now + 600}, SECRET, algorithm="HS256",
                       headers={"typ": "at+jwt"})
    assert api.get("/api/v1/auth/me", token=early).status == 401


def test_weaker_bcrypt_hash_is_upgraded_at_login(build_api, users):
    users.make(email="old@example.org")  # hashed at cost 4 by the default test app
    stronger = build_api(BCRYPT_ROUNDS="5")
    try:
        assert stronger.post(LOGIN, json={"email": "old@example.org", "password": PASSWORD}).status == 200
        stored = stronger.sql("SELECT password_hash FROM users WHERE email = 'old@example.org'")[0]
        assert stored["password_hash"].startswith("$2b$05$")
        assert stronger.post(LOGIN, json={"email": "old@example.org", "password": PASSWORD}).status == 200
    finally:
        stronger.close()


@pytest.mark.parametrize("field, value", [
    ("title", "Prize \u202egnp.exe"), ("title", "\u200b\u200b\u2060"), ("title", "olympiad \u2066x\u2069"),
    ("description", "   "), ("description", "\u200b"), ("description", "fine \u202d text"),
])
def test_bidi_controls_and_invisible_only_texts_are_refused(api, users, field, value):
    session = users.signed_in()
    body = {"title": "A fine title", "type": "olympiad", "date": "2025-01-01", field: value}
    response = api.post(ACH, token=session["token"], json=body)
    assert response.status == 422
    assert [e["field"] for e in response.json["errors"]] == [field]


def test_names_and_review_comments_refuse_bidi_controls(api, users):
    response = api.post(REGISTER, json={"email": "b@example.org", "password": PASSWORD,
                                        "full_name": "Ann \u202eynnA"})
    assert response.status == 422 and response.json["errors"][0]["field"] == "full_name"
    session, curator = users.signed_in(), users.signed_in("curator")
    mine = create(api, session)
    rejected = review(api, mine["id"], curator, decision="rejected", comment="\u2067hidden")
    assert rejected.status == 422 and rejected.json["errors"][0]["field"] == "comment"


# --- 8. conditional writes ------------------------------------------------------------------------

def test_if_none_match_on_a_write_is_412_and_nothing_changes(api, users):
    session = users.signed_in()
    mine = create(api, session)
    path = f"{ACH}/{mine['id']}"
    etag = api.get(path, token=session["token"]).headers["etag"]
    for header in ("*", etag, f'"other", {etag}'):
        patched = api.patch(path, token=session["token"], json={"title": "Changed"},
                            headers={"If-None-Match": header})
        assert patched.status == 412 and patched.json["code"] == "precondition_failed"
    assert api.put(path, token=session["token"], json={"title": "Changed", "type": "olympiad",
                                                       "date": "2025-01-01"},
                   headers={"If-None-Match": "*"}).status == 412
    assert api.delete(path, token=session["token"], headers={"If-None-Match": "*"}).status == 412
    current = api.get(path, token=session["token"]).json
    assert current["title"] == mine["title"] and current["version"] == 1
    assert audit_rows(api, "achievement.updated") == []
    # An If-None-Match naming another version lets the write through.
    assert api.patch(path, token=session["token"], json={"title": "Changed"},
                     headers={"If-None-Match": '"something-else.9"'}).status == 200


def test_review_requires_if_match_of_the_version_seen(api, users):
    session, curator = users.signed_in(), users.signed_in("curator")
    mine = create(api, session)
    path = f"{ACH}/{mine['id']}"
    for headers in ({}, {"If-Match": "*"}):
        response = api.post(f"{path}/review", token=curator["token"], json={"decision": "approved"},
                            headers=headers)
        assert response.status == 428 and response.json["code"] == "precondition_required"
    seen = api.get(path, token=curator["token"]).headers["etag"]
    # The student swaps the content after the curator looked: the approval must not land on it.
    assert api.patch(path, token=session["token"], json={"proof_url": "https://example.org/other.pdf"}).status == 200
    stale = api.post(f"{path}/review", token=curator["token"], json={"decision": "approved"},
                     headers={"If-Match": seen})
    assert stale.status == 412
    assert api.get(path, token=session["token"]).json["status"] == "pending"
    assert review(api, mine["id"], curator, decision="approved").status == 200


# --- 10. every field error at once --------------------------------------------------------------

def test_one_422_lists_syntax_and_catalogue_errors(api, users):
    session = users.signed_in()
    response = api.post(ACH, token=session["token"], json={"title": "", "type": "no-such-type",
                                                           "date": "2025-01-01"})
    assert response.status == 422
    errors = {e["field"]: e for e in response.json["errors"]}
    assert set(errors) == {"title", "type"} and errors["type"]["code"] == "unknown_type"


def test_one_422_lists_every_batch_item(api, users):
    session = users.signed_in()
    api.sql("UPDATE achievement_types SET is_active = false WHERE slug = 'grant'")
    items = [{"title": "Fine", "type": "olympiad", "date": "2025-01-01"},
             {"title": " ", "type": "olympiad", "date": "2025-01-01"},
             {"title": "Unknown type", "type": "no-such-type", "date": "2025-01-01"},
             {"title": "Inactive type", "type": "grant", "date": "2025-01-01"}]
    response = api.post(f"{ACH}/batch", token=session["token"], json={"items": items})
    assert response.status == 422
    errors = {e["field"]: e.get("code") for e in response.json["errors"]}
    assert errors == {"items[1].title": errors["items[1].title"], "items[2].type": "unknown_type",
                      "items[3].type": "inactive_type"}


def test_patch_lists_null_and_inactive_type_together_but_keeps_the_current_type(api, users):
    session = users.signed_in()
    mine = create(api, session, type="grant")
    api.sql("UPDATE achievement_types SET is_active = false WHERE slug IN ('grant', 'patent')")
    path = f"{ACH}/{mine['id']}"
    both = api.patch(path, token=session["token"], json={"title": None, "type": "patent"})
    assert both.status == 422 and {e["field"] for e in both.json["errors"]} == {"title", "type"}
    kept = api.patch(path, token=session["token"], json={"title": None, "type": "grant"})
    assert kept.status == 422 and {e["field"] for e in kept.json["errors"]} == {"title"}


def test_registration_lists_a_weak_password_and_a_taken_email_together(api, users):
    users.make(email="taken@example.org")
    response = api.post(REGISTER, json={"email": "Taken@example.org", "password": "password1", "full_name": "T"})
    assert response.status == 422
    errors = {e["field"]: e["code"] for e in response.json["errors"]}
    assert errors == {"password": "too_common", "email": "email_taken"}
    taken = api.post(REGISTER, json={"email": "taken@example.org", "password": PASSWORD, "full_name": "T"})
    assert taken.status == 409 and taken.json["code"] == "email_taken"
    assert taken.json["errors"] == [{"field": "email", "message": "is already registered", "code": "email_taken"}]


def test_head_answers_like_get_without_a_body_on_every_get_route(api, users):
    admin = users.signed_in("admin")
    mine = create(api, admin)
    paths = ["/healthz", "/readyz", "/docs/openapi.json", "/api/v1/auth/me", ACH, f"{ACH}/{mine['id']}",
             f"{ACH}/stats", f"{ACH}/export", "/api/v1/achievement-types", "/api/v1/admin/users",
             "/api/v1/admin/audit-events", f"{ACH}/{uuid.uuid4()}"]
    for path in paths:
        got = api.get(path, token=admin["token"])
        head = api.request("HEAD", path, token=admin["token"])
        assert (head.status, head.body) == (got.status, b""), path
        assert head.headers["content-type"] == got.headers["content-type"], path
