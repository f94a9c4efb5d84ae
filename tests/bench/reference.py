"""The benchmark's yardstick: a deliberately minimal implementation of the benchmarked
endpoints on bare Sanic + raw asyncpg + orjson.

It does the same work per request as the service, and nothing more: the same SQL (the
one-query session and user check on every authenticated request, the page query and its
count, the load by id, the type lookup + insert + audit row in one transaction, the
login's session, refresh-token and audit inserts), the same JWT verification with PyJWT,
the same response bodies, ETags and security headers, bcrypt over the same pre-hash in a
thread. What it leaves out is the framework around it: no sanic-ext, no ORM, no pydantic,
no middleware chain, no log line, no rate limiter.

    JWT_SECRET=... DATABASE_URL=... python -m sanic tests.bench.reference:create_app --factory --workers 2
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import os
import secrets
import time
import uuid

import asyncpg
import bcrypt
import jwt
import orjson
from sanic import Sanic
from sanic.response import HTTPResponse

ISSUER = "achievement-journal"
AUDIENCE = "achievement-journal-api"
REQUIRED = ["sub", "sid", "iat", "exp", "iss", "aud", "jti"]
PREHASH_KEY = b"achievement-journal/password/v1"
COLUMNS = (
    "id, owner_id, title, type, category, date, proof_url, description, status, review_decision, "
    "review_comment, reviewer_id, reviewed_at, version, created_at, updated_at"
)
SESSION_USER = (
    "SELECT u.id, u.email, u.full_name, u.role, u.is_active, u.created_at "
    "FROM sessions s JOIN users u ON u.id = s.user_id "
    "WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL "
    "AND s.expires_at > now() AND u.is_active"
)
AUDIT = (
    "INSERT INTO audit_events (id, request_id, actor_id, ip, action, target_type, target_id, "
    "outcome, details) VALUES ($1, $2, $3, $4, $5, $6, $7, 'success', '{}'::jsonb)"
)
HEADERS = {
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}


def _json(body, status=200, headers=None) -> HTTPResponse:
    return HTTPResponse(orjson.dumps(body), status=status, headers=headers, content_type="application/json")


def _error(status: int, detail: str) -> HTTPResponse:
    return HTTPResponse(orjson.dumps({"type": "about:blank", "status": status, "detail": detail}),
                        status=status, content_type="application/problem+json")


def _iso(value):
    return None if value is None else value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _achievement(row) -> dict:
    review = None
    if row["review_decision"]:
        review = {"decision": row["review_decision"], "comment": row["review_comment"],
                  "reviewer_id": str(row["reviewer_id"]) if row["reviewer_id"] else None,
                  "reviewed_at": _iso(row["reviewed_at"])}
    return {"id": str(row["id"]), "owner_id": str(row["owner_id"]), "title": row["title"], "type": row["type"],
            "category": row["category"], "date": row["date"].isoformat(), "proof_url": row["proof_url"],
            "description": row["description"], "status": row["status"], "review": review,
            "version": row["version"], "created_at": _iso(row["created_at"]), "updated_at": _iso(row["updated_at"])}


def _user(row) -> dict:
    return {"id": str(row["id"]), "email": row["email"], "full_name": row["full_name"], "role": row["role"],
            "is_active": row["is_active"], "created_at": _iso(row["created_at"])}


def _prehash(password: str) -> bytes:
    return base64.b64encode(hmac.new(PREHASH_KEY, password.encode(), hashlib.sha384).digest())


async def _keep_session(_connection) -> None:
    """No reset query on release (asyncpg still rolls back an open transaction)."""


def create_app() -> Sanic:
    secret = os.environ["JWT_SECRET"]
    rounds = int(os.environ.get("BCRYPT_ROUNDS", "12"))
    cursor_key = hashlib.sha256(b"cursor/v1/" + secret.encode()).digest()
    app = Sanic("journal_reference")
    app.config.ACCESS_LOG = False
    app.config.AUTO_EXTEND = False  # bare Sanic: no sanic-ext hooks

    @app.before_server_start
    async def connect(app_, _loop=None):
        # The same pool settings as the service's (service/platform/database.py), reset policy included:
        # the same round trips per request.
        app_.ctx.pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=1, max_size=10,
                                                  reset=_keep_session)

    @app.after_server_stop
    async def disconnect(app_, _loop=None):
        await app_.ctx.pool.close()

    @app.on_request
    async def request_id(request):
        request.ctx.rid = uuid.uuid4().hex

    @app.on_response
    async def headers(request, response):
        response.headers.update(HEADERS)
        response.headers["X-Request-ID"] = request.ctx.rid
        response.headers.setdefault("Cache-Control", "no-store")

    async def caller(request):
        """The same check as the service: pinned-algorithm JWT, then one session+user query."""
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return None
        token = header[7:]
        try:
            head = jwt.get_unverified_header(token)
            if head.get("alg") != "HS256" or head.get("typ") != "at+jwt":
                return None
            claims = jwt.decode(token, secret, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER, leeway=30,
                                options={"require": REQUIRED, "enforce_minimum_key_length": True})
            session_id, user_id = uuid.UUID(claims["sid"]), uuid.UUID(claims["sub"])
        except (jwt.PyJWTError, ValueError, KeyError):
            return None
        return await request.app.ctx.pool.fetchrow(SESSION_USER, session_id, user_id)

    @app.post("/api/v1/auth/register")
    async def register(request):
        body = orjson.loads(request.body)
        hashed = await asyncio.get_running_loop().run_in_executor(
            None, lambda: bcrypt.hashpw(_prehash(body["password"]), bcrypt.gensalt(rounds)).decode())
        user_id = uuid.uuid4()
        async with request.app.ctx.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "INSERT INTO users (id, email, password_hash, full_name) VALUES ($1, $2, $3, $4) "
                "RETURNING id, email, full_name, role, is_active, created_at",
                user_id, body["email"].strip().lower(), hashed, body["full_name"])
            await conn.execute(AUDIT, uuid.uuid4(), request.ctx.rid, user_id, request.ip, "auth.register", "user",
                               str(user_id))
        return _json(_user(row), status=201)

    @app.post("/api/v1/auth/login")
    async def login(request):
        body = orjson.loads(request.body)
        pool = request.app.ctx.pool
        row = await pool.fetchrow("SELECT id, email, full_name, role, is_active, created_at, password_hash "
                                  "FROM users WHERE email = $1", body["email"].strip().lower())
        if row is None:
            return _error(401, "The email or password is incorrect.")
        ok = await asyncio.get_running_loop().run_in_executor(
            None, bcrypt.checkpw, _prehash(body["password"]), row["password_hash"].encode())
        if not ok or not row["is_active"]:
            return _error(401, "The email or password is incorrect.")
        session_id = uuid.uuid4()
        refresh = secrets.token_urlsafe(32)
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("INSERT INTO sessions (id, user_id, expires_at) VALUES ($1, $2, $3)", session_id,
                               row["id"], dt.datetime.now(dt.UTC) + dt.timedelta(days=14))
            await conn.execute("INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)",
                               hashlib.sha256(refresh.encode()).hexdigest(), session_id)
            await conn.execute(AUDIT, uuid.uuid4(), request.ctx.rid, row["id"], request.ip, "auth.login.succeeded",
                               "session", str(session_id))
        now = int(time.time())
        token = jwt.encode({"sub": str(row["id"]), "sid": str(session_id), "iat": now, "nbf": now, "exp": now + 900,
                            "iss": ISSUER, "aud": AUDIENCE, "jti": uuid.uuid4().hex}, secret, algorithm="HS256",
                           headers={"typ": "at+jwt"})
        response = _json({"access_token": token, "token_type": "Bearer", "expires_in": 900, "user": _user(row)})
        response.add_cookie("refresh_token", refresh, path="/api/v1/auth", max_age=14 * 86400, httponly=True,
                            samesite="Strict", secure=True)
        return response

    @app.get("/api/v1/achievements")
    async def list_achievements(request):
        user = await caller(request)
        if user is None:
            return _error(401, "Authentication is required.")
        limit = int(request.args.get("limit", "20"))
        pool = request.app.ctx.pool
        rows = await pool.fetch(f"SELECT {COLUMNS}, title_key FROM achievements WHERE owner_id = $1 "
                                f"ORDER BY date DESC, id DESC LIMIT {limit + 1}", user["id"])
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            payload = orjson.dumps({"s": "-date", "p": [rows[-1]["date"].isoformat(), str(rows[-1]["id"])]})
            mac = hmac.new(cursor_key, payload, hashlib.sha256).digest()[:16]
            next_cursor = (base64.urlsafe_b64encode(payload).rstrip(b"=") + b"."
                           + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()
        total = await pool.fetchval("SELECT count(*) AS n FROM achievements WHERE owner_id = $1", user["id"])
        body = orjson.dumps({"items": [_achievement(r) for r in rows], "next_cursor": next_cursor, "total": total})
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        return HTTPResponse(body, headers={"ETag": etag, "Cache-Control": "private, no-cache"},
                            content_type="application/json")

    @app.get("/api/v1/achievements/<achievement_id:uuid>")
    async def get_achievement(request, achievement_id):
        user = await caller(request)
        if user is None:
            return _error(401, "Authentication is required.")
        row = await request.app.ctx.pool.fetchrow(f"SELECT {COLUMNS} FROM achievements WHERE id = $1",
                                                  achievement_id)
        if row is None or (row["owner_id"] != user["id"] and user["role"] == "student"):
            return _error(404, "No such achievement.")
        return _json(_achievement(row), headers={"ETag": f'"{row["id"]}.{row["version"]}"',
                                                 "Cache-Control": "private, no-cache"})

    @app.post("/api/v1/achievements")
    async def create_achievement(request):
        user = await caller(request)
        if user is None:
            return _error(401, "Authentication is required.")
        body = orjson.loads(request.body)
        title = body.get("title")
        if not isinstance(title, str) or not 1 <= len(title.strip()) <= 200:
            return _error(422, "title")
        date = dt.date.fromisoformat(body["date"])
        async with request.app.ctx.pool.acquire() as conn, conn.transaction():
            kind = await conn.fetchrow("SELECT category, is_active FROM achievement_types WHERE slug = $1",
                                       body["type"])
            if kind is None or not kind["is_active"]:
                return _error(422, "type")
            row = await conn.fetchrow(
                "INSERT INTO achievements (id, owner_id, title, type, category, date, proof_url, description) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                f"ON CONFLICT (owner_id, type, date, title_key) DO NOTHING RETURNING {COLUMNS}",
                uuid.uuid4(), user["id"], title.strip(), body["type"], kind["category"], date,
                body.get("proof_url"), body.get("description"))
            if row is None:
                return _error(409, "You already recorded this achievement.")
            await conn.execute(AUDIT, uuid.uuid4(), request.ctx.rid, user["id"], request.ip, "achievement.created",
                               "achievement", str(row["id"]))
        return _json(_achievement(row), status=201,
                     headers={"ETag": f'"{row["id"]}.{row["version"]}"', "Cache-Control": "private, no-cache",
                              "Location": f"/api/v1/achievements/{row['id']}"})

    @app.get("/healthz")
    async def healthz(request):
        return _json({"status": "ok"})

    return app
