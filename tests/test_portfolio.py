"""Portfolio share links (API.md "P"): capability URLs, the public page, expiry, revocation,
visibility rules, headers, throttling and secrecy of the token."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid

from service.platform.logs import JsonFormatter
from tests.conftest import review

API = "/api/v1"
LINKS = f"{API}/share-links"
PUBLIC = f"{API}/public/portfolio"


def ahead(**delta) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(**delta)).isoformat().replace("+00:00", "Z")


def share(api, session, label="For the scholarship committee", **delta):
    body = {"label": label, "expires_at": ahead(**(delta or {"days": 30}))}
    response = api.post(LINKS, token=session["token"], json=body)
    assert response.status == 201, response.text
    return response.json


def token_of(link) -> str:
    return link["url"].rsplit("/", 1)[1]


def achievement(api, session, title, **fields):
    body = {"title": title, "type": "olympiad", "date": "2025-05-01", **fields}
    response = api.post(f"{API}/achievements", token=session["token"], json=body)
    assert response.status == 201, response.text
    return response.json


def test_link_is_shown_once_and_stored_as_a_hash(api, users):
    student = users.signed_in()
    link = share(api, student)
    assert set(link) == {"id", "label", "url", "expires_at", "created_at", "revoked_at"}
    token = token_of(link)
    assert link["url"].endswith(f"/api/v1/public/portfolio/{token}") and len(token) >= 43  # 256 random bits
    stored = api.sql("SELECT token_hash FROM share_links WHERE id = $1", uuid.UUID(link["id"]))[0]["token_hash"]
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    listed = api.get(LINKS, token=student["token"]).json["items"]
    assert [set(item) for item in listed] == [{"id", "label", "expires_at", "created_at", "revoked_at"}]
    assert token not in json.dumps(listed)
    audit = api.sql("SELECT action, details::text AS d FROM audit_events WHERE target_type = 'share_link'")
    assert [row["action"] for row in audit] == ["share_link.created"] and token not in str(audit)


def test_expiry_must_be_ahead_and_within_a_year(api, users):
    student = users.signed_in()
    for expires_at in (ahead(days=-1), ahead(days=400), "tomorrow", "2026-13-01T00:00:00Z"):
        response = api.post(LINKS, token=student["token"], json={"label": "x", "expires_at": expires_at})
        assert response.status == 422 and response.json["errors"][0]["field"] == "expires_at", expires_at
    assert api.post(LINKS, token=student["token"], json={"label": "", "expires_at": ahead(days=1)}).status == 422


def test_public_view_shows_only_approved_achievements_and_no_identifiers(api, users):
    student, curator = users.signed_in(full_name="Ada Lovelace"), users.signed_in("curator")
    approved = achievement(api, student, "Regional olympiad, 1st place", proof_url="https://example.org/d.pdf")
    rejected = achievement(api, student, "Unproven claim")
    achievement(api, student, "Still pending")
    assert review(api, approved["id"], curator, decision="approved").status == 200
    assert review(api, rejected["id"], curator, decision="rejected", comment="no proof").status == 200
    link = share(api, student)
    response = api.get(f"{PUBLIC}/{token_of(link)}")
    assert response.status == 200
    body = response.json
    assert body == {"owner_name": "Ada Lovelace", "org_unit": None, "items": [{
        "title": "Regional olympiad, 1st place", "type_name": "Olympiad", "category": "educational",
        "date": "2025-05-01", "level": None, "result": None, "proof_url": "https://example.org/d.pdf"}]}
    text = response.text
    assert student["email"] not in text and student["id"] not in text and approved["id"] not in text
    assert response.headers["x-robots-tag"].startswith("noindex")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "set-cookie" not in response.headers
    # Edited back to pending, the item disappears at once.
    assert api.patch(f"{API}/achievements/{approved['id']}", token=student["token"],
                     json={"description": "more detail"}).status == 200
    assert api.get(f"{PUBLIC}/{token_of(link)}").json["items"] == []


def test_unknown_expired_and_revoked_links_are_the_same_404(api, users):
    student = users.signed_in()
    live, expiring = share(api, student), share(api, student, seconds=2)
    api.sql("UPDATE share_links SET expires_at = now() - interval '1 second' WHERE id = $1",
            uuid.UUID(expiring["id"]))
    assert api.delete(f"{LINKS}/{live['id']}", token=student["token"]).status == 204
    bodies = []
    for token in (token_of(live), token_of(expiring), "A" * 43, "short", "x" * 500):
        response = api.get(f"{PUBLIC}/{token}")
        assert response.status == 404, token
        bodies.append({k: v for k, v in response.json.items() if k != "request_id"})
    assert all(body == bodies[0] for body in bodies)
    listed = {item["id"]: item for item in api.get(LINKS, token=student["token"]).json["items"]}
    assert listed[live["id"]]["revoked_at"] is not None  # revoked links stay listed


def test_links_are_the_owners_alone(api, users):
    owner, other = users.signed_in(), users.signed_in()
    link = share(api, owner)
    assert api.delete(f"{LINKS}/{link['id']}", token=other["token"]).status == 404
    assert api.get(f"{LINKS}/{link['id']}/accesses", token=other["token"]).status == 404
    assert api.get(LINKS, token=other["token"]).json["items"] == []
    assert api.get(f"{PUBLIC}/{token_of(link)}").status == 200  # still live


def test_owner_sees_each_access_with_a_hashed_ip(api, users):
    student = users.signed_in()
    link = share(api, student)
    for _ in range(3):
        assert api.get(f"{PUBLIC}/{token_of(link)}").status == 200
    accesses = api.get(f"{LINKS}/{link['id']}/accesses", token=student["token"]).json["items"]
    assert len(accesses) == 3 and len({a["ip_hash"] for a in accesses}) == 1
    assert "127.0.0.1" not in json.dumps(accesses)
    # Accesses are audited, bounded like every unauthenticated event (one row a minute per IP).
    assert api.sql("SELECT count(*) AS n FROM audit_events WHERE action = 'share_link.accessed'")[0]["n"] == 1


def test_public_views_are_throttled_per_ip(build_api, users):
    api = build_api(RATE_LIMIT_PUBLIC_IP="2/minute")
    try:
        link = share(api, users.signed_in())
        statuses = [api.get(f"{PUBLIC}/{token_of(link)}").status for _ in range(3)]
        assert statuses == [200, 200, 429]
    finally:
        api.close()


def test_the_token_never_reaches_the_logs(api, users, caplog):
    link = share(api, users.signed_in())
    token = token_of(link)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        api.get(f"{PUBLIC}/{token}")
        api.get(f"{PUBLIC}/{'B' * 43}")
    lines = [JsonFormatter().format(record) for record in caplog.records]
    assert lines and not any(token in line or "B" * 43 in line for line in lines)
    paths = [record.path for record in caplog.records if getattr(record, "event", "") == "http.request"]
    assert paths == ["/api/v1/public/portfolio/[redacted]"] * 2
