"""The command line: serve (private PostgreSQL), migrate, create-admin, seed-demo."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args, env=None, input_text=None, cwd=ROOT, timeout=120):
    full_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "JWT_SECRET", "ADMIN_PASSWORD")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "service", *args], env=full_env, cwd=cwd, input=input_text,
                          capture_output=True, text=True, timeout=timeout)


def test_migrate_is_idempotent(database_url):
    result = run_cli("migrate", env={"DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    assert "none pending" in result.stderr


def test_create_admin_from_env_never_argv(api, database_url):
    password = "an admin passphrase 42"
    result = run_cli("create-admin", "--email", "Boss@Example.org", "--full-name", "The Boss",
                     env={"DATABASE_URL": database_url, "ADMIN_PASSWORD": password, "BCRYPT_ROUNDS": "4"})
    assert result.returncode == 0, result.stderr
    assert password not in result.stdout + result.stderr
    login = api.post("/api/v1/auth/login", json={"email": "boss@example.org", "password": password})
    assert login.status == 200 and login.json["user"]["role"] == "admin"


def _attacker(api, email: str) -> str:
    """Someone registers the address the operator will pass to create-admin and signs in."""
    registered = api.post("/api/v1/auth/register", json={"email": email, "password": "attacker passphrase",
                                                         "full_name": "Mallory"})
    assert registered.status == 201
    login = api.post("/api/v1/auth/login", json={"email": email, "password": "attacker passphrase"})
    assert login.status == 200
    return login.json["access_token"]


def test_create_admin_refuses_an_already_registered_email(api, database_url):
    token = _attacker(api, "dean@example.org")
    result = run_cli("create-admin", "--email", "Dean@Example.org", "--full-name", "The Dean",
                     env={"DATABASE_URL": database_url, "ADMIN_PASSWORD": "the dean's passphrase 7",
                          "BCRYPT_ROUNDS": "4"})
    assert result.returncode == 1
    assert "already registered" in result.stderr and "--promote" in result.stderr
    # Nothing changed: still a student, the attacker's token and password still what they were.
    me = api.get("/api/v1/auth/me", token=token)
    assert me.status == 200 and me.json["role"] == "student"
    assert api.post("/api/v1/auth/login", json={"email": "dean@example.org",
                                                "password": "the dean's passphrase 7"}).status == 401
    assert api.sql("SELECT count(*) AS n FROM audit_events WHERE action = 'admin.user.updated'")[0]["n"] == 0


def test_create_admin_promote_takes_the_account_over(api, database_url):
    token = _attacker(api, "rector@example.org")
    result = run_cli("create-admin", "--email", "rector@example.org", "--full-name", "The Rector", "--promote",
                     env={"DATABASE_URL": database_url, "ADMIN_PASSWORD": "the rector's passphrase 9",
                          "BCRYPT_ROUNDS": "4"})
    assert result.returncode == 0, result.stderr
    # The attacker's session is gone (their token never gains admin) and so is their password.
    assert api.get("/api/v1/auth/me", token=token).status == 401
    assert api.post("/api/v1/auth/login", json={"email": "rector@example.org",
                                                "password": "attacker passphrase"}).status == 401
    login = api.post("/api/v1/auth/login", json={"email": "rector@example.org",
                                                 "password": "the rector's passphrase 9"})
    assert login.status == 200 and login.json["user"]["role"] == "admin"
    events = api.sql("SELECT details FROM audit_events WHERE action = 'admin.user.updated'")
    assert len(events) == 1 and "the rector" not in str(events[0]["details"]).lower()


def test_create_admin_refuses_weak_password_and_no_tty(database_url):
    weak = run_cli("create-admin", "--email", "a@example.org", "--full-name", "A",
                   env={"DATABASE_URL": database_url, "ADMIN_PASSWORD": "password123"})
    assert weak.returncode != 0 and "too common" in weak.stderr
    no_tty = run_cli("create-admin", "--email", "b@example.org", "--full-name", "B",
                     env={"DATABASE_URL": database_url}, input_text="")
    assert no_tty.returncode != 0 and "ADMIN_PASSWORD" in no_tty.stderr


def test_seed_demo_twice(api, database_url):
    env = {"DATABASE_URL": database_url, "BCRYPT_ROUNDS": "4"}
    first = run_cli("seed-demo", "--students", "3", "--per-student", "7", env=env)
    assert first.returncode == 0, first.stderr
    assert "password: demo-" in first.stdout
    count = api.sql("SELECT count(*) AS n FROM achievements")[0]["n"]
    assert count == 21
    categories = api.sql("SELECT count(DISTINCT category) AS n FROM achievements")[0]["n"]
    assert categories >= 3
    university = "SELECT kind, count(*) AS n FROM org_units GROUP BY kind ORDER BY kind"
    assert [(r["kind"], r["n"]) for r in api.sql(university)] == [("faculty", 3), ("group", 6), ("university", 1)]
    assert api.sql("SELECT count(*) AS n FROM rule_sets")[0]["n"] == 1
    scopes = api.sql("SELECT u.email, o.kind FROM curator_scopes s JOIN users u ON u.id = s.user_id "
                     "JOIN org_units o ON o.id = s.org_unit_id WHERE u.role = 'curator' ORDER BY u.email")
    assert [r["email"] for r in scopes] == [f"demo-curator-{n}@example.org" for n in (1, 2, 3)]
    assert {r["kind"] for r in scopes} == {"faculty"}
    assert api.sql("SELECT count(*) AS n FROM users WHERE email LIKE 'demo-student-%' AND org_unit_id IS NULL"
                   )[0]["n"] == 0
    published = api.sql("SELECT count(*) AS n FROM rule_sets WHERE status = 'published'")[0]["n"]
    assert published == 1  # a rating shows at once
    # The audit log records the university it built, as if an admin had: units, scopes, membership.
    audited = "SELECT action, count(*) AS n FROM audit_events WHERE request_id = 'cli-seed-demo' GROUP BY action"
    assert {r["action"]: r["n"] for r in api.sql(audited)} == {
        "org_unit.created": 9, "admin.user.scopes_updated": 3, "admin.user.updated": 3}
    second = run_cli("seed-demo", "--students", "3", "--per-student", "7", env=env)
    assert second.returncode == 0, second.stderr
    assert api.sql("SELECT count(*) AS n FROM achievements")[0]["n"] == count
    assert [(r["kind"], r["n"]) for r in api.sql(university)] == [("faculty", 3), ("group", 6), ("university", 1)]
    assert api.sql("SELECT count(*) AS n FROM rule_sets")[0]["n"] == 1
    assert {r["action"]: r["n"] for r in api.sql(audited)}["org_unit.created"] == 9  # nothing new: nothing audited


def test_production_app_refuses_short_secret(database_url):
    code = ("from service.app import create_app\n"
            "create_app()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "DATABASE_URL": database_url, "JWT_SECRET": "too-short"})
    assert result.returncode != 0 and "JWT_SECRET" in result.stderr


def test_serve_starts_private_postgres_and_stops_cleanly(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "JWT_SECRET")}
    env["PYTHONPATH"] = str(ROOT)

    def start():
        return subprocess.Popen([sys.executable, "-m", "service", "serve", "--port", str(port)], cwd=tmp_path,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait_ready(proc):
        deadline = time.time() + 60
        while time.time() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            except httpx.HTTPError:
                time.sleep(0.3)
        raise AssertionError("serve did not come up")

    for attempt in range(2):  # the second start reuses the data and the generated secret
        proc = start()
        try:
            assert wait_ready(proc).status_code == 200
            assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
            nope = httpx.get(f"http://127.0.0.1:{port}/nope", timeout=5)
            assert nope.status_code == 404
            assert nope.headers["content-type"] == "application/problem+json"
            types = httpx.post(f"http://127.0.0.1:{port}/api/v1/auth/register", timeout=10,
                               json={"email": f"n{attempt}@example.org", "password": "newcomer passphrase",
                                     "full_name": "New"})
            assert types.status_code == 201
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        assert (tmp_path / ".data" / "jwt_secret").exists()
        assert (tmp_path / ".data" / "postgres" / "PG_VERSION").exists()
    pids = subprocess.run(["pgrep", "-f", str(tmp_path / ".data" / "postgres")], capture_output=True, text=True)
    assert pids.stdout.strip() == "", "the private PostgreSQL kept running after serve stopped"
