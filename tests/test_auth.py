"""Tests for cds_service.auth: the caller's JWT (checklist SEC-3 … SEC-10, IOP-2).

Tokens are signed with keys generated here (EC P-384, RSA 2048); key sets are served inline,
from files, or from a URL mocked with ``responses``. The clock is injected and fixed in 2023,
so these tests also show that no check falls back to the wall clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import sqlite3
import threading
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings as hyp_settings, strategies as st
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from cds_service import auth
from cds_service.auth import (
    PUBLIC_MESSAGE,
    AuthError,
    AuthSettings,
    ConfigError,
    InMemoryReplayStore,
    JwtVerifier,
    ReplayStore,
    SqliteReplayStore,
    audiences_for,
)

NOW = 1_700_000_000  # 2023-11-14: far from the wall clock on purpose
ISS = "https://ehr.example.org"
JWKS_URI = "https://ehr.example.org/.well-known/jwks.json"
BASE = "https://cds.example.org"
SERVICE_URL = f"{BASE}/cds-services/bone-safety-order-select"
DISCOVERY_URL = f"{BASE}/cds-services"
SANDBOX_ISS = "https://sandbox.cds-hooks.org"
SANDBOX_JWKS = "https://sandbox.cds-hooks.org/.well-known/jwks.json"
DROP = object()  # marks a claim to leave out


class FakeClock:
    """Injected time source."""

    def __init__(self, now: float = NOW) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- keys, key sets and tokens -------------------------------------------------------------------


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key_2() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def public_jwk(private_key: Any, kid: str, alg: str | None = None) -> dict:
    """Public JWK of ``private_key`` built with PyJWT's own serialiser."""
    public = private_key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    jwk.update({"kid": kid, "use": "sig"})
    if alg:
        jwk["alg"] = alg
    return jwk


@pytest.fixture(scope="module")
def jwks(ec_key: Any, rsa_key: Any) -> dict:
    return {"keys": [public_jwk(ec_key, "ec-1", "ES384"), public_jwk(rsa_key, "rsa-1", "RS384")]}


def claims(**overrides: Any) -> dict:
    """A valid CDS Hooks 2.0 claim set (SEC-5): no ``sub``, no ``tenant``."""
    base: dict[str, Any] = {
        "iss": ISS,
        "aud": SERVICE_URL,
        "exp": NOW + 300,
        "iat": NOW,
        "jti": str(uuid.uuid4()),
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not DROP}


def sign(
    private_key: Any, payload: dict | None = None, alg: str = "ES384", kid: str | None = "ec-1", **header: Any
) -> str:
    headers: dict[str, Any] = {"typ": "JWT", **header}
    if kid is not None:
        headers["kid"] = kid
    payload = payload if payload is not None else claims()
    return jwt.encode(payload, private_key, algorithm=alg, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header: dict, payload: dict, signature: bytes = b"") -> tuple[str, str]:
    """(signing input, token) built by hand, for tokens PyJWT refuses to produce."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return signing_input, f"{signing_input}.{b64(signature)}"


def bearer(token: str) -> str:
    return f"Bearer {token}"


def env_for(issuers: dict, **extra: str) -> dict[str, str]:
    return {"BONE_CDS_AUTH": "jwt", "BONE_CDS_TRUSTED_ISSUERS": json.dumps(issuers),
            "BONE_CDS_AUDIENCE_BASE_URLS": BASE, **extra}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def verifier(jwks: dict, clock: FakeClock) -> JwtVerifier:
    """Verifier trusting ISS with an inline JWK Set (EC and RSA key)."""
    return JwtVerifier(AuthSettings.from_env(env_for({ISS: {"jwks": jwks}})), clock=clock)


def rejected(verifier: JwtVerifier, token: str | None, audiences: list[str] | None = None) -> AuthError:
    header = None if token is None else bearer(token)
    with pytest.raises(AuthError) as info:
        verifier.verify(header, audiences if audiences is not None else [SERVICE_URL])
    err = info.value
    assert str(err) == PUBLIC_MESSAGE == err.public_message
    return err


# --- valid tokens ----------------------------------------------------------------------------------


def test_sec5_sec6_valid_es384_token_returns_claims(verifier: JwtVerifier, ec_key: Any) -> None:
    """SEC-5/SEC-6: an ES384 token with iss, aud, exp, iat, jti (no sub) is accepted."""
    payload = claims()
    got = verifier.verify(bearer(sign(ec_key, payload)), [SERVICE_URL])
    assert got == payload
    assert "sub" not in got


def test_sec6_valid_rs384_token(verifier: JwtVerifier, rsa_key: Any) -> None:
    """SEC-6: RS384 (Epic) is accepted by default."""
    payload = claims()
    assert verifier.verify(bearer(sign(rsa_key, payload, alg="RS384", kid="rsa-1")), [SERVICE_URL]) == payload


def test_sec6_rsa_jwk_without_alg_member_verifies_rs384(rsa_key: Any, clock: FakeClock) -> None:
    """SEC-7: a published RSA JWK without ``alg`` still verifies RS384 (PyJWK alone would assume RS256)."""
    jwk = public_jwk(rsa_key, "rsa-noalg")
    v = JwtVerifier(AuthSettings.from_env(env_for({ISS: {"jwks": {"keys": [jwk]}}})), clock=clock)
    v.verify(bearer(sign(rsa_key, alg="RS384", kid="rsa-noalg")), [SERVICE_URL])


def test_bearer_scheme_is_case_insensitive(verifier: JwtVerifier, ec_key: Any) -> None:
    verifier.verify(f"bearer   {sign(ec_key)}  ", [SERVICE_URL])


# --- SEC-6: algorithms ---------------------------------------------------------------------------


def test_sec6_alg_none_refused(verifier: JwtVerifier) -> None:
    """SEC-6: an unsigned token (``alg: none``) never passes."""
    _, token = compact({"alg": "none", "typ": "JWT", "kid": "ec-1"}, claims())
    assert rejected(verifier, token).reason == "header alg not accepted"


@pytest.mark.parametrize("alg", ["HS256", "HS384"])
def test_sec6_hmac_signed_with_public_key_refused(verifier: JwtVerifier, rsa_key: Any, alg: str) -> None:
    """SEC-6: algorithm confusion, an HS* token keyed with the issuer's public key PEM, is refused."""
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input, _ = compact({"alg": alg, "typ": "JWT", "kid": "rsa-1"}, claims())
    digest = hashlib.sha256 if alg == "HS256" else hashlib.sha384
    signature = hmac.new(pem, signing_input.encode(), digest).digest()
    token = f"{signing_input}.{b64(signature)}"
    assert rejected(verifier, token).reason == "header alg not accepted"


