"""The university (API.md "O"): org units, membership, curator scopes as object-level
authorisation (probed adversarially through every route), the review queue and history."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import review

API = "/api/v1"
ACH = f"{API}/achievements"
UNITS = f"{API}/org-units"


def create(api, session, title, **fields):
    body = {"title": title, "type": "olympiad", "date": "2025-05-01", **fields}
    response = api.post(ACH, token=session["token"], json=body)
    assert response.status == 201, response.text
    return response.json


def unit(api, admin, name, kind, parent_id):
    response = api.post(UNITS, token=admin["token"], json={"name": name, "kind": kind, "parent_id": parent_id})
    assert response.status == 201, response.text
    return response.json


def root_of(api, session):
    units = api.get(UNITS, token=session["token"]).json["items"]
    return next(u for u in units if u["kind"] == "university")


def member(api, admin, user, unit_id):
    response = api.patch(f"{API}/admin/users/{user['id']}", token=admin["token"], json={"org_unit_id": unit_id})
    assert response.status == 200, response.text
    return response.json


def set_scopes(api, admin, curator, *unit_ids):
    return api.put(f"{API}/admin/users/{curator['id']}/scopes", token=admin["token"],
                   json={"org_unit_ids": list(unit_ids)})


@pytest.fixture
def campus(api, users):
    """Two faculties with a group each, a student in each group, a curator of the first
    faculty, and one pending achievement per student."""
    admin = users.signed_in("admin")
    root = root_of(api, admin)
    f1 = unit(api, admin, "Faculty of Physics", "faculty", root["id"])
    f2 = unit(api, admin, "Faculty of Law", "faculty", root["id"])
    g1 = unit(api, admin, "PH-101", "group", f1["id"])
    g2 = unit(api, admin, "LW-201", "group", f2["id"])
    s1, s2 = users.signed_in(full_name="Physics Student"), users.signed_in(full_name="Law Student")
    member(api, admin, s1, g1["id"])
    member(api, admin, s2, g2["id"])
    curator = users.signed_in("curator", scoped=False, full_name="Physics Curator")
    assert set_scopes(api, admin, curator, f1["id"]).status == 200
    return {"admin": admin, "root": root, "f1": f1, "f2": f2, "g1": g1, "g2": g2, "s1": s1, "s2": s2,
            "curator": curator, "a1": create(api, s1, "Physics olympiad"), "a2": create(api, s2, "Moot court")}


# --- org units -------------------------------------------------------------------------------------

def test_units_nest_university_faculty_group(api, users, campus):
    admin, root, f1, g1 = campus["admin"], campus["root"], campus["f1"], campus["g1"]
    units = api.get(UNITS, token=campus["s1"]["token"]).json["items"]
    assert units[0] == {"id": root["id"], "name": root["name"], "kind": "university", "parent_id": None}
    assert {u["name"] for u in units} >= {"Faculty of Physics", "PH-101"}
    for body, field in [({"kind": "group", "parent_id": root["id"]}, "parent_id"),
                        ({"kind": "faculty", "parent_id": f1["id"]}, "parent_id"),
                        ({"kind": "group", "parent_id": g1["id"]}, "parent_id"),
                        ({"kind": "university", "parent_id": root["id"]}, "kind"),
                        ({"kind": "group", "parent_id": str(uuid.uuid4())}, "parent_id")]:
        response = api.post(UNITS, token=admin["token"], json={"name": "X", **body})
        assert response.status == 422, body
        assert field in {e["field"] for e in response.json["errors"]}
    assert api.post(UNITS, token=campus["s1"]["token"],
                    json={"name": "X", "kind": "faculty", "parent_id": root["id"]}).status == 403
    renamed = api.patch(f"{UNITS}/{root['id']}", token=admin["token"], json={"name": "State University"})
    assert renamed.status == 200 and renamed.json["name"] == "State University"


def test_units_in_use_cannot_be_deleted(api, campus):
    admin = campus["admin"]
    for unit_id in (campus["root"]["id"], campus["f1"]["id"], campus["g1"]["id"]):  # root, children, members
        response = api.delete(f"{UNITS}/{unit_id}", token=admin["token"])
        assert response.status == 409 and response.json["code"] == "unit_in_use"
    empty = unit(api, admin, "Empty group", "group", campus["f1"]["id"])
    assert api.delete(f"{UNITS}/{empty['id']}", token=admin["token"]).status == 204
    assert api.delete(f"{UNITS}/{empty['id']}", token=admin["token"]).status == 404
    actions = [r["action"] for r in api.sql("SELECT action FROM audit_events WHERE target_type = 'org_unit'")]
    assert actions.count("org_unit.created") == 5 and "org_unit.deleted" in actions


def test_membership_is_a_group_and_never_ends_a_session(api, campus):
    admin, s1 = campus["admin"], campus["s1"]
    wrong = api.patch(f"{API}/admin/users/{s1['id']}", token=admin["token"], json={"org_unit_id": campus["f1"]["id"]})
    assert wrong.status == 422 and wrong.json["errors"][0]["field"] == "org_unit_id"
    assert api.get(f"{API}/auth/me", token=s1["token"]).json["org_unit_id"] == campus["g1"]["id"]
    assert member(api, admin, s1, None)["org_unit_id"] is None
    assert api.get(f"{API}/auth/me", token=s1["token"]).status == 200  # the session lives on
    updates = api.sql("SELECT details FROM audit_events WHERE action = 'admin.user.updated'")
    assert any("org_unit_id" in str(row["details"]) for row in updates)


def test_scopes_are_for_curators_and_known_units(api, campus):
    admin, curator, s1 = campus["admin"], campus["curator"], campus["s1"]
    assert api.get(f"{API}/admin/users/{curator['id']}/scopes", token=admin["token"]).json == {
        "org_unit_ids": [campus["f1"]["id"]]}
    student = set_scopes(api, admin, s1, campus["f1"]["id"])
    assert student.status == 409 and student.json["code"] == "not_a_curator"
    unknown = set_scopes(api, admin, curator, str(uuid.uuid4()))
    assert unknown.status == 422 and unknown.json["errors"][0]["field"] == "org_unit_ids[0]"
    assert set_scopes(api, admin, curator, "not-a-uuid").status == 422
    assert api.get(f"{API}/admin/users/{curator['id']}/scopes", token=curator["token"]).status == 403
    assert api.sql("SELECT count(*) AS n FROM audit_events WHERE action = 'admin.user.scopes_updated'")[0]["n"] == 1


# --- scope is object-level authorisation -------------------------------------------------------------

def _probes(campus, achievement, owner, unit_id):
    """Every route through which a curator could reach someone's achievement."""
    path = f"{ACH}/{achievement['id']}"
    return [
        ("GET", path, None, {}),
        ("GET", f"{path}/reviews", None, {}),
        ("POST", f"{path}/review", {"decision": "approved"}, {"If-Match": f'"{achievement["id"]}.1"'}),
        ("PATCH", path, {"title": "Hijacked"}, {}),
        ("DELETE", path, None, {}),
        ("GET", f"{ACH}?owner={owner['id']}", None, {}),
        ("GET", f"{ACH}/stats?owner={owner['id']}", None, {}),
        ("GET", f"{ACH}/export?owner={owner['id']}", None, {}),
        ("GET", f"{ACH}/stats?org_unit={unit_id}", None, {}),
        ("GET", f"{API}/review-queue?org_unit={unit_id}", None, {}),
    ]


