"""Verifiable credentials (API.md "B"): an approved achievement as a signed Open Badges 3.0
``OpenBadgeCredential`` (a VC-JWT: compact JWS, EdDSA or ES256, ``kid``), revocable through a
W3C Bitstring Status List, and the student's CLR 2.0 bundle.

Keys come from CREDENTIAL_SIGNING_KEY (PEM, JWK, or a 64-hex-digit Ed25519 seed, which is what
Heroku's app.json generator gives); the public keys, the previous one during a rotation too,
are published at /.well-known/jwks.json. Signing is PyJWT's, with keys from ``cryptography``:
no hand-made crypto.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from models import Achievement, AchievementType, CredentialStatus, OrgUnit, Status, User
from service.achievements.rules import authorize
from service.context import CurrentUser
from service.errors import Conflict
from service.platform.jsonutil import iso
from service.platform.settings import ConfigError
from service.university import in_reach

VC_CONTEXT = "https://www.w3.org/ns/credentials/v2"
OB_CONTEXT = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
CLR_CONTEXT = "https://purl.imsglobal.org/spec/clr/v2p0/context-2.0.1.json"
MEDIA_TYPE = "application/vc+jwt"
STATUS_LIST_BITS = 131_072  # 16 KiB: the W3C minimum, so a list tells nothing about the issuer's volume
STATUS_PATH = "/api/v1/credentials/status/1"


# --- keys --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SigningKey:
    private: Any
    algorithm: str

    @classmethod
    def load(cls, text: str) -> SigningKey:
        text = text.strip()
        try:
            if text.startswith("-----BEGIN"):
                key = serialization.load_pem_private_key(text.encode(), password=None)
            elif text.startswith("{"):
                key = jwt.PyJWK.from_json(text).key
            else:
                key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(text))
        except (ValueError, TypeError, jwt.PyJWTError):
            raise ConfigError("CREDENTIAL_SIGNING_KEY must be a private key: PEM, JWK or a 64-hex-digit "
                              "Ed25519 seed") from None
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return cls(key, "EdDSA")
        if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
            return cls(key, "ES256")
        raise ConfigError("CREDENTIAL_SIGNING_KEY must be an Ed25519 or a P-256 private key")

    @cached_property
    def public_jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.algorithm)
        jwk = json.loads(algorithm.to_jwk(self.private.public_key()))
        members = {k: jwk[k] for k in sorted(jwk) if k in ("crv", "kty", "x", "y")}
        # RFC 7638 thumbprint: the key's own name, stable across restarts and instances.
        digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
        kid = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        return {**members, "kid": kid, "alg": self.algorithm, "use": "sig"}

    @property
    def kid(self) -> str:
        return self.public_jwk["kid"]

    def sign(self, payload: dict[str, Any]) -> str:
        return jwt.encode(payload, self.private, algorithm=self.algorithm,
                          headers={"kid": self.kid, "typ": "vc+jwt"})


def generate_seed() -> str:
    """A new Ed25519 private key as its 64-hex-digit seed."""
    return secrets.token_hex(32)


@dataclass(frozen=True)
class Keys:
    current: SigningKey
    previous: SigningKey | None = None

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk for key in (self.current, self.previous) if key is not None]}


# --- the credential ------------------------------------------------------------------------------------

def identity_hash(email: str, salt: str) -> str:
    return "sha256$" + hashlib.sha256((email + salt).encode("utf-8")).hexdigest()


async def _issuer(base_url: str) -> dict[str, Any]:
    root = await OrgUnit.get(parent_id=None)
    return {"id": f"{base_url}/", "type": ["Profile"], "name": root.name}


def _subject_identifier(email: str, achievement_id: uuid.UUID) -> dict[str, Any]:
    # A salt per achievement: the same student's credentials cannot be linked by their hashes.
    salt = hashlib.sha256(f"identity/{achievement_id}".encode()).hexdigest()[:16]
    return {"type": "IdentityObject", "hashed": True, "identityHash": identity_hash(email, salt),
            "identityType": "emailAddress", "salt": salt}


async def _status_entry(achievement: Achievement) -> CredentialStatus:
    entry = await CredentialStatus.get_or_none(achievement_id=achievement.id, version=achievement.version)
    if entry is None:
        entry, _ = await CredentialStatus.get_or_create(achievement_id=achievement.id, version=achievement.version)
    return entry


async def open_badge(achievement: Achievement, owner: User, type_name: str, base_url: str) -> dict[str, Any]:
    entry = await _status_entry(achievement)
    achievement_url = f"{base_url}/api/v1/achievements/{achievement.id}"
    credential: dict[str, Any] = {
        "@context": [VC_CONTEXT, OB_CONTEXT],
        "id": f"urn:uuid:{uuid.uuid5(achievement.id, f'version/{achievement.version}')}",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "issuer": await _issuer(base_url),
        "validFrom": iso(achievement.reviewed_at or achievement.updated_at),
        "name": achievement.title,
        "credentialSubject": {
            "type": ["AchievementSubject"],
            "identifier": [_subject_identifier(owner.email, achievement.id)],
            "achievement": {
                "id": achievement_url,
                "type": ["Achievement"],
                "name": achievement.title,
                "description": achievement.description or f"{type_name}: {achievement.title}",
                "criteria": {"narrative": f"A {type_name.lower()} recorded by the student on "
                                          f"{achievement.date.isoformat()} and verified by a curator of the "
                                          "university."},
                "tag": [str(achievement.category), achievement.type],
            },
        },
        "credentialStatus": {
            "id": f"{base_url}{STATUS_PATH}#{entry.id}",
            "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation",
            "statusListIndex": str(entry.id),
            "statusListCredential": f"{base_url}{STATUS_PATH}",
        },
    }
    if achievement.proof_url:
        credential["evidence"] = [{"id": achievement.proof_url, "type": ["Evidence"], "name": "Proof"}]
    return credential


async def credential_for(user: CurrentUser, achievement_id: uuid.UUID, keys: Keys, base_url: str) -> str:
    """The signed credential of an approved achievement, for whoever may read it."""
    achievement = await Achievement.get_or_none(id=achievement_id)
    owner_id = achievement.owner_id if achievement else None
    authorize(user, owner_id, "read", in_reach=await in_reach(user, owner_id))
    if achievement.status != Status.APPROVED:
        raise Conflict("Only an approved achievement has a credential.", code="not_approved")
    owner = await User.get(id=achievement.owner_id)

    type_name = (await AchievementType.get(slug=achievement.type)).name
    credential = await open_badge(achievement, owner, type_name, base_url)
    return keys.current.sign(_claims(credential))


def _claims(credential: dict[str, Any]) -> dict[str, Any]:
    """VC-JOSE: the credential is the claims set; iss, jti and iat mirror it for JWT tooling."""
    return {**credential, "iss": credential["issuer"]["id"], "jti": credential["id"],
            "iat": int(dt.datetime.now(dt.UTC).timestamp())}


async def revoke(achievement_id: uuid.UUID, using_db=None) -> int:
    """Revoke every credential issued for the achievement (edited back, rejected, deleted)."""
    query = CredentialStatus.filter(achievement_id=achievement_id, revoked_at__isnull=True)
    if using_db is not None:
        query = query.using_db(using_db)
    return await query.update(revoked_at=dt.datetime.now(dt.UTC))


# --- the status list ------------------------------------------------------------------------------------

def encode_bits(revoked: list[int]) -> str:
    """The W3C encodedList: GZIP of the bitstring (index 0 = the leftmost bit), base64url
    without padding, multibase prefix "u"."""
    bits = bytearray(STATUS_LIST_BITS // 8)
    for index in revoked:
        if 0 <= index < STATUS_LIST_BITS:
            bits[index // 8] |= 0x80 >> (index % 8)
    return "u" + base64.urlsafe_b64encode(gzip.compress(bytes(bits), mtime=0)).rstrip(b"=").decode()


def decode_bits(encoded: str) -> bytes:
    raw = encoded.removeprefix("u")
    return gzip.decompress(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))


async def status_list(keys: Keys, base_url: str) -> str:
    revoked = await CredentialStatus.filter(revoked_at__isnull=False).values_list("id", flat=True)
    credential = {
        "@context": [VC_CONTEXT],
        "id": f"{base_url}{STATUS_PATH}",
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": await _issuer(base_url),
        "validFrom": iso(dt.datetime.now(dt.UTC).replace(microsecond=0)),
        "credentialSubject": {"id": f"{base_url}{STATUS_PATH}#list", "type": "BitstringStatusList",
                              "statusPurpose": "revocation", "encodedList": encode_bits(list(revoked))},
    }
    return keys.current.sign(_claims(credential))


# --- the CLR bundle ----------------------------------------------------------------------------------------

async def clr_for(user: CurrentUser, keys: Keys, base_url: str) -> str:
    approved = await Achievement.filter(owner_id=user.id, status=Status.APPROVED).order_by("date", "id")
    owner = await User.get(id=user.id)

    names = dict(await AchievementType.all().values_list("slug", "name"))
    envelopes = []
    for achievement in approved:
        badge = await open_badge(achievement, owner, names.get(achievement.type, achievement.type), base_url)
        envelopes.append({"@context": [VC_CONTEXT], "type": "EnvelopedVerifiableCredential",
                          "id": f"data:{MEDIA_TYPE},{keys.current.sign(_claims(badge))}"})
    salt = hashlib.sha256(f"clr/{user.id}".encode()).hexdigest()[:16]
    clr = {
        "@context": [VC_CONTEXT, CLR_CONTEXT, OB_CONTEXT],
        "id": f"urn:uuid:{uuid.uuid4()}",
        "type": ["VerifiableCredential", "ClrCredential"],
        "issuer": await _issuer(base_url),
        "validFrom": iso(dt.datetime.now(dt.UTC).replace(microsecond=0)),
        "name": f"Achievements of {owner.full_name}",
        "credentialSubject": {
            "type": ["ClrSubject"],
            "identifier": [{"type": "IdentityObject", "hashed": True, "identityType": "emailAddress",
                            "identityHash": identity_hash(owner.email, salt), "salt": salt}],
            "verifiableCredential": envelopes,
        },
    }
    return keys.current.sign(_claims(clr))
