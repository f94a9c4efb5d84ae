"""Levels, results and the scholarship rating (API.md "S"): each scoring rule observable on its
own (the most specific rule wins, caps, the period, the reasons), the rating's ranks, ties and
eligibility, and the SQL rating agreeing with the per-student explanation."""

from __future__ import annotations

import datetime as dt
import io
import uuid

import openpyxl
import pytest

from service.scoring import eligible_count, explain
from tests.conftest import review

API = "/api/v1"
ACH = f"{API}/achievements"
RULE_SETS = f"{API}/scoring/rule-sets"
D = dt.date


def a(date="2025-03-01", status="approved", category="educational", type_="olympiad", level=None, result=None):
    return {"id": uuid.uuid4(), "date": D.fromisoformat(date), "status": status, "category": category,
            "type": type_, "level": level, "result": result}


PERIOD = (D(2025, 1, 1), D(2025, 12, 31))


# --- the rules, one at a time ----------------------------------------------------------------------

def test_type_beats_category_and_level_beats_no_level():
    rules = [{"category": "educational", "points": 5},
             {"type": "olympiad", "points": 3},
             {"type": "olympiad", "level": "national", "points": 2}]
    plain, national = a(), a(level="national")
    scores = explain(rules, PERIOD, [plain, national])
    assert [(s.points, s.rule_index) for s in scores] == [(3, 1), (2, 2)]


def test_ties_go_to_the_higher_points():
    rules = [{"category": "educational", "points": 4}, {"category": "educational", "points": 9}]
    assert explain(rules, PERIOD, [a()])[0].rule_index == 1


def test_caps_count_the_earliest_first():
    rules = [{"type": "publication", "points": 10, "max_items": 2}]
    papers = [a(date=f"2025-0{m}-01", category="scientific", type_="publication") for m in (5, 2, 9)]
    scores = {s.achievement_id: s for s in explain(rules, PERIOD, papers)}
    assert [scores[p["id"]].reason for p in papers] == [None, None, "over_cap"]  # September is the third by date


def test_every_zero_has_a_reason():
    rules = [{"type": "olympiad", "points": 5}]
    items = [a(status="pending"), a(status="rejected"), a(date="2024-12-31"), a(type_="grant", category="scientific")]
    assert [s.reason for s in explain(rules, PERIOD, items)] == ["not_approved", "not_approved", "out_of_period",
                                                                 "no_rule"]
    assert all(s.points == 0 for s in explain(rules, PERIOD, items))


@pytest.mark.parametrize("points, share, eligible", [
    ([10, 9, 8, 7, 6, 5, 4, 3, 2, 1], 0.3, 3),
    ([10, 9, 9, 7, 6, 5, 4, 3, 2, 1], 0.2, 1),  # the tie at the line is left out whole
    ([9, 9, 9, 7, 6, 5, 4, 3, 2, 1], 0.2, 0),
    ([5, 0, 0, 0], 1.0, 1),  # nobody with 0 points
    ([3, 2, 1], 0.1, 0),
])
def test_eligibility_never_splits_a_tie(points, share, eligible):
    assert eligible_count(points, share) == eligible


# --- over HTTP ---------------------------------------------------------------------------------------

@pytest.fixture
def setup(api, users):
    admin, curator = users.signed_in("admin"), users.signed_in("curator")
    root = next(u for u in api.get(f"{API}/org-units", token=admin["token"]).json["items"] if u["kind"] == "university")
    faculty = api.post(f"{API}/org-units", token=admin["token"],
                       json={"name": "Physics", "kind": "faculty", "parent_id": root["id"]}).json
    group = api.post(f"{API}/org-units", token=admin["token"],
                     json={"name": "PH-1", "kind": "group", "parent_id": faculty["id"]}).json
    students = []
    for name in ("Boris", "Anna", "Chen"):
        student = users.signed_in(full_name=name)
        api.patch(f"{API}/admin/users/{student['id']}", token=admin["token"], json={"org_unit_id": group["id"]})
        students.append(student)
    return {"admin": admin, "curator": curator, "faculty": faculty, "group": group, "students": students}


