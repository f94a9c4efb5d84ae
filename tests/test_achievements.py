"""Achievements: validation, object-level authorization, caching, listing, batch, export, stats."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid

import pytest

from tests.conftest import review

URL = "/api/v1/achievements"
TODAY = dt.date.today()


def item(n: int = 0, **over) -> dict:
    base = {"title": f"Regional olympiad in mathematics #{n}", "type": "olympiad", "date": "2026-03-14",
            "proof_url": "https://example.org/diploma.pdf", "description": "Second place"}
    base.update(over)
    return base


@pytest.fixture
def student(users):
    return users.signed_in()


@pytest.fixture
def other(users):
    return users.signed_in()


def create(api, who, **over):
    response = api.post(URL, token=who["token"], json=item(**over))
    assert response.status == 201, response.text
    return response.json


# --- create and validation ----------------------------------------------------------------------

def test_create_returns_achievement_location_etag(api, student):
    response = api.post(URL, token=student["token"], json=item(title="  Spaced title  "))
    assert response.status == 201
    body = response.json
    assert set(body) == {"id", "owner_id", "title", "type", "category", "date", "proof_url", "description",
                         "status", "review", "version", "created_at", "updated_at", "owner_name", "type_name",
                         "level", "result"}
    # Display data, so a list renders without look-ups
    assert body["owner_name"] == student["full_name"] and body["type_name"] == "Olympiad"
    assert body["level"] is None and body["result"] is None
    assert body["title"] == "Spaced title" and body["category"] == "educational"
    assert body["status"] == "pending" and body["review"] is None and body["version"] == 1
    assert body["owner_id"] == student["id"]
    assert response.headers["location"] == f"{URL}/{body['id']}"
    assert response.headers["etag"]
    assert api.get(response.headers["location"], token=student["token"]).status == 200


@pytest.mark.parametrize("field,value", [
    ("id", str(uuid.uuid4())), ("owner_id", str(uuid.uuid4())), ("status", "approved"),
    ("review", {"decision": "approved"}), ("version", 7), ("created_at", "2020-01-01T00:00:00Z"),
    ("category", "sports"), ("reviewed_by", "x"), ("deleted", True),
])
def test_create_rejects_non_writable_fields(api, student, field, value):
    response = api.post(URL, token=student["token"], json=item(**{field: value}))
    assert response.status == 422
    assert any(e["field"] == field for e in response.json["errors"])
    assert api.sql("SELECT count(*) AS n FROM achievements")[0]["n"] == 0


@pytest.mark.parametrize("field,value", [
    ("title", ""), ("title", "   "), ("title", "x" * 201), ("title", 123), ("title", ["a"]),
    ("title", {"$ne": None}), ("title", "a\u0000b"), ("type", "no-such-type"), ("type", None),
    ("date", "2024-02-30"), ("date", "0000-01-01"), ("date", "1899-12-31"), ("date", "14.03.2026"),
    ("date", (TODAY + dt.timedelta(days=2)).isoformat()), ("date", 20240101),
    ("proof_url", "javascript:alert(1)"), ("proof_url", "JaVaScRiPt:alert(1)"),
    ("proof_url", " javascript:alert(1)"), ("proof_url", "data:text/html,<script>x</script>"),
    ("proof_url", "file:///etc/passwd"), ("proof_url", "ftp://example.org/x"),
    ("proof_url", "https://user:pass@example.org/x"), ("proof_url", "https://" + "a" * 2040 + ".org"),
    ("proof_url", "http://169.254.169.254/latest"), ("proof_url", "http://localhost:5432"),
    ("proof_url", "http://[::1]/"), ("proof_url", "http://2130706433/"), ("proof_url", "/relative"),
    ("proof_url", "https://"), ("description", "x" * 4001),
])
def test_create_invalid_fields_422(api, student, field, value):
    response = api.post(URL, token=student["token"], json=item(**{field: value}))
    assert response.status == 422, response.text
    assert response.json["errors"][0]["field"] == field


def test_missing_required_fields_named(api, student):
    response = api.post(URL, token=student["token"], json={"description": "only"})
    assert response.status == 422
    assert {e["field"] for e in response.json["errors"]} == {"title", "type", "date"}


def test_duplicate_is_409_with_existing_id(api, student, other):
    first = create(api, student, title="Same Title")
    response = api.post(URL, token=student["token"], json=item(title="  same title "))
    assert response.status == 409
    assert response.json["existing_id"] == first["id"]
    # another owner may record the same thing
    assert api.post(URL, token=other["token"], json=item(title="Same Title")).status == 201


def test_inactive_type_refused_for_new_allowed_when_kept(api, users, student):
    admin = users.signed_in("admin")
    kept = create(api, student, type="grant", title="Grant")
    assert api.patch("/api/v1/achievement-types/grant", token=admin["token"],
                     json={"is_active": False}).status == 200
    assert api.post(URL, token=student["token"], json=item(type="grant", title="New")).status == 422
    edit = api.patch(f"{URL}/{kept['id']}", token=student["token"], json={"title": "Grant renamed"})
    assert edit.status == 200 and edit.json["type"] == "grant"
    to_inactive = api.patch(f"{URL}/{create(api, student, title='Other')['id']}", token=student["token"],
                            json={"type": "grant"})
    assert to_inactive.status == 422


# --- object-level authorization -----------------------------------------------------------------

def test_students_cannot_touch_each_others_achievements(api, student, other):
    mine = create(api, student)
    path = f"{URL}/{mine['id']}"
    assert api.get(path, token=other["token"]).status == 404
    assert api.put(path, token=other["token"], json=item(title="hijack")).status == 404
    assert api.patch(path, token=other["token"], json={"title": "hijack"}).status == 404
    assert api.delete(path, token=other["token"]).status == 404
    assert api.post(f"{path}/review", token=other["token"], json={"decision": "approved"}).status == 403
    listed = api.get(URL, token=other["token"]).json
    assert listed["items"] == [] and listed["total"] == 0
    assert api.get(f"{URL}?owner={student['id']}", token=other["token"]).status == 403
    assert api.get(f"{URL}?user_id={student['id']}", token=other["token"]).status == 400
    assert api.get(f"{URL}/export?owner={student['id']}", token=other["token"]).status == 403
    assert api.get(f"{URL}/stats?owner={student['id']}", token=other["token"]).status == 403
    after = api.get(path, token=student["token"]).json
    assert after == {**mine, **{k: after[k] for k in ()}}
    denied = api.sql("SELECT actor_id::text, details FROM audit_events WHERE action = 'security.access_denied'")
    assert len(denied) >= 5 and all(row["actor_id"] == other["id"] for row in denied)
    # 404 for a foreign id is identical to 404 for an unknown id
    unknown = api.get(f"{URL}/{uuid.uuid4()}", token=other["token"])
    assert unknown.status == 404 and unknown.json["detail"] == api.get(path, token=other["token"]).json["detail"]


def test_staff_read_all_but_only_owner_edits(api, users, student):
    curator = users.signed_in("curator")
    admin = users.signed_in("admin")
    mine = create(api, student)
    path = f"{URL}/{mine['id']}"
    assert api.get(path, token=curator["token"]).status == 200
    assert api.patch(path, token=curator["token"], json={"title": "x"}).status == 403
    assert api.put(path, token=admin["token"], json=item(title="x")).status == 403
    assert api.delete(path, token=curator["token"]).status == 403
    assert api.get(f"{URL}?owner={student['id']}", token=curator["token"]).json["total"] == 1
    assert api.get(f"{URL}?owner=any", token=curator["token"]).json["total"] == 1
    assert api.delete(path, token=admin["token"]).status == 204
    assert api.get(path, token=student["token"]).status == 404


@pytest.mark.parametrize("bad", ["not-a-uuid", "1", "-1", "99999999999999999999", "%27%20OR%201=1--",
                                 "00000000-0000-0000-0000-00000000000g"])
def test_malformed_ids_are_404(api, student, bad):
    assert api.get(f"{URL}/{bad}", token=student["token"]).status == 404
    assert api.delete(f"{URL}/{bad}", token=student["token"]).status == 404


def test_owner_can_delete_then_gone(api, student):
    mine = create(api, student)
    assert api.delete(f"{URL}/{mine['id']}", token=student["token"]).status == 204
    assert api.get(f"{URL}/{mine['id']}", token=student["token"]).status == 404
    assert api.delete(f"{URL}/{mine['id']}", token=student["token"]).status == 404


# --- update, ETag, If-Match ---------------------------------------------------------------------

def test_put_replaces_and_bumps_version(api, student):
    mine = create(api, student)
    response = api.put(f"{URL}/{mine['id']}", token=student["token"],
                       json={"title": "New", "type": "publication", "date": "2025-01-02"})
    assert response.status == 200
    body = response.json
    assert body["title"] == "New" and body["category"] == "scientific"
    assert body["proof_url"] is None and body["description"] is None
    assert body["version"] == 2


def test_patch_partial_and_null_rules(api, student):
    mine = create(api, student)
    path = f"{URL}/{mine['id']}"
    response = api.patch(path, token=student["token"], json={"description": None})
    assert response.status == 200 and response.json["description"] is None
    assert response.json["title"] == mine["title"]
    assert api.patch(path, token=student["token"], json={"title": None}).status == 422
    assert api.patch(path, token=student["token"], json={"status": "approved"}).status == 422
    merge = api.patch(path, token=student["token"], content=b'{"title": "Merged"}',
                      headers={"Content-Type": "application/merge-patch+json"})
    assert merge.status == 200 and merge.json["title"] == "Merged"
    assert api.patch(path, token=student["token"], content=b'{"title": "x"}',
                     headers={"Content-Type": "text/plain"}).status == 415


def test_etag_if_none_match_and_if_match(api, student):
    mine = create(api, student)
    path = f"{URL}/{mine['id']}"
    first = api.get(path, token=student["token"])
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "private, no-cache"
    cached = api.get(path, token=student["token"], headers={"If-None-Match": etag})
    assert cached.status == 304 and cached.headers["etag"] == etag
    assert cached.headers["x-content-type-options"] == "nosniff"
    ok = api.patch(path, token=student["token"], json={"title": "v2"}, headers={"If-Match": etag})
    assert ok.status == 200 and ok.headers["etag"] != etag
    stale = api.patch(path, token=student["token"], json={"title": "v3"}, headers={"If-Match": etag})
    assert stale.status == 412
    assert api.put(path, token=student["token"], json=item(title="v3"), headers={"If-Match": etag}).status == 412
    assert api.get(path, token=student["token"]).json["title"] == "v2"
    assert api.get(path, token=student["token"], headers={"If-None-Match": etag}).status == 200


def test_edit_of_reviewed_achievement_returns_to_pending(api, users, student):
    curator = users.signed_in("curator")
    mine = create(api, student)
    path = f"{URL}/{mine['id']}"
    reviewed = review(api, mine["id"], curator, decision="approved")
    assert reviewed.status == 200 and reviewed.json["status"] == "approved"
    assert reviewed.json["review"]["reviewer_id"] == curator["id"]
    edited = api.patch(path, token=student["token"], json={"description": "more detail"})
    assert edited.json["status"] == "pending" and edited.json["review"] is None


# --- listing ------------------------------------------------------------------------------------

def test_list_filters_and_sorts(api, student):
    create(api, student, title="Beta", date="2024-05-01", type="olympiad")
    create(api, student, title="alpha", date="2025-06-01", type="publication")
    create(api, student, title="Gamma conference", date="2025-01-01", type="conference")
    token = student["token"]

    def titles(qs):
        response = api.get(f"{URL}?{qs}", token=token)
        assert response.status == 200, response.text
        return [i["title"] for i in response.json["items"]]

    assert titles("") == ["alpha", "Gamma conference", "Beta"]
    assert titles("sort=title") == ["alpha", "Beta", "Gamma conference"]
    assert titles("sort=-title") == ["Gamma conference", "Beta", "alpha"]
    assert titles("sort=date") == ["Beta", "Gamma conference", "alpha"]
    assert titles("type=olympiad&type=publication&sort=date") == ["Beta", "alpha"]
    assert titles("category=scientific&sort=title") == ["alpha", "Gamma conference"]
    assert titles("date_from=2025-01-01&date_to=2025-01-01") == ["Gamma conference"]
    assert titles("q=CONF") == ["Gamma conference"]
    assert titles("q=%25") == []
    assert titles("status=pending&sort=created_at") == ["Beta", "alpha", "Gamma conference"]
    assert api.get(f"{URL}?q=a", token=token).json["total"] == 3


@pytest.mark.parametrize("qs", ["limit=0", "limit=101", "limit=-1", "limit=abc", "limit=1e3",
                                "limit=10&limit=100000", "sort=owner__password_hash", "sort=password",
                                "date_from=2024-13-01", "cursor=garbage", "cursor=", "unknown=1",
                                "page_size=0", "offset=1000000000000", "status=done", "category=x",
                                "owner__email__startswith=a", "type=%27%20OR%201=1--"])
def test_list_bad_query_400(api, student, qs):
    response = api.get(f"{URL}?{qs}", token=student["token"])
    assert response.status == 400, qs
    assert response.headers["content-type"] == "application/problem+json"


def test_pagination_walks_every_row_once_under_concurrent_inserts(api, student):
    for n in range(25):
        create(api, student, n=n, date=f"2025-01-{n % 28 + 1:02d}")
    seen, cursor, pages = [], None, 0
    while True:
        qs = "limit=7&sort=-date" + (f"&cursor={cursor}" if cursor else "")
        body = api.get(f"{URL}?{qs}", token=student["token"]).json
        seen += [i["id"] for i in body["items"]]
        if pages == 0:  # rows arriving mid-walk, before and after the cursor position
            create(api, student, n=100, date="2025-01-28")
            create(api, student, n=101, date="2024-01-01")
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen))
    originals = {r["id"] for r in api.sql("SELECT id::text FROM achievements WHERE title NOT LIKE '%#10_'")}
    assert originals <= set(seen)


def test_a_page_past_the_end_still_reports_the_total(api, student, users):
    """A page carries its total in its rows; an empty later page (its rows deleted meanwhile)
    must still say how many match, for the student's own list and a curator's list alike."""
    curator = users.signed_in("curator")
    first, second = create(api, student, n=1, date="2025-02-01"), create(api, student, n=2, date="2025-01-01")
    own = api.get(f"{URL}?limit=1", token=student["token"]).json
    staff = api.get(f"{URL}?limit=1&owner=any", token=curator["token"]).json
    assert own["items"][0]["id"] == first["id"] and own["total"] == staff["total"] == 2
    api.sql("DELETE FROM achievements WHERE id = $1", uuid.UUID(second["id"]))
    for token, page in ((student["token"], own), (curator["token"], staff)):
        later = api.get(f"{URL}?limit=1{'&owner=any' if page is staff else ''}&cursor={page['next_cursor']}",
                        token=token).json
        assert later["items"] == [] and later["total"] == 1 and later["next_cursor"] is None


def test_cursor_from_other_sort_or_filter_refused(api, student):
    for n in range(3):
        create(api, student, n=n)
    cursor = api.get(f"{URL}?limit=1", token=student["token"]).json["next_cursor"]
    assert api.get(f"{URL}?limit=1&cursor={cursor}", token=student["token"]).status == 200
    assert api.get(f"{URL}?limit=1&sort=title&cursor={cursor}", token=student["token"]).status == 400
    tampered = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    assert api.get(f"{URL}?limit=1&cursor={tampered}", token=student["token"]).status == 400


def test_list_etag_304(api, student):
    create(api, student)
    first = api.get(URL, token=student["token"])
    etag = first.headers["etag"]
    assert api.get(URL, token=student["token"], headers={"If-None-Match": etag}).status == 304
    create(api, student, n=2)
    assert api.get(URL, token=student["token"], headers={"If-None-Match": etag}).status == 200


# --- batch --------------------------------------------------------------------------------------

def test_batch_creates_all_in_order(api, student):
    items = [item(n) for n in range(50)]
    response = api.post(f"{URL}/batch", token=student["token"], json={"items": items})
    assert response.status == 201
    assert response.json["created"] == 50
    rows = api.sql("SELECT id::text, title FROM achievements")
    by_id = {r["id"]: r["title"] for r in rows}
    assert [by_id[i] for i in response.json["ids"]] == [i["title"] for i in items]
    events = api.sql("SELECT details FROM audit_events WHERE action = 'achievement.batch_created'")
    assert len(events) == 1


def test_batch_all_or_nothing_on_invalid_item(api, student):
    items = [item(n) for n in range(20)]
    items[17]["date"] = "2024-02-30"
    items[3]["proof_url"] = "javascript:alert(1)"
    items[5]["type"] = "no-such-type"
    response = api.post(f"{URL}/batch", token=student["token"], json={"items": items})
    assert response.status == 422
    fields = {e["field"] for e in response.json["errors"]}
    assert {"items[17].date", "items[3].proof_url"} <= fields
    assert api.sql("SELECT count(*) AS n FROM achievements")[0]["n"] == 0
    only_type = [item(n) for n in range(3)]
    only_type[2]["type"] = "no-such-type"
    response = api.post(f"{URL}/batch", token=student["token"], json={"items": only_type})
    assert response.status == 422 and response.json["errors"][0]["field"] == "items[2].type"


def test_batch_duplicates_inside_and_against_store(api, student):
    existing = create(api, student, n=1)
    items = [item(0), item(1), item(2), item(0, title="  REGIONAL olympiad in mathematics #0 ")]
    response = api.post(f"{URL}/batch", token=student["token"], json={"items": items})
    assert response.status == 409
    assert response.json["duplicates"] == [0, 1, 3]
    assert response.json["existing_ids"] == [existing["id"]]
    assert api.sql("SELECT count(*) AS n FROM achievements")[0]["n"] == 1


@pytest.mark.parametrize("body", [{"items": []}, {"items": "x"}, {}, {"items": [{}], "extra": 1}])
def test_batch_shape_422(api, student, body):
    assert api.post(f"{URL}/batch", token=student["token"], json=body).status == 422


def test_batch_of_5000_in_one_request(api, student):
    items = [item(n) for n in range(5000)]
    response = api.post(f"{URL}/batch", token=student["token"], json={"items": items})
    assert response.status == 201 and response.json["created"] == 5000
    too_many = api.post(f"{URL}/batch", token=student["token"], json={"items": [item(n) for n in range(5001)]})
    assert too_many.status == 422


# --- export and stats ---------------------------------------------------------------------------

def test_export_csv_neutralises_formulas(api, student):
    create(api, student, title="=HYPERLINK(\"http://evil\")", description="+cmd|' /C calc'!A0")
    create(api, student, title="@SUM(1)", n=2, description="-2+3")
    create(api, student, title="Plain", n=3, type="volunteering")
    response = api.get(f"{URL}/export", token=student["token"])
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["id", "title", "type", "category", "date", "proof_url", "description", "status",
                       "created_at", "updated_at"]
    cells = [cell for row in rows[1:] for cell in row]
    assert len(rows) == 4
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells)
    assert "'=HYPERLINK(\"http://evil\")" in cells
    filtered = api.get(f"{URL}/export?category=social", token=student["token"])
    assert len(list(csv.reader(io.StringIO(filtered.text)))) == 2


def test_export_json_and_bad_format(api, student, other):
    create(api, student)
    response = api.get(f"{URL}/export?format=json", token=student["token"])
    assert response.status == 200 and len(response.json["items"]) == 1
    assert response.json["items"][0]["owner_id"] == student["id"]
    assert api.get(f"{URL}/export?format=json", token=other["token"]).json == {"items": []}
    assert api.get(f"{URL}/export?format=xml", token=student["token"]).status == 400


def test_stats_counts(api, users, student):
    curator = users.signed_in("curator")
    a = create(api, student, date="2025-03-01")
    create(api, student, n=2, type="publication", date="2026-01-01")
    create(api, student, n=3, type="sports-competition", date="2026-02-01")
    review(api, a["id"], curator, decision="rejected", comment="no proof")
    body = api.get(f"{URL}/stats", token=student["token"]).json
    assert body["total"] == 3
    assert body["by_category"] == {"educational": 1, "scientific": 1, "creative": 0, "social": 0, "sports": 1}
    assert body["by_status"] == {"pending": 2, "approved": 0, "rejected": 1}
    assert body["by_year"] == {"2025": 1, "2026": 2}
    staff = api.get(f"{URL}/stats?owner={student['id']}", token=curator["token"]).json
    assert staff["total"] == 3
    assert api.get(f"{URL}/stats", token=curator["token"]).json["total"] == 0


def test_concurrent_identical_creates_one_wins(api, student):
    import asyncio

    import httpx

    async def race():
        base = f"http://127.0.0.1:{api.client.port}"
        async with httpx.AsyncClient(base_url=base) as client:
            headers = {"Authorization": f"Bearer {student['token']}"}
            return await asyncio.gather(*(client.post(URL, json=item(title="Race"), headers=headers)
                                          for _ in range(6)))

    statuses = sorted(r.status_code for r in api.run(race()))
    assert statuses == [201] + [409] * 5
    assert api.sql("SELECT count(*) AS n FROM achievements")[0]["n"] == 1