def test_a_curator_of_one_faculty_gets_404_for_the_other_on_every_route(api, campus):
    curator = campus["curator"]
    missing = api.get(f"{ACH}/{uuid.uuid4()}", token=curator["token"]).json
    for method, path, body, headers in _probes(campus, campus["a2"], campus["s2"], campus["f2"]["id"]):
        response = api.request(method, path, token=curator["token"], json=body, headers=headers)
        assert response.status == 404, (method, path, response.status)
        problem = response.json
        assert problem["code"] == "not_found" and problem["title"] == missing["title"], path
    # Nothing changed, and the probes were audited as refused access.
    assert api.get(f"{ACH}/{campus['a2']['id']}", token=campus["s2"]["token"]).json["title"] == "Moot court"
    reasons = [r["details"] for r in api.sql(
        "SELECT details FROM audit_events WHERE action = 'security.access_denied' AND actor_id = $1",
        uuid.UUID(curator["id"]))]
    assert sum("out_of_scope" in str(r) for r in reasons) >= 5


def test_lists_exports_stats_and_queue_cover_only_the_scope(api, campus):
    token = campus["curator"]["token"]
    listed = api.get(f"{ACH}?owner=any", token=token).json
    assert [i["id"] for i in listed["items"]] == [campus["a1"]["id"]] and listed["total"] == 1
    export = api.get(f"{ACH}/export?owner=any&format=json", token=token).json
    assert [i["id"] for i in export["items"]] == [campus["a1"]["id"]]
    assert api.get(f"{ACH}/stats?owner=any", token=token).json["total"] == 1
    assert api.get(f"{ACH}/stats?org_unit={campus['f1']['id']}", token=token).json["total"] == 1
    queue = api.get(f"{API}/review-queue", token=token).json
    assert [i["id"] for i in queue["items"]] == [campus["a1"]["id"]] and queue["total"] == 1


