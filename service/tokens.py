"""Access tokens (JWT, HS256 pinned) and opaque refresh tokens."""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import secrets
import time
import uuid
from dataclasses import dataclass

import jwt
from jwt.algorithms import HMACAlgorithm

from service.platform.settings import Settings

ALGORITHM = "HS256"
TOKEN_TYPE = "at+jwt"
# Issuer and verifier are the same service on synchronised clocks: a few seconds suffice.
LEEWAY_SECONDS = 5
MAX_TOKEN_LENGTH = 4096
# A compact JWS: three base64url segments. Anything else (odd bytes, non-UTF-8 header
# values, padding, spaces) is refused before any parsing, cheaply and without exceptions
# from outside PyJWT's family.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
REQUIRED_CLAIMS = ["sub", "sid", "iat", "exp", "iss", "aud", "jti"]
# Header parameters that would point verification at attacker-chosen key material.
_FORBIDDEN_HEADERS = {"jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256", "crit"}


class InvalidToken(Exception):
    """The token is not one this service issued, or it has expired."""


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    jti: str
    expires_at: int


def issue_access_token(settings: Settings, user_id: uuid.UUID, session_id: uuid.UUID) -> str:
    now = int(time.time())
    payload = {
        "sub": str(user_id),
        "sid": str(session_id),
        "iat": now,
        "nbf": now,
        "exp": now + settings.access_token_ttl,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(payload, settings.jwt_secret, algorithm=ALGORITHM, headers={"typ": TOKEN_TYPE})


class _PreparedHMAC(HMACAlgorithm):
    """HS256 for one secret, its key prepared once. PyJWT prepares an HMAC key on every
    verification, checking each time that it is no PEM, DER or JWK (a JSON parse that fails):
    a twentieth of a small request's CPU (tests.bench). Any other key gets the full checks."""

    def __init__(self, secret: bytes) -> None:
        super().__init__(HMACAlgorithm.SHA256)
        self._secret = secret
        self._prepared = super().prepare_key(secret)  # the checks, once

    def prepare_key(self, key: str | bytes) -> bytes:
        if key is self._secret:
            return self._prepared
        return super().prepare_key(key)


@functools.lru_cache(maxsize=4)  # the secret and the previous one
def _verification_key(secret: str) -> jwt.PyJWK:
    """The secret as a PyJWK bound to HS256 (PyJWT then verifies with that algorithm only)."""
    encoded = base64.urlsafe_b64encode(secret.encode()).rstrip(b"=").decode()
    key = jwt.PyJWK({"kty": "oct", "k": encoded}, algorithm=ALGORITHM)
    key.Algorithm = _PreparedHMAC(key.key)
    return key


def verify_access_token(settings: Settings, token: str) -> AccessClaims:
    """Verify signature (HS256 pinned), claims and header in one parse of the token."""
    if not is_well_formed(token):
        raise InvalidToken
    keys = [settings.jwt_secret]
    if settings.jwt_secret_previous:
        keys.append(settings.jwt_secret_previous)
    for key in keys:
        try:
            decoded = jwt.decode_complete(
                token,
                _verification_key(key),
                algorithms=[ALGORITHM],
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": REQUIRED_CLAIMS, "enforce_minimum_key_length": True},
            )
        except jwt.InvalidSignatureError:
            continue
        except (jwt.PyJWTError, ValueError, TypeError):  # ValueError covers UnicodeError
            raise InvalidToken from None
        header = decoded["header"]
        # The signature covers the header, so checking it after verification is as strict.
        if header.get("alg") != ALGORITHM or header.get("typ") != TOKEN_TYPE or _FORBIDDEN_HEADERS & set(header):
            raise InvalidToken
        return _claims(decoded["payload"])
    raise InvalidToken


def is_well_formed(token: str) -> bool:
    return len(token) <= MAX_TOKEN_LENGTH and _COMPACT_JWS.fullmatch(token) is not None


def _claims(payload: dict) -> AccessClaims:
    try:
        user_id = uuid.UUID(str(payload["sub"]))
        session_id = uuid.UUID(str(payload["sid"]))
        issued_at = int(payload["iat"])
    except (ValueError, TypeError, KeyError):
        raise InvalidToken from None
    if issued_at > time.time() + LEEWAY_SECONDS:
        raise InvalidToken
    if not isinstance(payload["jti"], str) or not isinstance(payload["exp"], int):
        raise InvalidToken
    return AccessClaims(user_id, session_id, payload["jti"], payload["exp"])


def new_refresh_token() -> tuple[str, str]:
    """A 256-bit opaque refresh token and the SHA-256 hash that is stored instead of it."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
