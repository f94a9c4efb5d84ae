"""Secrets never reach logs, audit rows or responses (checklist LOG-03, MASS-03)."""

from __future__ import annotations

import logging

from service.platform.logs import JsonFormatter
from tests.conftest import SECRET, refresh_cookie

CANARY_PASSWORD = "canary-password-7Qx9"
NEW_PASSWORD = "canary-new-password-Z3k"


def test_no_secret_in_logs_audit_or_responses(api, users, caplog, database_url):
    caplog.set_level(logging.DEBUG)
    bodies = []

    def keep(response):
        bodies.append(response.text + str(dict(response.headers)))
        return response

    email = "canary@example.org"
    keep(api.post("/api/v1/auth/register", json={"email": email, "password": CANARY_PASSWORD,
                                                 "full_name": "Canary"}))
    keep(api.post("/api/v1/auth/register", json={"email": "x@example.org", "password": "short",
                                                 "full_name": "X"}))
    keep(api.post("/api/v1/auth/login", json={"email": email, "password": CANARY_PASSWORD + "wrong"}))
    login = api.post("/api/v1/auth/login", json={"email": email, "password": CANARY_PASSWORD})
    token, cookie = login.json["access_token"], refresh_cookie(login)
    refreshed = api.post("/api/v1/auth/refresh", cookie=cookie)
    token2, cookie2 = refreshed.json["access_token"], refresh_cookie(refreshed)
    keep(api.post("/api/v1/auth/refresh", cookie=cookie))  # reuse → revokes
    login = api.post("/api/v1/auth/login", json={"email": email, "password": CANARY_PASSWORD})
    token3 = login.json["access_token"]
    keep(api.post("/api/v1/auth/password", token=token3,
                  json={"current_password": CANARY_PASSWORD + "x", "new_password": NEW_PASSWORD}))
    keep(api.post("/api/v1/auth/password", token=token3,
                  json={"current_password": CANARY_PASSWORD, "new_password": NEW_PASSWORD}))
    keep(api.get("/api/v1/auth/me", token=token + "tampered"))
    keep(api.post("/api/v1/auth/logout", token=token3))
    keep(api.post("/api/v1/achievements", token=token3, json={"title": CANARY_PASSWORD}))

    secrets = [CANARY_PASSWORD, NEW_PASSWORD, token, token2, token3, cookie, cookie2, SECRET, database_url]
    formatter = JsonFormatter()
    # The test client's own httpx/httpcore debug lines are not the service's logs.
    server_records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    log_text = "\n".join(formatter.format(record) for record in server_records)
    audit_text = "\n".join(str(row) for row in api.sql("SELECT * FROM audit_events"))
    assert "auth.refresh.reuse_detected" in audit_text and "auth.login.failed" in audit_text
    for secret in secrets:
        assert secret not in log_text, "secret in logs"
        assert secret not in audit_text, "secret in audit rows"
    for marker in ("Bearer ey", "$2b$", "Authorization:", "password_hash"):
        assert marker not in log_text and marker not in audit_text
    for body in bodies:
        for secret in (CANARY_PASSWORD, NEW_PASSWORD, SECRET, "$2b$", "password_hash"):
            assert secret not in body