def test_the_curators_own_scope_works_on_every_route(api, campus):
    curator = campus["curator"]
    for method, path, body, headers in _probes(campus, campus["a1"], campus["s1"], campus["f1"]["id"]):
        response = api.request(method, path, token=curator["token"], json=body, headers=headers)
        expected = 403 if method in ("PATCH", "DELETE") else 200  # only the owner edits; admins delete
        assert response.status == expected, (method, path, response.status, response.text)


def test_a_curator_without_scopes_sees_no_one(api, users, campus):
    idle = users.signed_in("curator", scoped=False)
    assert api.get(f"{ACH}?owner=any", token=idle["token"]).json["items"] == []
    assert api.get(f"{ACH}/{campus['a1']['id']}", token=idle["token"]).status == 404
    assert api.get(f"{API}/review-queue", token=idle["token"]).json["total"] == 0


def test_scope_changes_apply_on_the_next_request(api, campus):
    admin, curator = campus["admin"], campus["curator"]
    assert set_scopes(api, admin, curator, campus["f2"]["id"]).status == 200
    assert api.get(f"{ACH}/{campus['a2']['id']}", token=curator["token"]).status == 200
    assert api.get(f"{ACH}/{campus['a1']['id']}", token=curator["token"]).status == 404


def test_university_scope_covers_members_of_no_group(api, users, campus):
    loner = users.signed_in()
    mine = create(api, loner, "No group yet")
    assert api.get(f"{ACH}/{mine['id']}", token=campus["curator"]["token"]).status == 404
    set_scopes(api, campus["admin"], campus["curator"], campus["root"]["id"])
    assert api.get(f"{ACH}/{mine['id']}", token=campus["curator"]["token"]).status == 200


def test_admins_reach_everyone_and_students_cannot_count_units(api, campus):
    admin = campus["admin"]
    assert api.get(f"{ACH}/stats?org_unit={campus['f2']['id']}", token=admin["token"]).json["total"] == 1
    assert api.get(f"{ACH}/{campus['a2']['id']}", token=admin["token"]).status == 200
    assert api.get(f"{ACH}/stats?org_unit={campus['f1']['id']}", token=campus["s1"]["token"]).status == 403
    assert api.get(f"{API}/review-queue", token=campus["s1"]["token"]).status == 403


# --- review queue and history ---------------------------------------------------------------------

def test_queue_is_oldest_first_paged_and_filtered(api, campus):
    s1, token = campus["s1"], campus["curator"]["token"]
    create(api, s1, "Conference talk", type="conference")
    create(api, s1, "Second olympiad")
    own = create(api, campus["curator"], "The curator's own")  # never in their own queue
    first = api.get(f"{API}/review-queue?limit=2", token=token).json
    assert first["total"] == 3 and len(first["items"]) == 2
    assert [i["title"] for i in first["items"]] == ["Physics olympiad", "Conference talk"]
    rest = api.get(f"{API}/review-queue?limit=2&cursor={first['next_cursor']}", token=token).json
    assert [i["title"] for i in rest["items"]] == ["Second olympiad"] and rest["next_cursor"] is None
    assert own["id"] not in {i["id"] for i in first["items"] + rest["items"]}
    assert api.get(f"{API}/review-queue?category=scientific", token=token).json["total"] == 1
    assert api.get(f"{API}/review-queue?type=olympiad&type=conference", token=token).json["total"] == 3
    review(api, campus["a1"]["id"], campus["curator"], decision="approved")
    assert api.get(f"{API}/review-queue", token=token).json["total"] == 2


def test_review_history_survives_edits(api, campus):
    s1, curator = campus["s1"], campus["curator"]
    a1 = campus["a1"]["id"]
    assert review(api, a1, curator, decision="rejected", comment="The diploma is unreadable").status == 200
    edited = api.patch(f"{ACH}/{a1}", token=s1["token"], json={"proof_url": "https://example.org/clear.pdf"})
    assert edited.json["status"] == "pending" and edited.json["review"] is None
    history = api.get(f"{ACH}/{a1}/reviews", token=s1["token"]).json["items"]
    assert history == [{"decision": "rejected", "comment": "The diploma is unreadable",
                        "reviewer_id": curator["id"], "reviewer_name": "Physics Curator",
                        "reviewed_at": history[0]["reviewed_at"], "version": 1}]
    approved = review(api, a1, curator, decision="approved")
    assert approved.status == 200 and approved.json["review"]["reviewer_name"] == "Physics Curator"
    listed = api.get(f"{ACH}?owner=any", token=curator["token"]).json["items"]
    assert [(i["owner_name"], i["type_name"]) for i in listed] == [("Physics Student", "Olympiad")]
    history = api.get(f"{ACH}/{a1}/reviews", token=s1["token"]).json["items"]
    assert [(h["decision"], h["version"]) for h in history] == [("approved", 3), ("rejected", 1)]
    assert api.get(f"{ACH}/{a1}/reviews", token=campus["s2"]["token"]).status == 404
