"""Auth: registration, login, JWT verification, refresh rotation and revocation."""

from __future__ import annotations

import base64
import json
import time
import uuid

import jwt
import pytest

from tests.conftest import PASSWORD, SECRET, Users, refresh_cookie, set_cookie_header

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/auth/me"
PASSWORD_URL = "/api/v1/auth/password"
USER_KEYS = {"id", "email", "full_name", "role", "is_active", "created_at", "org_unit_id"}


def register(api, email, password=PASSWORD, full_name="Ann Student", **extra):
    return api.post(REGISTER, json={"email": email, "password": password, "full_name": full_name, **extra})


def login(api, email, password=PASSWORD, **kw):
    return api.post(LOGIN, json={"email": email, "password": password}, **kw)


# --- registration -------------------------------------------------------------------------------

def test_register_returns_user_without_secrets(api):
    response = register(api, "  Ann.Student@Example.ORG ", full_name="  Ann Student  ")
    assert response.status == 201
    body = response.json
    assert set(body) == USER_KEYS
    assert body["email"] == "ann.student@example.org"
    assert body["full_name"] == "Ann Student"
    assert body["role"] == "student" and body["is_active"] is True
    assert body["created_at"].endswith("Z")
    assert uuid.UUID(body["id"]).version == 4
    assert response.headers["cache-control"] == "no-store"
    stored = api.sql("SELECT password_hash FROM users WHERE email = $1", "ann.student@example.org")
    assert stored[0]["password_hash"].startswith("$2b$04$")


def test_register_duplicate_email_case_insensitive_409(api):
    assert register(api, "dup@example.org").status == 201
    response = register(api, "DUP@example.org")
    assert response.status == 409
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("field,value", [
    ("role", "admin"), ("is_active", False), ("id", str(uuid.uuid4())), ("is_staff", True),
])
def test_register_rejects_mass_assignment(api, field, value):
    response = register(api, f"mass-{field}@example.org", **{field: value})
    assert response.status == 422
    assert {"field": field, "message": "is not an allowed field", "code": "unknown_field"} in response.json["errors"]
    assert api.sql("SELECT count(*) AS n FROM users")[0]["n"] == 0


@pytest.mark.parametrize("password,status", [
    ("short7!", 422),                      # 7 characters
    ("a" * 72 + "X", 201),                 # 73 bytes: no truncation, no error
    ("€" * 25, 201),                       # 25 characters, 75 bytes
    ("пароль-" * 14, 201),                 # 98 Cyrillic-heavy characters
    ("my long passphrase with spaces " * 2, 201),
    ("x" * 257, 422),                      # over 256 characters
    ("password123", 422),                  # common
    ("123456789012", 422),                 # digits only
    ("achievementjournal2025", 422),       # the service's own name
    ("quietlilacriver", 201),              # 15 lower-case letters, not common
])
def test_password_policy(api, password, status):
    response = register(api, f"pw-{uuid.uuid4().hex[:8]}@example.org", password=password)
    assert response.status == status, response.text
    if status == 422:
        assert response.json["errors"][0]["field"] == "password"
        assert password not in response.text


@pytest.mark.parametrize("body", [
    {"email": "a@example.org", "password": PASSWORD},
    {"email": "not-an-email", "password": PASSWORD, "full_name": "A"},
    {"email": "a@example.org", "password": PASSWORD, "full_name": "   "},
    {"email": "a@example.org", "password": PASSWORD, "full_name": "x" * 201},
    {"email": 123, "password": PASSWORD, "full_name": "A"},
    {"email": "a@example.org", "password": {"$ne": None}, "full_name": "A"},
    {"email": "a@example.org", "password": PASSWORD, "full_name": "A\u0000B"},
    {"email": "a" * 250 + "@example.org", "password": PASSWORD, "full_name": "A"},
    {"email": "a@example.org*", "password": PASSWORD, "full_name": "A"},
    {"email": "a@b@example.org", "password": PASSWORD, "full_name": "A"},
    {"email": "a@example", "password": PASSWORD, "full_name": "A"},
    {"email": "a@-example.org", "password": PASSWORD, "full_name": "A"},
    {"email": "a@example.org", "password": PASSWORD, "full_name": "\tA"},
])
def test_register_invalid_bodies_422(api, body):
    response = api.post(REGISTER, json=body)
    assert response.status == 422, response.text
    assert response.json["errors"]


