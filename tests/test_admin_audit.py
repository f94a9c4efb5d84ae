"""Review workflow, administration, achievement types and the audit log."""

from __future__ import annotations

import json
import uuid

import asyncpg
import pytest

from tests.conftest import PASSWORD, review

ACH = "/api/v1/achievements"
TYPES = "/api/v1/achievement-types"
USERS = "/api/v1/admin/users"
AUDIT = "/api/v1/admin/audit-events"


def new_achievement(api, who, title="Olympiad"):
    response = api.post(ACH, token=who["token"], json={"title": title, "type": "olympiad", "date": "2026-01-10"})
    assert response.status == 201
    return response.json


def events(api, action=None):
    if action:
        rows = api.sql("SELECT * FROM audit_events WHERE action = $1 ORDER BY occurred_at", action)
    else:
        rows = api.sql("SELECT * FROM audit_events ORDER BY occurred_at")
    for row in rows:
        row["details"] = json.loads(row["details"])
    return rows


# --- review -------------------------------------------------------------------------------------

def test_review_approve_reject_and_rereview(api, users):
    student, curator, admin = users.signed_in(), users.signed_in("curator"), users.signed_in("admin")
    a = new_achievement(api, student)
    approved = review(api, a["id"], curator, decision="approved", comment="ok")
    assert approved.status == 200
    assert approved.json["review"]["decision"] == "approved" and approved.json["review"]["comment"] == "ok"
    assert review(api, a["id"], admin, decision="rejected").status == 422
    rejected = review(api, a["id"], admin, decision="rejected", comment="no proof")
    assert rejected.status == 200 and rejected.json["status"] == "rejected"
    assert rejected.json["review"]["reviewer_id"] == admin["id"]
    reviewed = events(api, "achievement.reviewed")
    assert [e["details"] for e in reviewed][-1]["decision"] == "rejected"
    assert len(reviewed) == 2


def test_review_rules(api, users):
    student, curator = users.signed_in(), users.signed_in("curator")
    a = new_achievement(api, student)
    # a student is refused by role before any lookup, even for an unknown id
    assert api.post(f"{ACH}/{uuid.uuid4()}/review", token=student["token"],
                    json={"decision": "approved"}).status == 403
    assert review(api, str(uuid.uuid4()), curator, decision="approved").status == 404
    own = new_achievement(api, curator)
    assert review(api, own["id"], curator, decision="approved").status == 403
    assert review(api, a["id"], curator, decision="maybe").status == 422
    assert review(api, a["id"], curator, decision="rejected", comment="x" * 2001).status == 422
    denied = events(api, "security.access_denied")
    by_actor = {(row["actor_id"], row["details"]["reason"]) for row in denied}
    assert (uuid.UUID(student["id"]), "role") in by_actor
    assert (uuid.UUID(curator["id"]), "own_review") in by_actor


def test_review_queue_for_curators(api, users):
    student, curator = users.signed_in(), users.signed_in("curator")
    a = new_achievement(api, student, "One")
    new_achievement(api, student, "Two")
    review(api, a["id"], curator, decision="approved")
    queue = api.get(f"{ACH}?owner=any&status=pending", token=curator["token"]).json
    assert [i["title"] for i in queue["items"]] == ["Two"]


def test_review_if_match_prevents_lost_update(api, users):
    student, c1, c2 = users.signed_in(), users.signed_in("curator"), users.signed_in("curator")
    a = new_achievement(api, student)
    etag = api.get(f"{ACH}/{a['id']}", token=c1["token"]).headers["etag"]
    first = api.post(f"{ACH}/{a['id']}/review", token=c1["token"], json={"decision": "approved"},
                     headers={"If-Match": etag})
    second = api.post(f"{ACH}/{a['id']}/review", token=c2["token"],
                      json={"decision": "rejected", "comment": "no"}, headers={"If-Match": etag})
    assert first.status == 200 and second.status == 412


# --- admin: users -------------------------------------------------------------------------------

def test_admin_routes_forbidden_for_others(api, users):
    for role in ("student", "curator"):
        who = users.signed_in(role)
        assert api.get(USERS, token=who["token"]).status == 403
        assert api.get(AUDIT, token=who["token"]).status == 403
        assert api.patch(f"{USERS}/{who['id']}", token=who["token"], json={"role": "admin"}).status == 403
        assert api.post(TYPES, token=who["token"],
                        json={"slug": "x", "name": "X", "category": "social"}).status == 403
    assert api.get(USERS).status == 401
    for method in ("POST", "PUT", "DELETE"):
        assert api.request(method, AUDIT, token=users.signed_in("admin")["token"]).status == 405
    assert api.get("/api/v1/admin").status == 404
    assert api.get("/api/v1/users").status == 404