def record(api, session, curator, title, approve=True, **fields):
    body = {"title": title, "type": "olympiad", "date": "2025-03-01", **fields}
    created = api.post(ACH, token=session["token"], json=body)
    assert created.status == 201, created.text
    if approve:
        assert review(api, created.json["id"], curator, decision="approved").status == 200
    return created.json


def rule_set(api, admin, rules, name="PGAS 2025", **period):
    body = {"name": name, "period_from": period.get("period_from", "2025-01-01"),
            "period_to": period.get("period_to", "2025-12-31"), "rules": rules}
    return api.post(RULE_SETS, token=admin["token"], json=body)


def test_levels_and_results_are_seeded_catalogues(api, users):
    admin, student = users.signed_in("admin"), users.signed_in()
    levels = api.get(f"{API}/levels", token=student["token"]).json["items"]
    assert [level["slug"] for level in levels] == ["faculty", "university", "city", "regional", "national",
                                                   "international"]
    assert [r["slug"] for r in api.get(f"{API}/results", token=student["token"]).json["items"]] == [
        "participant", "prize", "winner"]
    assert api.post(f"{API}/levels", token=student["token"], json={"slug": "x", "name": "X", "rank": 9}).status == 403
    assert api.patch(f"{API}/levels/city", token=admin["token"], json={"is_active": False}).status == 200
    refused = api.post(ACH, token=student["token"], json={"title": "City cup", "type": "olympiad",
                                                          "date": "2025-01-01", "level": "city", "result": "champ"})
    assert refused.status == 422
    assert {e["field"]: e["code"] for e in refused.json["errors"]} == {"level": "inactive_level",
                                                                       "result": "unknown_result"}
    ok = api.post(ACH, token=student["token"], json={"title": "National cup", "type": "olympiad",
                                                     "date": "2025-01-01", "level": "national", "result": "winner"})
    assert ok.status == 201 and (ok.json["level"], ok.json["result"]) == ("national", "winner")


def test_rule_sets_are_validated_and_frozen_once_published(api, setup):
    admin = setup["admin"]
    bad = rule_set(api, admin, [{"type": "no-such", "points": 1}, {"points": -1}, {"level": "galactic", "points": 1},
                                {"category": "educational", "points": 1, "max_items": -2}],
                   period_from="2025-06-01", period_to="2025-01-01")
    assert bad.status == 422
    fields = {e["field"] for e in bad.json["errors"]}
    assert {"rules[1].points", "rules[3].max_items"} <= fields  # syntax errors first (one 422 each time)
    bad = rule_set(api, admin, [{"type": "no-such", "points": 1}, {"level": "galactic", "points": 1}],
                   period_from="2025-06-01", period_to="2025-01-01")
    assert {e["field"] for e in bad.json["errors"]} == {"period_to", "rules[0].type", "rules[1].level"}
    draft = rule_set(api, admin, [{"category": "educational", "points": 1}])
    assert draft.status == 201 and draft.json["status"] == "draft" and draft.json["published_at"] is None
    path = f"{RULE_SETS}/{draft.json['id']}"
    body = {"name": "PGAS 2025 v2", "period_from": "2025-01-01", "period_to": "2025-12-31",
            "rules": [{"category": "educational", "points": 2}]}
    assert api.put(path, token=admin["token"], json=body).json["rules"] == [{"category": "educational", "points": 2}]
    published = api.post(f"{path}/publish", token=admin["token"])
    assert published.status == 200 and published.json["status"] == "published"
    frozen = api.put(path, token=admin["token"], json=body)
    assert frozen.status == 409 and frozen.json["code"] == "rule_set_published"


