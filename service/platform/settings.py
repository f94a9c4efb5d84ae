"""One typed settings object, built once from the environment.

Nothing else in the service reads ``os.environ``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

DATA_DIR = Path(".data")
DEV_SECRET_FILE = DATA_DIR / "jwt_secret"
MIN_SECRET_BYTES = 32
_RATE_RE = re.compile(r"^\s*\d+\s*(/|per)\s*\d*\s*[a-z]+\s*$", re.IGNORECASE)


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(Exception):
    """The environment does not describe a service that may start."""


def _bool(value: str | None, default: bool, name: str) -> bool:
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false")


def _int(value: str | None, default: int, name: str, minimum: int = 0) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be an integer") from None
    if number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}")
    return number


def _networks(value: str | None, name: str) -> tuple[IPNetwork, ...]:
    networks = []
    for part in (value or "").split(","):
        if part.strip():
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise ConfigError(f"{name} holds an invalid network: {part.strip()!r}") from None
    return tuple(networks)


def _rate(value: str | None, default: str, name: str) -> str | None:
    """A limit in ``limits`` notation, or None when switched off."""
    text = (value if value not in (None, "") else default).strip()
    if text.lower() in {"0", "unlimited", "off", "none"}:
        return None
    if not _RATE_RE.match(text):
        raise ConfigError(f"{name} must look like 10/minute or 5/15minutes")
    return text


@dataclass(frozen=True)
class DatabaseURL:
    host: str | None
    port: int
    user: str | None
    password: str | None
    database: str
    ssl: str | None

    @classmethod
    def parse(cls, url: str) -> DatabaseURL:
        parts = urlsplit(url)
        if parts.scheme not in {"postgres", "postgresql"}:
            raise ConfigError("DATABASE_URL must be a postgres:// or postgresql:// URL")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        host = query.get("host") or (unquote(parts.hostname) if parts.hostname else None)
        try:
            port = parts.port or int(query.get("port", 5432))
        except ValueError:
            raise ConfigError("DATABASE_URL has an invalid port") from None
        return cls(
            host=host,
            port=port,
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            database=unquote(parts.path.lstrip("/")) or "postgres",
            ssl=query.get("sslmode"),
        )


@dataclass(frozen=True)
class Settings:
    database_url: str
    jwt_secret: str
    jwt_secret_previous: str | None = None
    development: bool = False
    access_token_ttl: int = 900
    refresh_token_ttl: int = 1_209_600
    bcrypt_rounds: int = 12
    cors_origins: tuple[str, ...] = ()
    cookie_secure: bool = True
    proxies_count: int = 0
    redis_url: str | None = None
    rate_limit_login_ip: str | None = "20/minute"
    rate_limit_login_account: str | None = "5/15minutes"
    rate_limit_register_ip: str | None = "10/hour"
    rate_limit_api_user: str | None = "600/minute"
    rate_limit_refresh_ip: str | None = "60/minute"
    rate_limit_public_ip: str | None = "60/minute"
    # Campus egress networks (many students behind one NAT): their per-IP limits are multiplied.
    rate_limit_trusted_networks: tuple[IPNetwork, ...] = ()
    rate_limit_trusted_multiplier: int = 20
    max_achievements_per_user: int = 10_000
    credential_signing_key: str = ""
    credential_signing_key_previous: str | None = None
    request_body_timeout: float = 30.0
    db_pool_max: int = 10
    db_statement_cache: bool = True
    log_level: str = "INFO"
    jwt_issuer: str = "achievement-journal"
    jwt_audience: str = "achievement-journal-api"
    extra: dict = field(default_factory=dict)

    @property
    def database(self) -> DatabaseURL:
        return DatabaseURL.parse(self.database_url)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, *, development: bool = False) -> Settings:
        env = dict(os.environ if env is None else env)
        database_url = env.get("DATABASE_URL", "").strip()
        if not database_url:
            raise ConfigError("DATABASE_URL is required (python -m service serve provides a local one)")
        DatabaseURL.parse(database_url)

        secret = env.get("JWT_SECRET", "")
        if not secret and development:
            secret = development_secret()
        if not secret:
            raise ConfigError("JWT_SECRET is required: at least 32 random bytes")
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError("JWT_SECRET is too short: at least 32 bytes are required")
        previous = env.get("JWT_SECRET_PREVIOUS") or None
        if previous is not None and len(previous.encode()) < MIN_SECRET_BYTES:
            raise ConfigError("JWT_SECRET_PREVIOUS is too short: at least 32 bytes are required")

        origins = tuple(
            o.strip().rstrip("/") for o in env.get("CORS_ORIGINS", "").split(",") if o.strip()
        )
        for origin in origins:
            if origin == "*" or not re.match(r"^https?://[^/\s*]+$", origin):
                raise ConfigError(f"CORS_ORIGINS holds an invalid origin: {origin!r}")

        credential_key = env.get("CREDENTIAL_SIGNING_KEY", "").strip()
        if not credential_key and development:
            credential_key = development_credential_key()
        if not credential_key:
            raise ConfigError("CREDENTIAL_SIGNING_KEY is required: a private key (PEM, JWK or a 64-hex-digit "
                              "Ed25519 seed) that signs verifiable credentials")

        log_level = env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
        if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ConfigError("LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL")

        return cls(
            database_url=database_url,
            jwt_secret=secret,
            jwt_secret_previous=previous,
            development=development,
            access_token_ttl=_int(env.get("ACCESS_TOKEN_TTL"), 900, "ACCESS_TOKEN_TTL", 1),
            refresh_token_ttl=_int(env.get("REFRESH_TOKEN_TTL"), 1_209_600, "REFRESH_TOKEN_TTL", 1),
            bcrypt_rounds=_int(env.get("BCRYPT_ROUNDS"), 12, "BCRYPT_ROUNDS", 4),
            cors_origins=origins,
            cookie_secure=_bool(env.get("COOKIE_SECURE"), True, "COOKIE_SECURE"),
            proxies_count=_int(env.get("PROXIES_COUNT"), 0, "PROXIES_COUNT"),
            redis_url=env.get("REDIS_URL") or None,
            rate_limit_login_ip=_rate(env.get("RATE_LIMIT_LOGIN_IP"), "20/minute", "RATE_LIMIT_LOGIN_IP"),
            rate_limit_login_account=_rate(
                env.get("RATE_LIMIT_LOGIN_ACCOUNT"), "5/15minutes", "RATE_LIMIT_LOGIN_ACCOUNT"
            ),
            rate_limit_register_ip=_rate(
                env.get("RATE_LIMIT_REGISTER_IP"), "10/hour", "RATE_LIMIT_REGISTER_IP"
            ),
            rate_limit_api_user=_rate(env.get("RATE_LIMIT_API_USER"), "600/minute", "RATE_LIMIT_API_USER"),
            rate_limit_refresh_ip=_rate(
                env.get("RATE_LIMIT_REFRESH_IP"), "60/minute", "RATE_LIMIT_REFRESH_IP"
            ),
            rate_limit_public_ip=_rate(env.get("RATE_LIMIT_PUBLIC_IP"), "60/minute", "RATE_LIMIT_PUBLIC_IP"),
            rate_limit_trusted_networks=_networks(
                env.get("RATE_LIMIT_TRUSTED_NETWORKS"), "RATE_LIMIT_TRUSTED_NETWORKS"
            ),
            rate_limit_trusted_multiplier=_int(
                env.get("RATE_LIMIT_TRUSTED_MULTIPLIER"), 20, "RATE_LIMIT_TRUSTED_MULTIPLIER", 1
            ),
            max_achievements_per_user=_int(
                env.get("MAX_ACHIEVEMENTS_PER_USER"), 10_000, "MAX_ACHIEVEMENTS_PER_USER", 1
            ),
            credential_signing_key=credential_key,
            credential_signing_key_previous=env.get("CREDENTIAL_SIGNING_KEY_PREVIOUS", "").strip() or None,
            request_body_timeout=float(_int(env.get("REQUEST_BODY_TIMEOUT"), 30, "REQUEST_BODY_TIMEOUT", 1)),
            db_pool_max=_int(env.get("DB_POOL_MAX"), 10, "DB_POOL_MAX", 1),
            db_statement_cache=_bool(env.get("DB_STATEMENT_CACHE"), True, "DB_STATEMENT_CACHE"),
            log_level=log_level,
        )


def development_credential_key() -> str:
    """An Ed25519 key (its seed) generated once for development and kept under ./.data/."""
    return _kept_once(DATA_DIR / "credential_key", lambda: secrets.token_hex(32))


def development_secret() -> str:
    """A random secret generated once for development and kept under ./.data/."""
    return _kept_once(DEV_SECRET_FILE, lambda: secrets.token_urlsafe(48))


def _kept_once(path: Path, make) -> str:
    """The value in ``path``, or a new one from ``make`` written there (owner-only) first."""
    if path.exists():
        return path.read_text().strip()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value