def test_admin_lists_users_with_filters_and_cursor(api, users):
    admin = users.signed_in("admin")
    for n in range(5):
        users.make(email=f"list{n}@example.org", full_name=f"Listed Person {n}")
    users.make("curator", email="cur@example.org", full_name="Curator Carl")
    body = api.get(f"{USERS}?limit=2", token=admin["token"]).json
    assert len(body["items"]) == 2 and body["next_cursor"]
    assert set(body["items"][0]) == {"id", "email", "full_name", "role", "is_active", "created_at", "org_unit_id"}
    seen, cursor = [], None
    while True:
        page = api.get(f"{USERS}?limit=2" + (f"&cursor={cursor}" if cursor else ""), token=admin["token"]).json
        seen += [u["email"] for u in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 7
    assert [u["email"] for u in api.get(f"{USERS}?role=curator", token=admin["token"]).json["items"]] == [
        "cur@example.org"]
    assert len(api.get(f"{USERS}?q=PERSON", token=admin["token"]).json["items"]) == 5
    assert api.get(f"{USERS}?is_active=maybe", token=admin["token"]).status == 400
    assert api.get(f"{USERS}?role=root", token=admin["token"]).status == 400


def test_admin_changes_role_and_deactivates_revoking_sessions(api, users):
    admin = users.signed_in("admin")
    target = users.signed_in("curator")
    response = api.patch(f"{USERS}/{target['id']}", token=admin["token"], json={"role": "student"})
    assert response.status == 200 and response.json["role"] == "student"
    assert api.get("/api/v1/auth/me", token=target["token"]).status == 401  # sessions revoked
    relogin = users.login(target)
    assert api.get(f"{ACH}?owner=any", token=relogin["token"]).status == 403
    off = api.patch(f"{USERS}/{target['id']}", token=admin["token"], json={"is_active": False})
    assert off.status == 200 and off.json["is_active"] is False
    assert api.get("/api/v1/auth/me", token=relogin["token"]).status == 401
    assert api.post("/api/v1/auth/refresh", cookie=relogin["cookie"]).status == 401
    assert api.post("/api/v1/auth/login", json={"email": target["email"], "password": PASSWORD}).status == 401
    updated = events(api, "admin.user.updated")
    assert updated[0]["details"]["role"] == ["curator", "student"]
    assert updated[0]["actor_id"] == uuid.UUID(admin["id"])


def test_admin_cannot_demote_or_deactivate_self(api, users):
    admin = users.signed_in("admin")
    assert api.patch(f"{USERS}/{admin['id']}", token=admin["token"], json={"role": "curator"}).status == 409
    assert api.patch(f"{USERS}/{admin['id']}", token=admin["token"], json={"is_active": False}).status == 409
    assert api.patch(f"{USERS}/{uuid.uuid4()}", token=admin["token"], json={"role": "curator"}).status == 404
    assert api.patch(f"{USERS}/{admin['id']}", token=admin["token"], json={"email": "x@y.org"}).status == 422


# --- achievement types --------------------------------------------------------------------------

def test_types_catalogue_covers_all_categories(api, users):
    student = users.signed_in()
    body = api.get(TYPES, token=student["token"]).json
    assert {t["category"] for t in body["items"]} == {"educational", "scientific", "creative", "social", "sports"}
    assert set(body["items"][0]) == {"slug", "name", "category", "is_active"}
    assert api.get(TYPES).status == 401


def test_admin_creates_and_updates_types(api, users):
    admin = users.signed_in("admin")
    created = api.post(TYPES, token=admin["token"],
                       json={"slug": "hackathon", "name": "Hackathon", "category": "educational"})
    assert created.status == 201 and created.json["is_active"] is True
    assert api.post(TYPES, token=admin["token"],
                    json={"slug": "hackathon", "name": "Again", "category": "educational"}).status == 409
    assert api.post(TYPES, token=admin["token"],
                    json={"slug": "Bad Slug", "name": "X", "category": "social"}).status == 422
    assert api.post(TYPES, token=admin["token"],
                    json={"slug": "ok", "name": "X", "category": "cooking"}).status == 422
    off = api.patch(f"{TYPES}/hackathon", token=admin["token"], json={"is_active": False, "name": "Hack"})
    assert off.status == 200 and off.json == {"slug": "hackathon", "name": "Hack", "category": "educational",
                                              "is_active": False}
    assert api.patch(f"{TYPES}/hackathon", token=admin["token"], json={"category": "social"}).status == 422
    assert api.patch(f"{TYPES}/nope", token=admin["token"], json={"name": "x"}).status == 404
    listed = {t["slug"]: t for t in api.get(TYPES, token=admin["token"]).json["items"]}
    assert listed["hackathon"]["is_active"] is False
    assert [e["action"] for e in events(api) if e["action"].startswith("achievement_type.")] == [
        "achievement_type.created", "achievement_type.updated"]


# --- audit log ----------------------------------------------------------------------------------

def test_each_action_leaves_its_event_with_context(api, users):
    student = users.make()
    session = users.login(student)
    rid = "trace-me-123"
    created = api.post(ACH, token=session["token"], headers={"X-Request-ID": rid},
                       json={"title": "T", "type": "olympiad", "date": "2026-01-10"})
    rows = api.sql("SELECT * FROM audit_events WHERE request_id = $1", rid)
    assert len(rows) == 1
    row = rows[0]
    assert row["action"] == "achievement.created" and row["outcome"] == "success"
    assert row["actor_id"] == uuid.UUID(student["id"]) and row["target_id"] == created.json["id"]
    assert row["ip"] == "127.0.0.1"
    register = events(api, "auth.register")[0]
    assert register["actor_id"] == uuid.UUID(student["id"]) == uuid.UUID(register["target_id"])
    assert events(api, "auth.login.succeeded")
    api.post("/api/v1/auth/login", json={"email": student["email"], "password": "wrong password !"})
    assert events(api, "auth.login.failed")[0]["outcome"] == "failure"
    api.delete(f"{ACH}/{created.json['id']}", token=session["token"])
    assert events(api, "achievement.deleted")
    api.post("/api/v1/auth/logout", token=session["token"])
    assert events(api, "auth.logout")


def test_audit_rows_are_append_only(api, users):
    users.make()
    with pytest.raises(Exception, match="append-only"):
        api.sql("UPDATE audit_events SET action = 'x'")
    with pytest.raises(Exception, match="append-only"):
        api.sql("DELETE FROM audit_events")
    assert events(api, "auth.register")


def test_failed_change_leaves_no_event(api, users, database_url):
    student = users.signed_in()
    a = new_achievement(api, student)

    async def break_audit():
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("ALTER TABLE audit_events ADD CONSTRAINT no_reviews CHECK "
                               "(action <> 'achievement.updated') NOT VALID")
        finally:
            await conn.close()

    async def repair():
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("ALTER TABLE audit_events DROP CONSTRAINT no_reviews")
        finally:
            await conn.close()

    api.run(break_audit())
    try:
        response = api.patch(f"{ACH}/{a['id']}", token=student["token"], json={"title": "Changed"})
        assert response.status == 500
        assert "no_reviews" not in response.text
    finally:
        api.run(repair())
    assert api.get(f"{ACH}/{a['id']}", token=student["token"]).json["title"] == "Olympiad"
    assert not events(api, "achievement.updated")


def test_unauthenticated_flood_is_bounded(api):
    for _ in range(30):
        api.post("/api/v1/auth/login", json={"email": "nobody@example.org", "password": "whatever pw"})
    failed = events(api, "auth.login.failed")
    limited = events(api, "security.rate_limited")
    assert len(failed) == 1 and len(limited) == 1


def test_audit_endpoint_filters_and_pages(api, users):
    admin = users.signed_in("admin")
    student = users.signed_in()
    for n in range(4):
        new_achievement(api, student, f"A{n}")
    body = api.get(f"{AUDIT}?actor_id={student['id']}&limit=2", token=admin["token"]).json
    assert len(body["items"]) == 2 and body["next_cursor"]
    assert set(body["items"][0]) == {"id", "occurred_at", "request_id", "actor_id", "ip", "action", "target_type",
                                     "target_id", "outcome", "details"}
    times = [i["occurred_at"] for i in body["items"]]
    assert times == sorted(times, reverse=True)
    rest = api.get(f"{AUDIT}?actor_id={student['id']}&limit=2&cursor={body['next_cursor']}",
                   token=admin["token"]).json
    all_ids = [i["id"] for i in body["items"] + rest["items"]]
    assert len(set(all_ids)) == len(all_ids)
    created = api.get(f"{AUDIT}?action=achievement.created", token=admin["token"]).json["items"]
    assert len(created) == 4
    assert api.get(f"{AUDIT}?since=yesterday", token=admin["token"]).status == 400
    assert api.get(f"{AUDIT}?actor_id=nope", token=admin["token"]).status == 400
    window = api.get(f"{AUDIT}?since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00Z", token=admin["token"])
    assert window.status == 200 and window.json["items"] == []
    # Out of range once in UTC, or not RFC 3339: 400, never a 500 (schemathesis found the overflow).
    for bad in ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00%2B14:00", "2000-01-01", "2000-01-01T00:00:00",
                "２０００-01-01T00:00:00Z"):
        assert api.get(f"{AUDIT}?until={bad}", token=admin["token"]).status == 400, bad
    offset = api.get(f"{AUDIT}?since=2000-01-01t00:00:00.5%2B01:00&until=2000-01-02T00:00:00z", token=admin["token"])
    assert offset.status == 200


def test_signed_in_rate_limit_flood_is_bounded(build_api):
    from tests.conftest import Users

    limited = build_api(RATE_LIMIT_API_USER="2/minute")
    try:
        session = Users(limited).signed_in()
        statuses = [limited.get("/api/v1/auth/me", token=session["token"]).status for _ in range(10)]
        assert statuses[:2] == [200, 200] and set(statuses[2:]) == {429}
        rows = limited.sql("SELECT actor_id::text FROM audit_events WHERE action = 'security.rate_limited'")
        assert [r["actor_id"] for r in rows] == [session["id"]]
    finally:
        limited.close()