def test_sec6_algorithm_not_configured_refused(verifier: JwtVerifier, rsa_key: Any) -> None:
    """SEC-6: RS256 is asymmetric but not on the default list (ES384, RS384)."""
    token = sign(rsa_key, alg="RS256", kid="rsa-1")
    assert rejected(verifier, token).reason == "header alg not accepted"


def test_sec6_configured_algorithm_list(jwks: dict, rsa_key: Any, ec_key: Any, clock: FakeClock) -> None:
    """SEC-6: ``BONE_CDS_JWT_ALGORITHMS`` narrows the list (here: RS384 only)."""
    v = JwtVerifier(
        AuthSettings.from_env(env_for({ISS: {"jwks": jwks}}, BONE_CDS_JWT_ALGORITHMS="RS384")), clock=clock
    )
    v.verify(bearer(sign(rsa_key, alg="RS384", kid="rsa-1")), [SERVICE_URL])
    assert rejected(v, sign(ec_key)).reason == "header alg not accepted"


def test_sec6_header_alg_must_fit_the_key(verifier: JwtVerifier, rsa_key: Any) -> None:
    """SEC-6: an RS384 token naming the EC key's kid is refused (key/alg binding)."""
    token = sign(rsa_key, alg="RS384", kid="ec-1")
    assert rejected(verifier, token).reason == "key for kid does not fit header alg"


# --- SEC-9: time, audience, signature -----------------------------------------------------------------


def test_sec9_expired_token_refused(verifier: JwtVerifier, ec_key: Any) -> None:
    """SEC-9: exp in the past (beyond the 60 s leeway) is refused."""
    token = sign(ec_key, claims(iat=NOW - 400, exp=NOW - 61))
    assert rejected(verifier, token).reason == "token expired (exp)"


def test_sec9_expiry_within_leeway_accepted(verifier: JwtVerifier, ec_key: Any) -> None:
    verifier.verify(bearer(sign(ec_key, claims(iat=NOW - 300, exp=NOW - 30))), [SERVICE_URL])


def test_sec9_expiry_follows_the_injected_clock(verifier: JwtVerifier, ec_key: Any, clock: FakeClock) -> None:
    token = sign(ec_key)
    clock.advance(300 + 60)
    assert rejected(verifier, token).reason == "token expired (exp)"


def test_sec9_future_iat_refused(verifier: JwtVerifier, ec_key: Any) -> None:
    """iat more than the leeway in the future is refused."""
    token = sign(ec_key, claims(iat=NOW + 120, exp=NOW + 400))
    assert rejected(verifier, token).reason == "token issued in the future (iat)"


def test_sec9_iat_skew_within_leeway_accepted(verifier: JwtVerifier, ec_key: Any) -> None:
    verifier.verify(bearer(sign(ec_key, claims(iat=NOW + 50, exp=NOW + 350))), [SERVICE_URL])


def test_sec9_nbf_in_future_refused(verifier: JwtVerifier, ec_key: Any) -> None:
    token = sign(ec_key, claims(nbf=NOW + 120))
    assert rejected(verifier, token).reason == "token not yet valid (nbf)"


def test_sec10_token_lifetime_over_one_hour_refused(verifier: JwtVerifier, ec_key: Any) -> None:
    """SEC-10: jtis are kept for the longest lifetime (≤ 1 h), so longer-lived tokens are refused."""
    token = sign(ec_key, claims(exp=NOW + 3601))
    assert "lifetime" in rejected(verifier, token).reason


def test_sec9_wrong_aud_refused(verifier: JwtVerifier, ec_key: Any) -> None:
    """SEC-9: a token for the discovery endpoint does not open a service endpoint."""
    token = sign(ec_key, claims(aud=DISCOVERY_URL))
    assert rejected(verifier, token).reason == "aud does not name this endpoint"


def test_sec9_aud_of_another_host_refused(verifier: JwtVerifier, ec_key: Any) -> None:
    token = sign(ec_key, claims(aud="https://evil.example/cds-services/bone-safety-order-select"))
    assert rejected(verifier, token).reason == "aud does not name this endpoint"


def test_sec5_aud_list_with_one_match_accepted(verifier: JwtVerifier, ec_key: Any) -> None:
    """SEC-5: aud may be an array of strings; one match is enough."""
    token = sign(ec_key, claims(aud=["https://other.example/x", SERVICE_URL]))
    verifier.verify(bearer(token), [SERVICE_URL])


@pytest.mark.parametrize("aud", [[], [123], 42, ""])
def test_sec5_malformed_aud_refused(verifier: JwtVerifier, ec_key: Any, aud: Any) -> None:
    assert rejected(verifier, sign(ec_key, claims(aud=aud))).reason in {
        "aud does not name this endpoint",
        "claim aud missing",
    }


def test_sec5_aud_trailing_slash_and_host_case_normalised(verifier: JwtVerifier, ec_key: Any) -> None:
    token = sign(ec_key, claims(aud="https://CDS.example.org:443/cds-services/bone-safety-order-select/"))
    verifier.verify(bearer(token), [SERVICE_URL])


def test_sec9_empty_audience_list_fails_closed(verifier: JwtVerifier, ec_key: Any) -> None:
    assert rejected(verifier, sign(ec_key), audiences=[]).reason == "aud does not name this endpoint"


def test_sec9_tampered_payload_refused(verifier: JwtVerifier, ec_key: Any) -> None:
    """SEC-9: a payload swapped under a valid signature fails the signature check."""
    header_seg, _, signature_seg = sign(ec_key, claims(aud=DISCOVERY_URL)).split(".")
    forged_payload = b64(json.dumps(claims()).encode())
    token = f"{header_seg}.{forged_payload}.{signature_seg}"
    assert rejected(verifier, token).reason == "signature invalid"


def test_sec9_signature_of_another_key_refused(verifier: JwtVerifier, ec_key_2: Any) -> None:
    token = sign(ec_key_2, kid="ec-1")  # right kid, wrong private key
    assert rejected(verifier, token).reason == "signature invalid"


