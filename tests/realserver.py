"""The service as a real server process (the Procfile's ``sanic ... --factory`` command),
and a private ``redis-server``, for tests the in-process client cannot make: several
workers, raw sockets, lying bodies, a store that goes away.

    with RealServer(database_url, workers=2, env={"REDIS_URL": redis.url}) as server:
        httpx.get(server.url("/healthz"))

or, in a test module, ``server = real_server_fixture(workers=2, RATE_LIMIT_LOGIN_IP="5/minute")``.
Everything listens on 127.0.0.1 only, and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / ".artifacts"
HOST = "127.0.0.1"

# What every real server gets unless a test says otherwise: fast hashing and limits
# high enough that only the tests about limits ever meet them.
BASE_ENV = {
    "JWT_SECRET": "realserver-secret-" + "r" * 40,
    "BCRYPT_ROUNDS": "4",
    "COOKIE_SECURE": "false",
    "CORS_ORIGINS": "https://app.example.com",
    "RATE_LIMIT_LOGIN_IP": "1000/minute",
    "RATE_LIMIT_LOGIN_ACCOUNT": "1000/minute",
    "RATE_LIMIT_REGISTER_IP": "1000/minute",
    "RATE_LIMIT_API_USER": "10000/minute",
    "LOG_LEVEL": "INFO",
    "PYTHONUNBUFFERED": "1",
}
# Variables of the developer's shell that would change what the server does.
_SCRUBBED = ("DATABASE_URL", "REDIS_URL", "PROXIES_COUNT", "JWT_SECRET_PREVIOUS", "PORT", "WEB_CONCURRENCY")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, deadline: float, process: subprocess.Popen | None = None) -> bool:
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.2):
            return True
        time.sleep(0.05)
    return False


class RealServer:
    """``python -m sanic service.app:create_app --factory`` on 127.0.0.1 with its own env."""

    def __init__(self, database_url: str, *, workers: int = 1, env: dict[str, str] | None = None,
                 port: int | None = None, name: str = "server") -> None:
        self.database_url = database_url
        self.workers = workers
        self.port = port or free_port()
        self.env = {k: str(v) for k, v in (env or {}).items()}
        self.name = name
        self.process: subprocess.Popen | None = None
        self.redis: RedisServer | None = None  # set by real_server_fixture(redis=True)
        self.log_path: Path | None = None
        self._log_file = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def client(self, **kwargs) -> httpx.Client:
        kwargs.setdefault("timeout", 10.0)
        return httpx.Client(base_url=self.base_url, **kwargs)

    def start(self, timeout: float = 30.0) -> RealServer:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED and not k.startswith("SANIC_")}
        env.update(BASE_ENV)
        env["DATABASE_URL"] = self.database_url
        env.update(self.env)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.log_path = ARTIFACTS / f"{self.name}-{self.port}.log"
        self._log_file = open(self.log_path, "wb")  # closed in stop()
        command = [sys.executable, "-m", "sanic", "service.app:create_app", "--factory",
                   "--host", HOST, "--port", str(self.port), "--workers", str(self.workers),
                   "--no-motd", "--no-access-logs"]
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self._log_file,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        # Sanic logs "Worker ready [pid]" per worker (at INFO); until every worker is ready
        # the first one takes all connections, which would defeat tests about several workers.
        wait_for_workers = env.get("LOG_LEVEL", "INFO").upper() in ("INFO", "DEBUG")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self._healthy() and (not wait_for_workers or self.workers_ready() >= self.workers):
                return self
            time.sleep(0.1)
        tail = self.logs()[-3000:]
        self.stop()
        raise RuntimeError(f"the server did not become healthy within {timeout:.0f}s:\n{tail}")

    def _healthy(self) -> bool:
        try:
            return httpx.get(self.url("/healthz"), timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, timeout: float = 35.0) -> None:
        """SIGTERM and wait (graceful shutdown takes up to 25 s); SIGKILL the group after that."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def workers_ready(self) -> int:
        return sum(1 for entry in self.log_events() if str(entry.get("message", "")).startswith("Worker ready"))

    def logs(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def log_events(self, event: str | None = None) -> list[dict]:
        """The server's JSON log lines (optionally only those of one ``event``)."""
        entries = []
        for line in self.logs().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(orjson.JSONDecodeError):
                    entry = orjson.loads(line)
                    if event is None or entry.get("event") == event:
                        entries.append(entry)
        return entries

    def __enter__(self) -> RealServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def redis_server_binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    return "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None


class RedisServer:
    """A private, non-persistent redis-server on a free port of 127.0.0.1."""

    def __init__(self, port: int | None = None) -> None:
        self.binary = redis_server_binary()
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self._dir: tempfile.TemporaryDirectory | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        if self.binary is None:
            raise RuntimeError("redis-server is not installed")
        self._dir = tempfile.TemporaryDirectory(prefix="journal-redis-")
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no",
             "--dir", self._dir.name, "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        if not _wait_for_port(self.port, time.monotonic() + timeout, self.process):
            self.stop()
            raise RuntimeError("redis-server did not start")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


requires_redis = pytest.mark.skipif(
    redis_server_binary() is None,
    reason="redis-server is not installed (bash .ci/test installs it from Debian's packages when run as root)",
)


def reset_database(database_url: str) -> None:
    """Remove what a real server wrote, as the in-process tests' ``clean`` fixture does."""
    from tests.conftest import TRUNCATE

    async def truncate() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(TRUNCATE)
        finally:
            await conn.close()

    asyncio.run(truncate())


def real_server_fixture(*, workers: int = 1, scope: str = "module", redis: bool = False, **env: str):
    """A pytest fixture yielding a started RealServer with ``env`` on top of BASE_ENV.

    ``redis=True`` also starts a private redis-server, passes its URL as REDIS_URL and
    exposes it as ``server.redis`` (the test is skipped when redis-server is missing).
    The database is cleaned when the server stops.
    """

    @pytest.fixture(scope=scope)
    def fixture(database_url) -> Iterator[RealServer]:
        with contextlib.ExitStack() as stack:
            extra = dict(env)
            redis_server = None
            if redis:
                if redis_server_binary() is None:
                    pytest.skip("redis-server is not installed "
                                "(bash .ci/test installs it from Debian's packages when run as root)")
                redis_server = stack.enter_context(RedisServer())
                extra["REDIS_URL"] = redis_server.url
            server = RealServer(database_url, workers=workers, env=extra)
            server.redis = redis_server
            stack.callback(reset_database, database_url)
            stack.enter_context(server)
            yield server

    return fixture
