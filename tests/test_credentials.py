"""Verifiable credentials (API.md "B"), checked the way a third party would: the JWS verified
with the published JWKS (PyJWT, a key it builds from the JWK), the payload validated against
1EdTech's Open Badges 3.0 JSON Schema, the status list decoded bit by bit."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jsonschema
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from service.credentials import SigningKey, decode_bits, encode_bits
from service.platform.settings import ConfigError
from tests.conftest import review

ROOT = Path(__file__).resolve().parent.parent
OB3_SCHEMA = json.loads((ROOT / "tests" / "fixtures" / "ob_v3p0_achievementcredential_schema.json").read_text())
ACH = "/api/v1/achievements"


def verify(api, token: str) -> tuple[dict, dict]:
    """What an independent verifier does: pick the key by kid from /.well-known/jwks.json."""
    jwks = api.get("/.well-known/jwks.json").json
    header = jwt.get_unverified_header(token)
    assert header["alg"] in ("EdDSA", "ES256") and header["typ"] == "vc+jwt"
    jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    key = jwt.PyJWK(jwk)
    payload = jwt.decode(token, key.key, algorithms=[jwk["alg"]], options={"verify_aud": False})
    return header, payload


def approved_achievement(api, users, **fields):
    student, curator = users.signed_in(full_name="Ada Lovelace"), users.signed_in("curator")
    body = {"title": "Regional olympiad in mathematics, 2nd place", "type": "olympiad", "date": "2026-03-14",
            "proof_url": "https://example.org/diploma.pdf", **fields}
    created = api.post(ACH, token=student["token"], json=body).json
    assert review(api, created["id"], curator, decision="approved").status == 200
    return student, curator, created


def credential(api, session, achievement_id):
    return api.get(f"{ACH}/{achievement_id}/credential", token=session["token"])


def test_an_approved_achievement_is_a_valid_signed_open_badge(api, users):
    student, curator, created = approved_achievement(api, users)
    response = credential(api, student, created["id"])
    assert response.status == 200 and response.headers["content-type"] == "application/vc+jwt"
    _, badge = verify(api, response.text)
    jsonschema.Draft201909Validator(OB3_SCHEMA).validate(badge)
    assert badge["@context"][:2] == ["https://www.w3.org/ns/credentials/v2",
                                     "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"]
    assert "OpenBadgeCredential" in badge["type"] and badge["issuer"]["type"] == ["Profile"]
    assert badge["issuer"]["name"] == "University"
    achievement = badge["credentialSubject"]["achievement"]
    assert achievement["name"] == created["title"] and achievement["criteria"]["narrative"]
    assert badge["evidence"][0]["id"] == "https://example.org/diploma.pdf"
    identity = badge["credentialSubject"]["identifier"][0]
    assert identity["hashed"] is True and identity["identityType"] == "emailAddress"
    assert identity["identityHash"] == "sha256$" + hashlib.sha256(
        (student["email"] + identity["salt"]).encode()).hexdigest()
    assert student["email"] not in response.text  # never the plain address
    assert badge["credentialStatus"]["type"] == "BitstringStatusListEntry"
    # Staff in scope may fetch it too; another student gets 404 as for a missing id.
    assert credential(api, curator, created["id"]).status == 200
    assert credential(api, users.signed_in(), created["id"]).status == 404


def test_only_approved_achievements_have_credentials(api, users):
    student = users.signed_in()
    pending = api.post(ACH, token=student["token"], json={"title": "Pending", "type": "olympiad",
                                                          "date": "2026-01-01"}).json
    response = credential(api, student, pending["id"])
    assert response.status == 409 and response.json["code"] == "not_approved"


def _revoked(api, badge) -> bool:
    status = badge["credentialStatus"]
    path = "/" + status["statusListCredential"].split("://", 1)[1].split("/", 1)[1]
    token = api.get(path).text
    _, status_list = verify(api, token)
    assert "BitstringStatusListCredential" in status_list["type"]
    bits = decode_bits(status_list["credentialSubject"]["encodedList"])
    assert len(bits) * 8 >= 131_072
    index = int(status["statusListIndex"])
    return bool(bits[index // 8] & (0x80 >> (index % 8)))


@pytest.mark.parametrize("how", ["edit", "reject", "delete"])
def test_revocation_sets_the_status_bit(api, users, how):
    student, curator, created = approved_achievement(api, users)
    _, badge = verify(api, credential(api, student, created["id"]).text)
    assert _revoked(api, badge) is False
    path = f"{ACH}/{created['id']}"
    if how == "edit":
        assert api.patch(path, token=student["token"], json={"description": "more"}).status == 200
    elif how == "reject":
        assert review(api, created["id"], curator, decision="rejected", comment="fake").status == 200
    else:
        assert api.delete(path, token=student["token"]).status == 204
    assert _revoked(api, badge) is True


def test_clr_bundles_the_approved_credentials(api, users):
    student, _, created = approved_achievement(api, users)
    response = api.get("/api/v1/me/clr", token=student["token"])
    assert response.status == 200
    _, clr = verify(api, response.text)
    assert "ClrCredential" in clr["type"]
    envelopes = clr["credentialSubject"]["verifiableCredential"]
    assert len(envelopes) == 1 and envelopes[0]["type"] == "EnvelopedVerifiableCredential"
    _, inner = verify(api, envelopes[0]["id"].split(",", 1)[1])
    jsonschema.Draft201909Validator(OB3_SCHEMA).validate(inner)
    assert inner["credentialSubject"]["achievement"]["id"].endswith(created["id"])


def test_rotation_keeps_the_previous_public_key_published(build_api, users):
    old = "5a" * 32
    rotated = build_api(CREDENTIAL_SIGNING_KEY="6b" * 32, CREDENTIAL_SIGNING_KEY_PREVIOUS=old)
    try:
        keys = rotated.get("/.well-known/jwks.json").json["keys"]
        assert len(keys) == 2 and all(k["kty"] == "OKP" and "d" not in k for k in keys)
        assert keys[1]["kid"] == SigningKey.load(old).kid
    finally:
        rotated.close()


def test_signing_keys_pem_jwk_and_seed():
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    assert SigningKey.load(pem).algorithm == "ES256"
    seed = SigningKey.load("11" * 32)
    assert seed.algorithm == "EdDSA"
    assert SigningKey.load(json.dumps(jwt.algorithms.OKPAlgorithm.to_jwk(seed.private, as_dict=True))).kid == seed.kid
    for bad in ("not a key", "11" * 16, "-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----"):
        with pytest.raises(ConfigError):
            SigningKey.load(bad)
    assert decode_bits(encode_bits([0, 7, 131_071]))[0] == 0b10000001