def test_register_invalid_json_400_and_wrong_type_415(api):
    bad = api.post(REGISTER, content=b'{"email":', headers={"Content-Type": "application/json"})
    assert bad.status == 400
    nan = api.post(REGISTER, content=b'{"email": NaN}', headers={"Content-Type": "application/json"})
    assert nan.status == 400
    empty = api.post(REGISTER, content=b"", headers={"Content-Type": "application/json"})
    assert empty.status == 400
    text = api.post(REGISTER, content=json.dumps({"email": "a@b.org"}).encode(),
                    headers={"Content-Type": "text/plain"})
    assert text.status == 415
    none = api.post(REGISTER, content=b'{"a": 1}')
    assert none.status == 415
    array = api.post(REGISTER, json=[1, 2])
    assert array.status == 422


# --- login --------------------------------------------------------------------------------------

def test_login_issues_token_and_refresh_cookie(api, users):
    user = users.make()
    response = login(api, user["email"].upper())
    assert response.status == 200
    body = response.json
    assert set(body) == {"access_token", "token_type", "expires_in", "user"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert set(body["user"]) == USER_KEYS
    cookie = set_cookie_header(response)
    attrs = {part.strip().split("=", 1)[0].lower() for part in cookie.split(";")}
    assert {"httponly", "secure", "samesite", "path", "max-age"} <= attrs
    assert "SameSite=Strict" in cookie and "Path=/api/v1/auth" in cookie
    assert "Max-Age=1209600" in cookie
    token_value = refresh_cookie(response)
    assert len(token_value) >= 22 and token_value not in response.text
    claims = jwt.decode(body["access_token"], SECRET, algorithms=["HS256"], audience="achievement-journal-api")
    assert {"sub", "sid", "iat", "exp", "iss", "aud", "jti"} <= set(claims)
    assert claims["exp"] - claims["iat"] == 900
    assert response.headers["cache-control"] == "no-store"
    # the refresh token is stored only as a hash
    assert not api.sql("SELECT 1 FROM refresh_tokens WHERE token_hash = $1", token_value)


def test_login_failures_are_indistinguishable(api, users):
    user = users.make()
    inactive = users.make(active=False)
    rid = {"X-Request-ID": "same-id"}
    unknown = login(api, "nobody@example.org", headers=rid)
    wrong = login(api, user["email"], "wrong password here", headers=rid)
    disabled = login(api, inactive["email"], headers=rid)
    assert unknown.status == wrong.status == disabled.status == 401
    assert unknown.content == wrong.content == disabled.content
    for response in (unknown, wrong, disabled):
        assert "set-cookie" not in response.headers
    assert set(unknown.headers) == set(wrong.headers) == set(disabled.headers)


@pytest.mark.parametrize("password", ["a" * 73, "b" * 10_000])
def test_login_oversized_password_is_plain_401(api, users, password):
    user = users.make()
    assert login(api, user["email"], password).status in (401, 422)
    assert login(api, "ghost@example.org", password).status in (401, 422)


def test_every_character_significant(api):
    base = "a" * 72
    assert register(api, "sig@example.org", password=base + "X").status == 201
    assert login(api, "sig@example.org", base + "Y").status == 401
    assert login(api, "sig@example.org", base + "X").status == 200
    cyr = "ж" * 79 + "a" + "ж" * 20
    assert register(api, "cyr@example.org", password=cyr).status == 201
    assert login(api, "cyr@example.org", "ж" * 79 + "b" + "ж" * 20).status == 401
    assert login(api, "cyr@example.org", cyr).status == 200


def test_login_query_string_credentials_refused(api, users):
    user = users.make()
    response = api.post(f"{LOGIN}?email={user['email']}&password={PASSWORD}")
    assert response.status in (400, 415)
    assert api.get(LOGIN).status == 405


def test_login_operator_injection_422(api):
    response = api.post(LOGIN, json={"email": {"$ne": None}, "password": {"$ne": None}})
    assert response.status == 422
    assert api.post(LOGIN, json={"email": "a@b.org", "password": True}).status == 422


# --- access tokens ------------------------------------------------------------------------------

def _forge(claims: dict, key: str = SECRET, alg: str = "HS256", headers: dict | None = None) -> str:
    return jwt.encode(claims, key, algorithm=alg, headers={"typ": "at+jwt", **(headers or {})})


def _claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_me_with_token(api, users):
    session = users.signed_in()
    response = api.get(ME, token=session["token"])
    assert response.status == 200
    assert response.json["email"] == session["email"]
    assert set(response.json) == USER_KEYS


def test_protected_route_without_token_401_with_challenge(api):
    response = api.get(ME)
    assert response.status == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"] == "application/problem+json"
    garbage = api.get(ME, token="garbage")
    assert garbage.status == 401
    assert 'error="invalid_token"' in garbage.headers["www-authenticate"]
    assert api.get(ME, headers={"Authorization": "Basic abc"}).status == 401


def test_head_me_without_token_401(api):
    assert api.request("HEAD", ME).status == 401


def test_token_in_query_string_refused(api, users):
    session = users.signed_in()
    assert api.get(f"{ME}?access_token={session['token']}").status == 401


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_refused(api, users, alg):
    session = users.signed_in()
    header = _b64({"alg": alg, "typ": "at+jwt"})
    payload = session["token"].split(".")[1]
    signature = session["token"].split(".")[2]
    assert api.get(ME, token=f"{header}.{payload}.").status == 401
    assert api.get(ME, token=f"{header}.{payload}.{signature}").status == 401


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_other_algorithms_refused(api, users, alg):
    session = users.signed_in()
    claims = _claims_of(session["token"])
    assert api.get(ME, token=_forge(claims, "attacker-" + "x" * 64, alg)).status == 401
    assert api.get(ME, token=_forge(claims, SECRET * 2, alg)).status == 401


def test_tampered_and_spliced_tokens_refused(api, users):
    a = users.signed_in()
    b = users.signed_in()
    head, payload, sig = a["token"].split(".")
    claims = _claims_of(a["token"])
    claims["sub"] = b["id"]
    assert api.get(ME, token=f"{head}.{_b64(claims)}.{sig}").status == 401
    assert api.get(ME, token=f"{head}.{payload}.").status == 401
    assert api.get(ME, token=f"{head}.{payload}.{sig[:-4]}").status == 401
    assert api.get(ME, token=f"{head}.{payload}.{b['token'].split('.')[2]}").status == 401


def test_foreign_key_refused(api, users):
    session = users.signed_in()
    claims = _claims_of(session["token"])
    assert api.get(ME, token=_forge(claims, "another-secret-" + "z" * 40)).status == 401


@pytest.mark.parametrize("change", [
    {"exp": int(time.time()) - 120},
    {"iss": "someone-else"},
    {"aud": "other-api"},
    {"iat": int(time.time()) + 3600},
    {"nbf": int(time.time()) + 3600},
    {"sid": str(uuid.uuid4())},
])
def test_bad_claims_refused(api, users, change):
    session = users.signed_in()
    claims = {**_claims_of(session["token"]), **change}
    assert api.get(ME, token=_forge(claims)).status == 401


@pytest.mark.parametrize("missing", ["exp", "iat", "sub", "sid", "iss", "aud", "jti"])
def test_missing_claims_refused(api, users, missing):
    session = users.signed_in()
    claims = _claims_of(session["token"])
    claims.pop(missing)
    assert api.get(ME, token=_forge(claims)).status == 401


@pytest.mark.parametrize("header", [
    {"jku": "http://127.0.0.1:9/keys"}, {"x5u": "http://127.0.0.1:9/cert"},
    {"kid": "../../../../dev/null"}, {"kid": "' OR '1'='1"}, {"crit": ["foo"]},
])
def test_key_material_headers_refused_or_ignored(api, users, header):
    session = users.signed_in()
    claims = _claims_of(session["token"])
    status = api.get(ME, token=_forge(claims, headers=header)).status
    # kid is ignored (we never look keys up by it); the others are refused.
    assert status == (200 if "kid" in header else 401)


def test_previous_secret_accepted_during_rotation(build_api):
    old_secret = SECRET
    new_api = build_api(JWT_SECRET="rotated-secret-" + "r" * 40, JWT_SECRET_PREVIOUS=old_secret)
    try:
        users = Users(new_api)
        session = users.signed_in()
        claims = _claims_of(session["token"])
        assert new_api.get(ME, token=_forge(claims, old_secret)).status == 200
        assert new_api.get(ME, token=_forge(claims, "unknown-secret-" + "u" * 40)).status == 401
    finally:
        new_api.close()


# --- refresh, logout, revocation ----------------------------------------------------------------

def test_refresh_rotates_cookie(api, users):
    session = users.signed_in()
    response = api.post(REFRESH, cookie=session["cookie"])
    assert response.status == 200
    new_cookie = refresh_cookie(response)
    assert new_cookie and new_cookie != session["cookie"]
    assert new_cookie not in response.text
    assert api.get(ME, token=response.json["access_token"]).status == 200
    max_age = int(set_cookie_header(response).split("Max-Age=")[1].split(";")[0])
    assert max_age <= 1209600


def test_refresh_reuse_revokes_session(api, users):
    session = users.signed_in()
    first = api.post(REFRESH, cookie=session["cookie"])
    assert first.status == 200
    rt2, at2 = refresh_cookie(first), first.json["access_token"]
    replay = api.post(REFRESH, cookie=session["cookie"])
    assert replay.status == 401
    assert api.post(REFRESH, cookie=rt2).status == 401
    assert api.get(ME, token=at2).status == 401
    assert api.get(ME, token=session["token"]).status == 401
    events = api.sql("SELECT action FROM audit_events WHERE action = 'auth.refresh.reuse_detected'")
    assert len(events) == 1


def test_refresh_without_or_with_bad_cookie_401(api):
    assert api.post(REFRESH).status == 401
    assert api.post(REFRESH, cookie="not-a-token").status == 401


def test_access_token_is_not_a_refresh_token_and_vice_versa(api, users):
    session = users.signed_in()
    assert api.post(REFRESH, cookie=session["token"]).status == 401
    assert api.get(ME, token=session["cookie"]).status == 401


def test_refresh_after_absolute_lifetime_401(api, users):
    session = users.signed_in()
    api.sql("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE user_id = $1",
            uuid.UUID(session["id"]))
    assert api.post(REFRESH, cookie=session["cookie"]).status == 401


def test_refresh_max_age_is_remaining_lifetime(api, users):
    session = users.signed_in()
    api.sql("UPDATE sessions SET expires_at = now() + interval '1 hour' WHERE user_id = $1",
            uuid.UUID(session["id"]))
    response = api.post(REFRESH, cookie=session["cookie"])
    max_age = int(set_cookie_header(response).split("Max-Age=")[1].split(";")[0])
    assert 3500 < max_age <= 3600


def test_refresh_and_logout_refuse_foreign_origin(api, users):
    session = users.signed_in()
    evil = {"Origin": "https://evil.example", "Content-Type": "text/plain"}
    refreshed = api.post(REFRESH, cookie=session["cookie"], headers=evil)
    assert refreshed.status == 403 and "set-cookie" not in refreshed.headers
    assert api.post(LOGOUT, cookie=session["cookie"], headers=evil).status == 403
    allowed = api.post(REFRESH, cookie=session["cookie"], headers={"Origin": "https://app.example.com"})
    assert allowed.status == 200


def test_logout_revokes_access_and_refresh_at_once(api, users):
    session = users.signed_in()
    response = api.post(LOGOUT, token=session["token"])
    assert response.status == 204
    cleared = set_cookie_header(response)
    assert "Max-Age=0" in cleared and "Path=/api/v1/auth" in cleared and "HttpOnly" in cleared
    assert api.get(ME, token=session["token"]).status == 401
    assert api.post(REFRESH, cookie=session["cookie"]).status == 401


def test_logout_with_cookie_only(api, users):
    session = users.signed_in()
    assert api.post(LOGOUT, cookie=session["cookie"]).status == 204
    assert api.get(ME, token=session["token"]).status == 401


def test_logout_without_credentials_401(api):
    assert api.post(LOGOUT).status == 401


def test_password_change_revokes_other_sessions(api, users):
    user = users.make()
    one, two = users.login(user), users.login(user)
    new_password = "a brand new passphrase"
    response = api.post(PASSWORD_URL, token=one["token"],
                        json={"current_password": PASSWORD, "new_password": new_password})
    assert response.status == 204
    assert api.get(ME, token=one["token"]).status == 200
    assert api.get(ME, token=two["token"]).status == 401
    assert api.post(REFRESH, cookie=two["cookie"]).status == 401
    assert login(api, user["email"], PASSWORD).status == 401
    assert login(api, user["email"], new_password).status == 200


def test_password_change_wrong_current_403_and_counts(api, users):
    session = users.signed_in()
    body = {"current_password": "not my password", "new_password": "another fine passphrase"}
    before = api.sql("SELECT password_hash FROM users WHERE id = $1", uuid.UUID(session["id"]))
    assert api.post(PASSWORD_URL, token=session["token"], json=body).status == 403
    after = api.sql("SELECT password_hash FROM users WHERE id = $1", uuid.UUID(session["id"]))
    assert before == after
    for _ in range(4):
        assert api.post(PASSWORD_URL, token=session["token"], json=body).status == 403
    assert login(api, session["email"], PASSWORD).status == 429
    assert api.post(PASSWORD_URL, token=session["token"], json=body).status == 429


def test_password_change_requires_current(api, users):
    session = users.signed_in()
    response = api.post(PASSWORD_URL, token=session["token"], json={"new_password": "another fine passphrase"})
    assert response.status == 422


def test_patch_me_changes_name_only(api, users):
    session = users.signed_in()
    response = api.patch(ME, token=session["token"], json={"full_name": "  New Name "})
    assert response.status == 200 and response.json["full_name"] == "New Name"
    assert api.patch(ME, token=session["token"], json={"role": "admin"}).status == 422
    assert api.patch(ME, token=session["token"], json={"full_name": "X", "user_id": str(uuid.uuid4())}).status == 422
    assert api.get(ME, token=session["token"]).json["role"] == "student"
    merge = api.patch(ME, token=session["token"], content=b'{"full_name": "Merged"}',
                      headers={"Content-Type": "application/merge-patch+json"})
    assert merge.status == 200 and merge.json["full_name"] == "Merged"


def test_deactivation_and_role_change_take_effect_next_request(api, users):
    session = users.signed_in("curator")
    assert api.get(ME, token=session["token"]).json["role"] == "curator"
    api.sql("UPDATE users SET role = 'student' WHERE id = $1", uuid.UUID(session["id"]))
    assert api.get(ME, token=session["token"]).json["role"] == "student"
    api.sql("UPDATE users SET is_active = false WHERE id = $1", uuid.UUID(session["id"]))
    assert api.get(ME, token=session["token"]).status == 401
    assert api.post(REFRESH, cookie=session["cookie"]).status == 401


# --- throttling ---------------------------------------------------------------------------------

def test_login_throttled_per_account_even_with_right_password(api, users):
    user = users.make()
    statuses = [login(api, user["email"], "wrong password !").status for _ in range(6)]
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    response = login(api, user["email"])
    assert response.status == 429
    assert int(response.headers["retry-after"]) > 0


def test_login_throttle_ignores_spoofed_forwarded_for(api, users):
    user = users.make()
    for i in range(5):
        login(api, user["email"], "wrong password !", headers={"X-Forwarded-For": f"10.0.0.{i}"})
    assert login(api, user["email"], headers={"X-Forwarded-For": "10.9.9.9"}).status == 429


def test_login_throttle_keyed_on_unknown_email_too(api):
    for _ in range(5):
        assert login(api, "ghost@example.org", "whatever pw").status == 401
    assert login(api, "GHOST@example.org", "whatever pw").status == 429


def test_login_per_ip_limit(build_api):
    limited = build_api(RATE_LIMIT_LOGIN_IP="3/minute")
    try:
        user = Users(limited).make()
        statuses = [login(limited, user["email"]).status for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        events = limited.sql("SELECT details FROM audit_events WHERE action = 'security.rate_limited'")
        assert events
    finally:
        limited.close()