def test_scores_explain_themselves_and_the_rating_agrees(api, setup):
    admin, curator = setup["admin"], setup["curator"]
    boris, anna, _chen = setup["students"]
    record(api, boris, curator, "National olympiad", level="national", result="winner")
    record(api, boris, curator, "Regional olympiad", level="regional")
    record(api, boris, curator, "Paper 1", type="publication", date="2025-02-01")
    record(api, boris, curator, "Paper 2", type="publication", date="2025-03-01")
    record(api, boris, curator, "Paper 3", type="publication", date="2025-04-01")
    record(api, anna, curator, "Paper A", type="publication", date="2025-02-01")
    record(api, anna, curator, "Old olympiad", date="2024-05-01")
    pending = record(api, anna, curator, "Pending olympiad", approve=False)
    rules = [{"category": "educational", "points": 2},
             {"type": "olympiad", "level": "national", "result": "winner", "points": 10},
             {"type": "publication", "points": 5, "max_items": 2}]
    created = rule_set(api, admin, rules).json
    api.post(f"{RULE_SETS}/{created['id']}/publish", token=admin["token"])
    mine = api.get(f"{API}/me/score?rule_set={created['id']}", token=boris["token"]).json
    assert mine["total"] == 10 + 2 + 5 + 5
    assert sorted((i["points"], i["rule_index"], i["reason"]) for i in mine["items"]) == [
        (0, 2, "over_cap"), (2, 0, None), (5, 2, None), (5, 2, None), (10, 1, None)]
    why = api.get(f"{ACH}/{pending['id']}/score?rule_set={created['id']}", token=anna["token"]).json
    assert why == {"points": 0, "rule_index": None, "rule_set_id": created["id"], "reason": "not_approved"}

    rating = api.get(f"{API}/ratings?rule_set={created['id']}&org_unit={setup['faculty']['id']}&top_share=0.34",
                     token=admin["token"]).json
    assert [(r["rank"], r["full_name"], r["points"], r["counted"], r["eligible"]) for r in rating["items"]] == [
        (1, "Boris", 22, 4, True), (2, "Anna", 5, 1, False), (3, "Chen", 0, 0, False)]
    assert rating["items"][0]["by_category"] == {"educational": 12, "scientific": 10, "creative": 0, "social": 0,
                                                 "sports": 0}
    # The SQL rating and the per-student explanation agree.
    anna_total = api.get(f"{API}/me/score?rule_set={created['id']}", token=anna["token"]).json["total"]
    assert anna_total == rating["items"][1]["points"]
    # A newer rule set changes nothing in this one's rating.
    newer = rule_set(api, admin, [{"category": "educational", "points": 100}], name="PGAS 2026").json
    api.post(f"{RULE_SETS}/{newer['id']}/publish", token=admin["token"])
    again = api.get(f"{API}/ratings?rule_set={created['id']}&org_unit={setup['faculty']['id']}&top_share=0.34",
                    token=admin["token"]).json
    assert again == rating


def test_rating_access_and_downloads(api, users, setup):
    admin, curator = setup["admin"], setup["curator"]
    boris = setup["students"][0]
    record(api, boris, curator, "=HYPERLINK(\"x\") olympiad")
    created = rule_set(api, admin, [{"category": "educational", "points": 3}]).json
    query = f"rule_set={created['id']}&org_unit={setup['faculty']['id']}"
    assert api.get(f"{API}/ratings?{query}", token=boris["token"]).status == 403
    outsider = users.signed_in("curator", scoped=False)
    assert api.get(f"{API}/ratings?{query}", token=outsider["token"]).status == 404
    assert api.get(f"{API}/ratings?rule_set={created['id']}", token=admin["token"]).status == 400
    assert api.get(f"{API}/ratings?{query}&top_share=2", token=admin["token"]).status == 400
    csv_text = api.get(f"{API}/ratings?{query}&format=csv", token=curator["token"]).text
    assert csv_text.splitlines()[0] == ('"rank","full_name","org_unit","points","educational","scientific",'
                                        '"creative","social","sports","counted","eligible"')
    assert '"Test User","PH-1","3"' in csv_text or '"Boris","PH-1","3"' in csv_text
    sheet = api.get(f"{API}/ratings?{query}&format=xlsx", token=curator["token"])
    rows = list(openpyxl.load_workbook(io.BytesIO(sheet.body)).active.iter_rows(values_only=True))
    assert rows[0][0] == "rank" and rows[1][1] == "Boris" and rows[1][3] == 3
    # Drafts are the staff's: a student does not see them.
    assert api.get(f"{API}/me/score?rule_set={created['id']}", token=boris["token"]).status == 404