@hyp_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_sec9_any_single_character_change_is_refused(
    verifier: JwtVerifier, ec_key: Any, data: st.DataObject
) -> None:
    """SEC-9 (property): changing any one character of a valid token never yields a valid token."""
    token = sign(ec_key)
    position = data.draw(st.integers(0, len(token) - 1))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
    replacement = data.draw(st.sampled_from(alphabet).filter(lambda c: c != token[position]))
    tampered = token[:position] + replacement + token[position + 1 :]
    with pytest.raises(AuthError):
        verifier.verify(bearer(tampered), [SERVICE_URL])


# --- SEC-4/SEC-5: required header fields and claims ------------------------------------------------------


@pytest.mark.parametrize("claim", ["iss", "aud", "exp", "iat", "jti"])
def test_sec5_missing_required_claim_refused(verifier: JwtVerifier, ec_key: Any, claim: str) -> None:
    """SEC-5: iss, aud, exp, iat, jti are all required (sub is not)."""
    token = sign(ec_key, claims(**{claim: DROP}))
    assert claim in rejected(verifier, token).reason


def test_sec5_missing_jti_refused(verifier: JwtVerifier, ec_key: Any) -> None:
    """SEC-5: jti (anti-replay nonce) is required."""
    assert rejected(verifier, sign(ec_key, claims(jti=DROP))).reason == "claim jti missing"


@pytest.mark.parametrize("bad", [{"exp": "soon"}, {"iat": True}, {"jti": 7}, {"jti": ""}])
def test_sec5_claims_of_wrong_type_refused(verifier: JwtVerifier, ec_key: Any, bad: dict) -> None:
    rejected(verifier, sign(ec_key, claims(**bad)))


def test_sec4_missing_kid_refused(verifier: JwtVerifier, ec_key: Any) -> None:
    """SEC-4: kid is REQUIRED in the header."""
    assert rejected(verifier, sign(ec_key, kid=None)).reason == "header kid missing"


def test_sec4_typ_other_than_jwt_refused(verifier: JwtVerifier, ec_key: Any) -> None:
    """SEC-4: typ is ``JWT``; an OAuth access token (``at+jwt``) is not a CDS Hooks call token."""
    assert rejected(verifier, sign(ec_key, typ="at+jwt")).reason == "header typ is not JWT"


# --- SEC-8: issuers and jku -------------------------------------------------------------------------


def test_sec8_unknown_iss_refused(verifier: JwtVerifier, ec_key: Any) -> None:
    """SEC-8: iss must be on the allowlist."""
    err = rejected(verifier, sign(ec_key, claims(iss="https://evil.example")))
    assert err.reason == "iss not trusted" and err.iss == "https://evil.example"


def test_sec7_unknown_kid_refused_without_fetch(verifier: JwtVerifier, ec_key: Any) -> None:
    """SEC-7: an inline key set is never refetched; an unknown kid is refused."""
    with responses.RequestsMock() as rsps:
        assert rejected(verifier, sign(ec_key, kid="nope")).reason == "unknown kid"
        assert len(rsps.calls) == 0


@pytest.fixture
def uri_verifier(clock: FakeClock) -> JwtVerifier:
    return JwtVerifier(AuthSettings.from_env(env_for({ISS: {"jwks_uri": JWKS_URI}})), clock=clock)


def test_sec8_foreign_jku_refused_and_never_fetched(
    uri_verifier: JwtVerifier, ec_key: Any, jwks: dict
) -> None:
    """SEC-8: a jku other than the issuer's configured jwks_uri is refused; nothing is fetched."""
    evil = "https://evil.example/jwks.json"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(evil, json=jwks)
        rsps.get(JWKS_URI, json=jwks)
        err = rejected(uri_verifier, sign(ec_key, jku=evil))
        assert err.reason == "jku is not the issuer's configured jwks_uri"
        assert len(rsps.calls) == 0


def test_sec8_jku_equal_to_jwks_uri_accepted(uri_verifier: JwtVerifier, ec_key: Any, jwks: dict) -> None:
    with responses.RequestsMock() as rsps:
        rsps.get(JWKS_URI, json=jwks)
        uri_verifier.verify(bearer(sign(ec_key, jku=JWKS_URI)), [SERVICE_URL])
        assert len(rsps.calls) == 1


def test_sec8_jku_with_inline_key_source_refused(verifier: JwtVerifier, ec_key: Any) -> None:
    """SEC-8: with an out-of-band key set there is no jku to match, so any jku is refused."""
    assert "jku" in rejected(verifier, sign(ec_key, jku=JWKS_URI)).reason


# --- SEC-7/SEC-10: key sets, caching, rotation --------------------------------------------------------


def test_sec10_key_rotation_refetches_once_rate_limited(
    ec_key: Any, ec_key_2: Any, clock: FakeClock
) -> None:
    """SEC-10: an unknown kid triggers exactly one refetch; another unknown kid within 30 s does not."""
    old = {"keys": [public_jwk(ec_key, "ec-1", "ES384")]}
    rotated = {"keys": [public_jwk(ec_key, "ec-1", "ES384"), public_jwk(ec_key_2, "ec-2", "ES384")]}
    v = JwtVerifier(AuthSettings.from_env(env_for({ISS: {"jwks_uri": JWKS_URI}})), clock=clock)
    with responses.RequestsMock() as rsps:
        rsps.get(JWKS_URI, json=old)
        rsps.get(JWKS_URI, json=rotated)  # responses serves registered replies in order
        v.verify(bearer(sign(ec_key)), [SERVICE_URL])
        assert len(rsps.calls) == 1
        v.verify(bearer(sign(ec_key)), [SERVICE_URL])  # cached
        assert len(rsps.calls) == 1

        clock.advance(40)
        v.verify(bearer(sign(ec_key_2, kid="ec-2")), [SERVICE_URL])  # rotated key: one refetch
        assert len(rsps.calls) == 2

        clock.advance(10)  # inside the 30 s window
        assert rejected(v, sign(ec_key_2, kid="ec-3")).reason == "unknown kid"
        assert len(rsps.calls) == 2


