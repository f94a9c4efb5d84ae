"""Response models (``blueprints/schemas.py``): one declaration serialises the bodies and is
the spec's component, and it is the allow-list of what leaves the server."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from pydantic import ValidationError

from blueprints import schemas
from service.platform import views

USER_ROW = {
    "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "email": "a@example.org",
    "full_name": "Анна Петрова",
    "role": "student",
    "is_active": True,
    "created_at": dt.datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=dt.UTC),
    "org_unit_id": None,
}


@pytest.fixture
def unchecked(monkeypatch):
    """Serialise as production does (the suite otherwise validates every body first)."""
    monkeypatch.setattr(views, "CHECKED", False)


def test_a_body_serialises_ids_times_and_dates_as_the_contract_writes_them(unchecked):
    body = json.loads(schemas.USER.dump(USER_ROW))
    assert body == {"id": "12345678-1234-5678-1234-567812345678", "email": "a@example.org",
                    "full_name": "Анна Петрова", "role": "student", "is_active": True,
                    "created_at": "2026-01-02T03:04:05.006000Z", "org_unit_id": None}
    day = json.loads(schemas.PORTFOLIO.dump({"owner_name": "A", "org_unit": None, "items": [
        {"title": "T", "type_name": "Олимпиада", "category": "scientific", "date": dt.date(2026, 3, 1),
         "level": None, "result": None, "proof_url": None}]}))
    assert day["items"][0]["date"] == "2026-03-01"


def test_a_key_the_model_does_not_declare_never_leaves_the_server(unchecked):
    leaky = {**USER_ROW, "password_hash": "$2b$12$secret", "session_id": uuid.uuid4()}
    body = json.loads(schemas.USER.dump(leaky))
    assert set(body) == set(schemas.User.__annotations__)
    assert "secret" not in schemas.USER.dump(leaky).decode()


def test_under_test_a_body_that_breaks_its_model_fails_loudly():
    assert views.CHECKED  # tests/conftest.py
    with pytest.raises(ValidationError):
        schemas.USER.dump({**USER_ROW, "password_hash": "x"})
    with pytest.raises(ValidationError):
        schemas.USER.dump({k: v for k, v in USER_ROW.items() if k != "email"})


def test_whole_points_stay_whole_numbers(unchecked):
    body = json.loads(schemas.SCORE.dump({"points": 5, "rule_index": 0, "rule_set_id": uuid.uuid4(),
                                          "reason": None}))
    assert body["points"] == 5 and isinstance(body["points"], int)
    assert json.loads(schemas.SCORE.dump({"points": 2.5, "rule_index": None, "rule_set_id": uuid.uuid4(),
                                          "reason": "no_rule"}))["points"] == 2.5


def test_the_schema_is_the_models_own():
    schema = schemas.ACHIEVEMENT.schema
    assert schema["title"] == "Achievement" and schema["additionalProperties"] is False
    assert schema["required"] == list(schemas.Achievement.__annotations__)
    properties = schema["properties"]
    assert all("title" not in p for name, p in properties.items() if name not in ("category", "status"))
    assert properties["proof_url"] == {"type": ["string", "null"]}
    assert properties["created_at"] == {"type": "string", "format": "date-time"}
    assert properties["category"]["title"] == "Category"  # becomes the one named enum
    review = properties["review"]["anyOf"]
    assert review[0]["title"] == "Review" and review[1] == {"type": "null"}


def test_every_json_success_response_of_the_spec_is_a_named_component(api):
    spec = api.get("/docs/openapi.json").json
    unnamed = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                media = (response.get("content") or {}).get("application/json")
                if status.startswith("2") and media and "$ref" not in media["schema"]:
                    unnamed.append((method, path, status))
    assert unnamed == []
    names = set(spec["components"]["schemas"])
    assert {"Achievement", "AchievementPage", "User", "TokenResponse", "ReviewHistoryEntry", "RatingRow",
            "Category", "Status"} <= names


def test_an_answer_on_the_wire_is_what_its_model_says(api, users):
    student = users.signed_in(full_name="Анна Петрова")
    created = api.post("/api/v1/achievements", token=student["token"],
                       json={"title": "Олимпиада", "type": "olympiad", "date": "2026-03-01"})
    assert created.status == 201, created.text
    body = created.json
    assert list(body) == list(schemas.Achievement.__annotations__)
    assert body["created_at"].endswith("Z") and uuid.UUID(body["id"]) and body["date"] == "2026-03-01"
    assert body["owner_name"] == "Анна Петрова" and body["review"] is None


def test_a_problem_quoting_undecodable_request_bytes_is_still_a_problem_document(api):
    response = api.get("/.well-known/jwks.json?%FF%FE=1")
    assert response.status == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json
    assert body["code"] == "bad_request" and "\ufffd" in body["detail"]
