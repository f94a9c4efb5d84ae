"""The pure rules, tested directly (milliseconds, no database, no HTTP): who may do what,
proof URLs and dates, ETags and preconditions, text hygiene, per-IP limits."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from models.enums import Role
from service.achievements.exports import neutralise
from service.achievements.rules import (
    Preconditions,
    authorize,
    check_date,
    check_proof_url,
    etag_matches,
    etag_of,
    list_owner,
    none_match,
)
from service.context import CurrentUser
from service.errors import Forbidden, NotFound, PreconditionFailed, PreconditionRequired
from service.passwords import password_problem
from service.text import is_blank


def user(role: Role = Role.STUDENT) -> CurrentUser:
    return CurrentUser(id=uuid.uuid4(), email="u@example.org", full_name="U", role=role, is_active=True,
                       created_at=dt.datetime.now(dt.UTC), session_id=uuid.uuid4())


# --- authorize -------------------------------------------------------------------------------------

@pytest.mark.parametrize("action", ["read", "edit", "delete"])
def test_owner_may_read_edit_delete(action):
    me = user()
    authorize(me, me.id, action)


def test_nobody_reviews_their_own():
    me = user(Role.CURATOR)
    with pytest.raises(Forbidden) as refused:
        authorize(me, me.id, "review")
    assert refused.value.denied_reason == "own_review"


@pytest.mark.parametrize("action", ["read", "edit", "delete", "review"])
def test_a_student_never_learns_a_foreign_achievement_exists(action):
    with pytest.raises(NotFound) as refused:
        authorize(user(), uuid.uuid4(), action)
    assert refused.value.denied_reason == "not_owner"


@pytest.mark.parametrize("role, action, allowed", [
    (Role.CURATOR, "read", True), (Role.CURATOR, "review", True), (Role.CURATOR, "edit", False),
    (Role.CURATOR, "delete", False), (Role.ADMIN, "delete", True), (Role.ADMIN, "edit", False),
])
def test_staff_rights_on_foreign_achievements(role, action, allowed):
    if allowed:
        authorize(user(role), uuid.uuid4(), action)
    else:
        with pytest.raises(Forbidden):
            authorize(user(role), uuid.uuid4(), action)


def test_missing_is_404_for_everyone():
    for role in Role:
        with pytest.raises(NotFound):
            authorize(user(role), None, "read")


def test_list_owner():
    student, curator, other = user(), user(Role.CURATOR), uuid.uuid4()
    assert list_owner(student, None) == student.id
    with pytest.raises(Forbidden):
        list_owner(student, other)
    assert list_owner(curator, other) == other
    assert list_owner(curator, "any") is None


# --- proof URLs and dates --------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["https://example.org/diploma.pdf", "http://olympiad.example.com/r?id=42",
                                 "https://xn--80ak6aa92e.xn--p1ai/a", "https://93.184.216.34/x"])
def test_public_http_urls_pass(url):
    assert check_proof_url(url) == url


@pytest.mark.parametrize("url", [
    "javascript:alert(1)", "data:text/html,x", "file:///etc/passwd", "ftp://example.org/x",
    "https://user:pw@example.org/", "https://localhost/x", "http://printer.local/", "http://169.254.169.254/",
    "http://10.0.0.1/", "http://[::1]/", "http://2130706433/", "http://0x7f000001/", "https://intranet/",
    "https://example.org/a b", "//example.org/x", "https://example.org:0/", "https://" + "a" * 2050 + ".org",
])
def test_unsafe_or_useless_urls_are_refused(url):
    with pytest.raises(ValueError):
        check_proof_url(url)


def test_dates_from_1900_until_today_anywhere_on_earth():
    assert check_date(dt.date(1900, 1, 1))
    assert check_date((dt.datetime.now(dt.UTC) + dt.timedelta(hours=13)).date())
    for bad in (dt.date(1899, 12, 31), dt.date.today() + dt.timedelta(days=2)):
        with pytest.raises(ValueError):
            check_date(bad)


# --- ETags and preconditions ----------------------------------------------------------------------------

def test_etag_matching():
    etag = etag_of(uuid.UUID(int=1), 3)
    assert etag_matches(None, etag) and etag_matches("*", etag) and etag_matches(f'"x", {etag}', etag)
    assert not etag_matches('"other"', etag) and not etag_matches(f"W/{etag}", etag)  # If-Match is strong
    assert none_match(f"W/{etag}", etag) and none_match("*", etag) and not none_match(None, etag)


def test_preconditions():
    etag = etag_of(uuid.UUID(int=1), 3)
    Preconditions().check(etag)
    Preconditions(if_match=etag).check(etag, require_match=True)
    Preconditions(if_none_match='"other"').check(etag)
    for failing in (Preconditions(if_match='"stale"'), Preconditions(if_none_match="*"),
                    Preconditions(if_none_match=etag)):
        with pytest.raises(PreconditionFailed):
            failing.check(etag)
    for missing in (Preconditions(), Preconditions(if_match="*")):
        with pytest.raises(PreconditionRequired):
            missing.check(etag, require_match=True)


# --- text, passwords, spreadsheets -----------------------------------------------------------------------

@pytest.mark.parametrize("text, blank", [("", True), ("  \t", True), ("\u200b\u2060\ufeff", True),
                                         ("\u3164\u00a0", True), ("a", False), ("\u0301x", False),
                                         ("Ω", False)])
def test_is_blank(text, blank):
    assert is_blank(text) is blank


def test_password_rules_count_characters_after_nfc():
    assert password_problem("e\u0301" * 4).code == "too_short"
    assert password_problem("e\u0301" * 8) is None
    assert password_problem("\u200b" * 10).code == "blank"
    assert password_problem("password123").code == "too_common"
    assert password_problem("ann-lovelace-1815", ("ann-lovelace-1815",)).code == "too_common"
    assert password_problem("correct horse battery staple") is None


@pytest.mark.parametrize("value, cell", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@x", "'@x"), ("\tx", "'\tx"), ("plain", "plain"),
    ("Prize;=cmd", "Prize;'=cmd"), ("a,-b", "a,'-b"), ("a, -b", "a, -b"), (None, ""),
])
def test_csv_neutralisation(value, cell):
    assert neutralise(value) == cell


def test_every_field_error_has_a_code():
    from blueprints.achievements import AchievementCreate
    from service.platform.validation import validate_all

    _, errors = validate_all(AchievementCreate, {
        "title": " ", "type": "Bad Slug", "date": "2999-01-01", "proof_url": "javascript:alert(1)",
        "description": "a\u202eb", "extra": 1})
    codes = {error["field"]: error["code"] for error in errors}
    assert codes == {"title": "required", "type": "invalid_format", "date": "in_future", "proof_url": "invalid_url",
                     "description": "invalid_characters", "extra": "unknown_field"}
    _, missing = validate_all(AchievementCreate, {"title": "x" * 201})
    assert {e["field"]: e["code"] for e in missing} == {"title": "too_long", "type": "required", "date": "required"}