def test_sec10_unknown_kid_right_after_fetch_does_not_refetch(
    uri_verifier: JwtVerifier, ec_key: Any, jwks: dict
) -> None:
    with responses.RequestsMock() as rsps:
        rsps.get(JWKS_URI, json=jwks)
        assert rejected(uri_verifier, sign(ec_key, kid="ec-9")).reason == "unknown kid"
        assert len(rsps.calls) == 1


def test_sec10_jwks_cache_has_bounded_lifetime(ec_key: Any, jwks: dict, clock: FakeClock) -> None:
    """SEC-10: the cached key set is refetched once ``BONE_CDS_JWKS_CACHE_SECONDS`` have passed."""
    v = JwtVerifier(
        AuthSettings.from_env(env_for({ISS: {"jwks_uri": JWKS_URI}}, BONE_CDS_JWKS_CACHE_SECONDS="120")),
        clock=clock,
    )
    with responses.RequestsMock() as rsps:
        rsps.get(JWKS_URI, json=jwks)
        v.verify(bearer(sign(ec_key)), [SERVICE_URL])
        clock.advance(119)
        v.verify(bearer(sign(ec_key, claims(iat=clock.now, exp=clock.now + 300))), [SERVICE_URL])
        assert len(rsps.calls) == 1
        clock.advance(1)
        v.verify(bearer(sign(ec_key, claims(iat=clock.now, exp=clock.now + 300))), [SERVICE_URL])
        assert len(rsps.calls) == 2


def test_sec10_removed_key_stops_verifying_after_cache_lifetime(
    ec_key: Any, ec_key_2: Any, clock: FakeClock
) -> None:
    """A key the issuer withdraws (revocation) is gone after one cache lifetime."""
    both = {"keys": [public_jwk(ec_key, "ec-1", "ES384"), public_jwk(ec_key_2, "ec-2", "ES384")]}
    only_new = {"keys": [public_jwk(ec_key_2, "ec-2", "ES384")]}
    v = JwtVerifier(AuthSettings.from_env(env_for({ISS: {"jwks_uri": JWKS_URI}})), clock=clock)
    with responses.RequestsMock() as rsps:
        rsps.get(JWKS_URI, json=both)
        rsps.get(JWKS_URI, json=only_new)
        v.verify(bearer(sign(ec_key)), [SERVICE_URL])
        clock.advance(300)
        assert rejected(v, sign(ec_key, claims(iat=clock.now, exp=clock.now + 300))).reason == "unknown kid"


def test_sec10_jwks_fetch_failure_fails_closed_and_is_rate_limited(
    uri_verifier: JwtVerifier, ec_key: Any, jwks: dict, clock: FakeClock
) -> None:
    """An unreachable key set means 401 (fail closed), retried at most every 30 s."""
    with responses.RequestsMock() as rsps:
        rsps.get(JWKS_URI, status=503)
        rsps.get(JWKS_URI, body=requests.ConnectionError("down"))
        rsps.get(JWKS_URI, json=jwks)
        assert rejected(uri_verifier, sign(ec_key)).reason == "issuer key set unavailable"
        assert rejected(uri_verifier, sign(ec_key)).reason == "issuer key set unavailable"
        assert len(rsps.calls) == 1
        clock.advance(30)
        assert rejected(uri_verifier, sign(ec_key, claims(iat=clock.now, exp=clock.now + 300))).reason == (
            "issuer key set unavailable"
        )
        assert len(rsps.calls) == 2
        clock.advance(30)
        uri_verifier.verify(bearer(sign(ec_key, claims(iat=clock.now, exp=clock.now + 300))), [SERVICE_URL])
        assert len(rsps.calls) == 3


def test_sec7_jwks_uri_request_uses_a_timeout(uri_verifier: JwtVerifier, ec_key: Any, jwks: dict) -> None:
    seen: dict[str, Any] = {}
    real_get = uri_verifier.session.get

    def spy(url: str, **kwargs: Any) -> requests.Response:
        seen.update(kwargs)
        return real_get(url, **kwargs)

    uri_verifier.session.get = spy  # type: ignore[method-assign]
    with responses.RequestsMock() as rsps:
        rsps.get(JWKS_URI, json=jwks)
        uri_verifier.verify(bearer(sign(ec_key)), [SERVICE_URL])
    assert seen["timeout"] == auth.JWKS_TIMEOUT_SECONDS <= 2


def test_sec7_jwks_file_source(tmp_path: Path, ec_key: Any, jwks: dict, clock: FakeClock) -> None:
    """SEC-7: a key set exchanged out of band, in a file."""
    path = tmp_path / "ehr-jwks.json"
    path.write_text(json.dumps(jwks))
    v = JwtVerifier(AuthSettings.from_env(env_for({ISS: {"jwks_file": str(path)}})), clock=clock)
    v.verify(bearer(sign(ec_key)), [SERVICE_URL])


def test_sec7_inline_jwks_skips_symmetric_and_private_keys(ec_key: Any, clock: FakeClock) -> None:
    """An ``oct`` key or private key material in a published set is never used."""
    private = json.loads(ECAlgorithm.to_jwk(ec_key))
    private.update({"kid": "ec-private"})
    oct_key = {"kty": "oct", "kid": "oct-1", "k": b64(b"secret-secret-secret-secret-secret")}
    keys = {"keys": [oct_key, private, public_jwk(ec_key, "ec-1", "ES384")]}
    v = JwtVerifier(AuthSettings.from_env(env_for({ISS: {"jwks": keys}})), clock=clock)
    v.verify(bearer(sign(ec_key)), [SERVICE_URL])
    assert rejected(v, sign(ec_key, kid="ec-private")).reason == "unknown kid"
    signing_input, _ = compact({"alg": "HS256", "typ": "JWT", "kid": "oct-1"}, claims())
    mac = hmac.new(b"secret-secret-secret-secret-secret", signing_input.encode(), hashlib.sha256).digest()
    assert rejected(v, f"{signing_input}.{b64(mac)}").reason == "header alg not accepted"


def test_config_trusted_issuers_as_file_path(
    tmp_path: Path, ec_key: Any, jwks: dict, clock: FakeClock
) -> None:
    """``BONE_CDS_TRUSTED_ISSUERS`` may name a file; a relative jwks_file is read next to it."""
    (tmp_path / "keys.json").write_text(json.dumps(jwks))
    issuers = tmp_path / "issuers.json"
    issuers.write_text(json.dumps({ISS: {"jwks_file": "keys.json"}, SANDBOX_ISS: {"jwks_uri": SANDBOX_JWKS}}))
    settings = AuthSettings.from_env({"BONE_CDS_AUTH": "jwt", "BONE_CDS_TRUSTED_ISSUERS": str(issuers),
                                      "BONE_CDS_AUDIENCE_BASE_URLS": BASE})
    assert settings.trusted_issuers[ISS] == {"jwks_file": str(tmp_path / "keys.json")}
    assert settings.trusted_issuers[SANDBOX_ISS] == {"jwks_uri": SANDBOX_JWKS}
    JwtVerifier(settings, clock=clock).verify(bearer(sign(ec_key)), [SERVICE_URL])


# --- configuration --------------------------------------------------------------------------------


def test_config_defaults() -> None:
    s = AuthSettings.from_env({})
    assert s == AuthSettings(
        mode="none",
        algorithms=("ES384", "RS384"),
        trusted_issuers={},
        audience_base_urls=(),
        leeway_seconds=60,
        jwks_cache_seconds=300,
        replay_db=None,
    )
    assert not s.enabled


def test_config_full(tmp_path: Path) -> None:
    env = env_for(
        {ISS: {"jwks_uri": JWKS_URI}},
        BONE_CDS_JWT_ALGORITHMS=" es384 , PS384,RS384 ",
        BONE_CDS_AUDIENCE_BASE_URLS="https://cds.example.org/, https://gw.example.org/bone",
        BONE_CDS_JWT_LEEWAY_SECONDS="30",
        BONE_CDS_JWKS_CACHE_SECONDS="600",
        BONE_CDS_REPLAY_DB=str(tmp_path / "replay.db"),
    )
    s = AuthSettings.from_env(env)
    assert s.enabled and s.mode == "jwt"
    assert s.algorithms == ("ES384", "PS384", "RS384")
    assert s.audience_base_urls == ("https://cds.example.org", "https://gw.example.org/bone")
    assert (s.leeway_seconds, s.jwks_cache_seconds, s.replay_db) == (30, 600, str(tmp_path / "replay.db"))


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"BONE_CDS_AUTH": "maybe"}, "BONE_CDS_AUTH"),
        ({"BONE_CDS_JWT_ALGORITHMS": "ES384,HS256"}, "BONE_CDS_JWT_ALGORITHMS"),
        ({"BONE_CDS_JWT_ALGORITHMS": "hs512"}, "BONE_CDS_JWT_ALGORITHMS"),
        ({"BONE_CDS_JWT_ALGORITHMS": "none"}, "BONE_CDS_JWT_ALGORITHMS"),
        ({"BONE_CDS_JWT_ALGORITHMS": "ES999"}, "BONE_CDS_JWT_ALGORITHMS"),
        ({"BONE_CDS_JWT_ALGORITHMS": " , "}, "BONE_CDS_JWT_ALGORITHMS"),
        ({"BONE_CDS_AUTH": "jwt"}, "BONE_CDS_TRUSTED_ISSUERS"),
        ({"BONE_CDS_TRUSTED_ISSUERS": '{"https://ehr.example.org": '}, "BONE_CDS_TRUSTED_ISSUERS"),
        ({"BONE_CDS_TRUSTED_ISSUERS": "[]"}, "BONE_CDS_TRUSTED_ISSUERS"),
        ({"BONE_CDS_TRUSTED_ISSUERS": "/no/such/issuers.json"}, "BONE_CDS_TRUSTED_ISSUERS"),
        ({"BONE_CDS_TRUSTED_ISSUERS": json.dumps({ISS: {}})}, "BONE_CDS_TRUSTED_ISSUERS"),
        ({"BONE_CDS_TRUSTED_ISSUERS": json.dumps({ISS: "https://x"})}, "BONE_CDS_TRUSTED_ISSUERS"),
        (
            {"BONE_CDS_TRUSTED_ISSUERS": json.dumps({ISS: {"jwks_uri": JWKS_URI, "jwks": {"keys": []}}})},
            "BONE_CDS_TRUSTED_ISSUERS",
        ),
        ({"BONE_CDS_TRUSTED_ISSUERS": json.dumps({ISS: {"jwks_url": JWKS_URI}})}, "BONE_CDS_TRUSTED_ISSUERS"),
        (
            {"BONE_CDS_TRUSTED_ISSUERS": json.dumps({ISS: {"jwks_uri": "http://ehr.example.org/jwks"}})},
            "BONE_CDS_TRUSTED_ISSUERS",
        ),
        (
            {"BONE_CDS_TRUSTED_ISSUERS": json.dumps({ISS: {"jwks_file": "/no/such.json"}})},
            "BONE_CDS_TRUSTED_ISSUERS",
        ),
        ({"BONE_CDS_TRUSTED_ISSUERS": json.dumps({ISS: {"jwks": {"k": 1}}})}, "BONE_CDS_TRUSTED_ISSUERS"),
        ({"BONE_CDS_AUDIENCE_BASE_URLS": "cds.example.org"}, "BONE_CDS_AUDIENCE_BASE_URLS"),
        ({"BONE_CDS_JWT_LEEWAY_SECONDS": "1m"}, "BONE_CDS_JWT_LEEWAY_SECONDS"),
        ({"BONE_CDS_JWT_LEEWAY_SECONDS": "-5"}, "BONE_CDS_JWT_LEEWAY_SECONDS"),
        ({"BONE_CDS_JWKS_CACHE_SECONDS": "forever"}, "BONE_CDS_JWKS_CACHE_SECONDS"),
    ],
)
def test_config_errors_name_the_variable(env: dict, variable: str) -> None:
    """SEC-6/SEC-8: bad configuration stops start-up with a message naming the variable."""
    with pytest.raises(ConfigError, match=variable):
        AuthSettings.from_env(env)


def test_config_http_jwks_uri_allowed_on_loopback() -> None:
    s = AuthSettings.from_env(env_for({ISS: {"jwks_uri": "http://127.0.0.1:9000/jwks.json"}}))
    assert s.trusted_issuers[ISS]["jwks_uri"] == "http://127.0.0.1:9000/jwks.json"


def test_config_inline_jwks_without_usable_key_fails_at_startup() -> None:
    only_symmetric = {"keys": [{"kty": "oct", "kid": "x", "k": "c2VjcmV0"}]}
    settings = AuthSettings.from_env(env_for({ISS: {"jwks": only_symmetric}}))
    with pytest.raises(ConfigError, match="BONE_CDS_TRUSTED_ISSUERS"):
        JwtVerifier(settings)


def test_config_bad_jwks_file_fails_at_startup(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    settings = AuthSettings.from_env(env_for({ISS: {"jwks_file": str(path)}}))
    with pytest.raises(ConfigError, match="jwks_file"):
        JwtVerifier(settings)


@pytest.mark.parametrize("algs", [("HS256",), ("ES384", "none"), ()])
def test_sec6_verifier_rechecks_hand_built_settings(jwks: dict, algs: tuple[str, ...]) -> None:
    """SEC-6: settings built without from_env cannot smuggle in none/HS* either."""
    settings = AuthSettings(mode="jwt", algorithms=algs, trusted_issuers={ISS: {"jwks": jwks}})
    with pytest.raises(ConfigError):
        JwtVerifier(settings)


# --- Authorization header -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        None, "", "   ", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz",
        "Token abc.def.ghi", "Bearer not-a-jwt", "Bearer a.b",
    ],
)
def test_sec3_missing_or_malformed_authorization_refused(verifier: JwtVerifier, header: str | None) -> None:
    """SEC-3: every call carries ``Authorization: Bearer {JWT}``."""
    with pytest.raises(AuthError) as info:
        verifier.verify(header, [SERVICE_URL])
    assert str(info.value) == PUBLIC_MESSAGE


def test_sec3_oversized_token_refused(verifier: JwtVerifier) -> None:
    assert rejected(verifier, "a" * (auth.MAX_TOKEN_CHARS + 1)).reason == "bearer token too long"


def test_sec10_public_message_does_not_depend_on_the_failure(verifier: JwtVerifier, ec_key: Any) -> None:
    """SEC-10: answer with no detail; the reason is private."""
    errors = [
        rejected(verifier, sign(ec_key, claims(aud=DISCOVERY_URL))),
        rejected(verifier, sign(ec_key, claims(exp=NOW - 3600, iat=NOW - 3700))),
        rejected(verifier, sign(ec_key, kid="other")),
    ]
    assert {str(e) for e in errors} == {PUBLIC_MESSAGE}
    assert {e.args for e in errors} == {(PUBLIC_MESSAGE,)}
    assert len({e.reason for e in errors}) == 3
    # No chained exception carries PyJWT's detail into a traceback.
    assert all(e.__cause__ is None and (e.__context__ is None or e.__suppress_context__) for e in errors)


# --- SEC-10: replay --------------------------------------------------------------------------------


def test_sec10_replayed_jti_refused(verifier: JwtVerifier, ec_key: Any) -> None:
    """SEC-10: a jti is accepted once."""
    token = sign(ec_key)
    verifier.verify(bearer(token), [SERVICE_URL])
    assert rejected(verifier, token).reason == "jti replayed"


def test_sec10_same_jti_reused_in_a_new_token_refused(
    verifier: JwtVerifier, ec_key: Any, rsa_key: Any
) -> None:
    jti = str(uuid.uuid4())
    verifier.verify(bearer(sign(ec_key, claims(jti=jti))), [SERVICE_URL])
    err = rejected(verifier, sign(rsa_key, claims(jti=jti), alg="RS384", kid="rsa-1"))
    assert err.reason == "jti replayed" and err.jti == jti


def test_sec10_rejected_token_does_not_burn_its_jti(verifier: JwtVerifier, ec_key: Any) -> None:
    payload = claims()
    rejected(verifier, sign(ec_key, payload), audiences=[DISCOVERY_URL])
    verifier.verify(bearer(sign(ec_key, payload)), [SERVICE_URL])


def test_sec10_replay_store_failure_fails_closed(jwks: dict, ec_key: Any, clock: FakeClock) -> None:
    class Broken:
        def check_and_add(self, iss: str, jti: str, exp: float) -> bool:
            raise OSError("disk full")

    v = JwtVerifier(AuthSettings.from_env(env_for({ISS: {"jwks": jwks}})), replay_store=Broken(), clock=clock)
    assert rejected(v, sign(ec_key)).reason == "replay store error (OSError)"


def test_in_memory_replay_store_expiry() -> None:
    clock = FakeClock()
    store = InMemoryReplayStore(clock=clock)
    assert isinstance(store, ReplayStore)
    assert store.check_and_add(ISS, "j1", NOW + 10)
    assert not store.check_and_add(ISS, "j1", NOW + 10)
    assert store.check_and_add(SANDBOX_ISS, "j1", NOW + 10)  # jti is per issuer
    clock.advance(10)
    assert len(store) == 0  # nothing unexpired left
    assert store.check_and_add(ISS, "j1", NOW + 20)


def test_in_memory_replay_store_is_bounded() -> None:
    clock = FakeClock()
    store = InMemoryReplayStore(max_entries=3, clock=clock)
    for i in range(10):
        assert store.check_and_add(ISS, f"j{i}", NOW + 100 + i)
        assert len(store) <= 3
    assert not store.check_and_add(ISS, "j9", NOW + 109)  # the newest are kept
    assert store.check_and_add(ISS, "j0", NOW + 100)  # the one closest to expiry went first


def test_in_memory_replay_store_is_thread_safe() -> None:
    store = InMemoryReplayStore(clock=FakeClock())
    results: list[bool] = []
    barrier = threading.Barrier(16)

    def worker() -> None:
        barrier.wait()
        results.append(store.check_and_add(ISS, "race", NOW + 60))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 15 + [True]


def test_sec10_sqlite_replay_store_shared_by_two_instances(tmp_path: Path) -> None:
    """SEC-10: two workers' stores on one SQLite file see each other's jtis."""
    clock = FakeClock()
    path = tmp_path / "replay.db"
    worker_a, worker_b = SqliteReplayStore(path, clock=clock), SqliteReplayStore(path, clock=clock)
    assert isinstance(worker_a, ReplayStore)
    assert worker_a.check_and_add(ISS, "j1", NOW + 60)
    assert not worker_b.check_and_add(ISS, "j1", NOW + 60)
    assert not worker_a.check_and_add(ISS, "j1", NOW + 60)
    assert worker_b.check_and_add(SANDBOX_ISS, "j1", NOW + 60)
    clock.advance(60)  # expired: the pair may be used again, and expired rows are purged
    assert worker_b.check_and_add(ISS, "j1", NOW + 120)
    assert not worker_a.check_and_add(ISS, "j1", NOW + 120)
    worker_a.close()
    worker_b.close()

    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        rows = conn.execute("SELECT iss, jti FROM seen_jti ORDER BY iss").fetchall()
    assert rows == [(ISS, "j1")]  # the expired SANDBOX_ISS row was purged


def test_sec10_sqlite_replay_store_race_between_instances(tmp_path: Path) -> None:
    path = tmp_path / "replay.db"
    stores = [SqliteReplayStore(path, clock=FakeClock()) for _ in range(8)]
    results: list[bool] = []
    barrier = threading.Barrier(len(stores))

    def worker(store: SqliteReplayStore) -> None:
        barrier.wait()
        results.append(store.check_and_add(ISS, "race", NOW + 60))

    threads = [threading.Thread(target=worker, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]


def test_sec10_replay_db_setting_shares_jtis_between_verifiers(
    tmp_path: Path, jwks: dict, ec_key: Any, clock: FakeClock
) -> None:
    """``BONE_CDS_REPLAY_DB``: a token accepted by one worker is a replay for another."""
    env = env_for({ISS: {"jwks": jwks}}, BONE_CDS_REPLAY_DB=str(tmp_path / "r.db"))
    settings = AuthSettings.from_env(env)
    worker_a, worker_b = JwtVerifier(settings, clock=clock), JwtVerifier(settings, clock=clock)
    assert isinstance(worker_a.replay_store, SqliteReplayStore)
    token = sign(ec_key)
    worker_a.verify(bearer(token), [SERVICE_URL])
    assert rejected(worker_b, token).reason == "jti replayed"


def test_config_unusable_replay_db_fails_at_startup(tmp_path: Path, jwks: dict) -> None:
    settings = AuthSettings.from_env(
        env_for({ISS: {"jwks": jwks}}, BONE_CDS_REPLAY_DB=str(tmp_path / "missing-dir" / "r.db"))
    )
    with pytest.raises(ConfigError, match="BONE_CDS_REPLAY_DB"):
        JwtVerifier(settings)


# --- SEC-10: logging ---------------------------------------------------------------------------------


def test_sec10_log_names_check_iss_jti_never_the_token(
    verifier: JwtVerifier, ec_key: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """SEC-10: never log the JWT; iss and jti may be logged."""
    caplog.set_level(logging.DEBUG, logger="cds_service.auth")
    jti = str(uuid.uuid4())
    token = sign(ec_key, claims(jti=jti))
    header_seg, payload_seg, signature_seg = token.split(".")
    verifier.verify(bearer(token), [SERVICE_URL])
    rejected(verifier, token)  # replay
    rejected(verifier, sign(ec_key, claims(jti=jti)), audiences=[DISCOVERY_URL])  # wrong aud
    tampered = f"{header_seg}.{payload_seg}.{signature_seg[:-4]}AAAA"
    rejected(verifier, tampered)

    records = [r for r in caplog.records if r.name == "cds_service.auth"]
    text = "\n".join(r.getMessage() for r in records) + caplog.text
    assert any(r.levelno == logging.WARNING and "jti replayed" in r.getMessage() for r in records)
    assert "aud does not name this endpoint" in text and "signature invalid" in text
    assert ISS in text and jti in text
    for secret in (token, signature_seg, payload_seg, header_seg, signature_seg[:-4]):
        assert secret not in text


# --- audiences ---------------------------------------------------------------------------------------


def test_audiences_for_configured_bases_only() -> None:
    """SEC-5/SEC-9, issue 12: aud = a configured public base + the path; never the request's URL."""
    got = audiences_for(
        "/cds-services/bone-safety-order-select",
        ["https://cds.example.org/", "https://gw.example.org/bone", "https://CDS.example.org"],
    )
    assert got == [SERVICE_URL, "https://gw.example.org/bone/cds-services/bone-safety-order-select"]


def test_audiences_for_normalises_trailing_slashes_and_default_ports() -> None:
    got = audiences_for("cds-services/", ["https://cds.example.org:443//"])
    assert got == [DISCOVERY_URL]
    assert audiences_for("/cds-services", []) == []


def test_jwt_mode_needs_configured_audiences() -> None:
    """Issue 12: without BONE_CDS_AUDIENCE_BASE_URLS the audience would have to come from the
    request; start-up stops instead."""
    env = env_for({ISS: {"jwks_uri": JWKS_URI}})
    del env["BONE_CDS_AUDIENCE_BASE_URLS"]
    with pytest.raises(ConfigError, match="BONE_CDS_AUDIENCE_BASE_URLS: required"):
        AuthSettings.from_env(env)


def test_audiences_for_feeds_verify(verifier: JwtVerifier, ec_key: Any) -> None:
    """Behind a proxy Flask sees an internal URL; the configured public base still matches."""
    auds = audiences_for("/cds-services/bone-safety-order-select", [BASE])
    verifier.verify(bearer(sign(ec_key)), auds)


# --- IOP-2: the CDS Hooks sandbox ----------------------------------------------------------------------


def test_iop2_sandbox_shaped_token_verifies(ec_key: Any, clock: FakeClock) -> None:
    """IOP-2: ES384, typ JWT, kid + jku (sandbox JWKS URL), iss sandbox, aud = endpoint URL,
    exp = now+300, jti uuid4, no sub, no tenant; key set fetched from the allowlisted jwks_uri."""
    settings = AuthSettings.from_env(
        {
            "BONE_CDS_AUTH": "jwt",
            "BONE_CDS_TRUSTED_ISSUERS": json.dumps({SANDBOX_ISS: {"jwks_uri": SANDBOX_JWKS}}),
            "BONE_CDS_AUDIENCE_BASE_URLS": BASE,
        }
    )
    v = JwtVerifier(settings, clock=clock)
    kid = str(uuid.uuid4())
    sandbox_jwks = {"keys": [public_jwk(ec_key, kid, "ES384")]}

    def sandbox_token(aud: str) -> str:
        payload = {"iss": SANDBOX_ISS, "aud": aud, "exp": NOW + 300, "iat": NOW, "jti": str(uuid.uuid4())}
        headers = {"typ": "JWT", "kid": kid, "jku": SANDBOX_JWKS}
        token = jwt.encode(payload, ec_key, algorithm="ES384", headers=headers)
        header = jwt.get_unverified_header(token)
        assert header == {"alg": "ES384", "typ": "JWT", "kid": kid, "jku": SANDBOX_JWKS}
        return token

    path = "/cds-services/bone-safety-order-select"
    with responses.RequestsMock() as rsps:
        rsps.get(SANDBOX_JWKS, json=sandbox_jwks)
        def auds(endpoint_path: str) -> list[str]:  # what the Flask wiring computes
            return audiences_for(endpoint_path, [BASE])

        got = v.verify(bearer(sandbox_token(SERVICE_URL)), auds(path))
        assert got["iss"] == SANDBOX_ISS and "sub" not in got and "tenant" not in got
        feedback = f"{SERVICE_URL}/feedback"
        v.verify(bearer(sandbox_token(feedback)), auds(f"{path}/feedback"))
        v.verify(bearer(sandbox_token(DISCOVERY_URL)), auds("/cds-services"))
        assert len(rsps.calls) == 1
        # A sandbox token for the service endpoint is not valid at the feedback endpoint.
        assert rejected(v, sandbox_token(SERVICE_URL), [feedback]).reason == "aud does not name this endpoint"


@pytest.mark.parametrize("exp,iat", [(float("nan"), NOW), (NOW + 300, float("nan")), (10 ** 400, NOW),
                                     (float("inf"), NOW), (NOW + 300, -(10 ** 400))])
def test_sec9_non_finite_or_huge_time_claims_refused(verifier: JwtVerifier, ec_key: Any, exp: Any, iat: Any) -> None:
    """Issue 12: a NaN exp compared false with everything (accepted); a 400-digit exp overflowed
    float() (a 500). Both are refused like any claim that is not a NumericDate."""
    token = sign(ec_key, claims(exp=exp, iat=iat))
    assert rejected(verifier, token).reason == "claim exp or iat is not a number"


def test_sec7_pinned_keys_with_an_allowed_jku(tmp_path: Path, ec_key: Any, jwks: dict, clock: FakeClock) -> None:
    """Issue 12: an issuer with pinned keys rejected every token carrying a ``jku`` (the sandbox
    always sends one). ``{"jwks_file": PATH, "jku": URL}`` accepts exactly that jku, with the
    pinned keys: nothing is fetched (``responses`` fails any request)."""
    path = tmp_path / "sandbox-jwks.json"
    path.write_text(json.dumps(jwks))
    v = JwtVerifier(AuthSettings.from_env(env_for({ISS: {"jwks_file": str(path), "jku": SANDBOX_JWKS}})),
                    clock=clock)
    with responses.RequestsMock():
        v.verify(bearer(sign(ec_key, jku=SANDBOX_JWKS)), [SERVICE_URL])
        v.verify(bearer(sign(ec_key)), [SERVICE_URL])   # no jku: the pinned keys as before
        assert rejected(v, sign(ec_key, jku="https://evil.example/jwks.json")).reason \
            == "jku is not the issuer's configured jwks_uri"
    inline = JwtVerifier(AuthSettings.from_env(env_for({ISS: {"jwks": jwks, "jku": SANDBOX_JWKS}})), clock=clock)
    inline.verify(bearer(sign(ec_key, jku=SANDBOX_JWKS)), [SERVICE_URL])


def test_config_jku_needs_pinned_keys_and_a_url() -> None:
    with pytest.raises(ConfigError, match="jku goes with pinned keys"):
        AuthSettings.from_env(env_for({ISS: {"jwks_uri": JWKS_URI, "jku": JWKS_URI}}))
    with pytest.raises(ConfigError, match="jku"):
        AuthSettings.from_env(env_for({ISS: {"jwks": {"keys": []}, "jku": "not a url"}}))


def test_sec10_slow_key_server_is_bounded_and_blocks_no_other_issuer(ec_key: Any, ec_key_2: Any,
                                                                   clock: FakeClock) -> None:
    """Issue 12, measured: one issuer whose JWKS endpoint drips a byte a second made calls wait
    40 s and a valid token of another issuer time out. The fetch is now bounded in total time,
    and no lock another issuer needs is held while it runs."""
    import time as _time

    from tests.trust_helpers import drip_server
    srv, _conns, stop = drip_server(drip_seconds=0.2, total=1000)
    slow_uri = f"http://127.0.0.1:{srv.getsockname()[1]}/jwks.json"
    other = "https://other-ehr.example.org"
    env = env_for({ISS: {"jwks_uri": slow_uri}, other: {"jwks": {"keys": [public_jwk(ec_key_2, "ec-2", "ES384")]}}})
    v = JwtVerifier(AuthSettings.from_env(env), clock=clock)
    outcome: dict[str, Any] = {}

    def slow_call() -> None:
        t = _time.monotonic()
        try:
            v.verify(bearer(sign(ec_key)), [SERVICE_URL])
            outcome["slow"] = "accepted"
        except AuthError as exc:
            outcome["slow"] = exc.reason
        outcome["slow_s"] = _time.monotonic() - t
    try:
        worker = threading.Thread(target=slow_call)
        worker.start()
        _time.sleep(0.3)
        t = _time.monotonic()
        v.verify(bearer(sign(ec_key_2, claims(iss=other), kid="ec-2")), [SERVICE_URL])
        assert _time.monotonic() - t < 0.5              # the other issuer is never held up
        worker.join(10)
        assert outcome["slow"] == "issuer key set unavailable"
        assert outcome["slow_s"] < auth.JWKS_TIMEOUT_SECONDS + 1.0
    finally:
        stop.set()
        srv.close()


def test_sec8_jwks_uri_redirect_is_not_followed(ec_key: Any, jwks: dict, clock: FakeClock) -> None:
    v = JwtVerifier(AuthSettings.from_env(env_for({ISS: {"jwks_uri": JWKS_URI}})), clock=clock)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(JWKS_URI, status=302, headers={"Location": "http://10.0.0.9/jwks.json"})
        rsps.get("http://10.0.0.9/jwks.json", json=jwks)
        assert rejected(v, sign(ec_key)).reason == "issuer key set unavailable"
        assert [c.request.url for c in rsps.calls] == [JWKS_URI]
