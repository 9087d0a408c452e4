"""SMART Backend Services client (``sweep/smart_backend.py``): the JWT assertion's claims and
algorithm, the token's reuse and renewal, discovery, and the errors (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs

import jwt
import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sweep.smart_backend import (ASSERTION_TYPE, AuthError, ClientKey, TokenSource, client_assertion,
                                 discover_token_url)

BASE = "https://ehr.example/fhir"
TOKEN = "https://ehr.example/auth/token"


def write_key(path: Path, key: object) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,  # type: ignore[attr-defined]
                                       serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return path


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_key(tmp_path_factory.mktemp("k") / "rsa.pem",
                     rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def ec_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_key(tmp_path_factory.mktemp("k") / "ec.pem", ec.generate_private_key(ec.SECP384R1()))


@pytest.mark.parametrize("which,alg", [("rsa_key", "RS384"), ("ec_key", "ES384")])
def test_the_assertion_is_signed_with_the_keys_algorithm_and_carries_the_smart_claims(
        which: str, alg: str, request: pytest.FixtureRequest) -> None:
    key = ClientKey.load(request.getfixturevalue(which))
    assert key.algorithm == alg
    now = 1_800_000_000
    token = client_assertion("my-client", TOKEN, key, now=now)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == alg and header["kid"] == key.kid and header["typ"] == "JWT"
    public = jwt.PyJWK(key.public_jwk()).key
    claims = jwt.decode(token, public, algorithms=[alg], audience=TOKEN, options={"verify_exp": False, "verify_iat": False})
    assert claims["iss"] == claims["sub"] == "my-client"
    assert claims["aud"] == TOKEN
    assert 0 < claims["exp"] - now <= 300       # SMART: at most five minutes ahead
    other = jwt.decode(client_assertion("my-client", TOKEN, key, now=now), public, algorithms=[alg],
                       audience=TOKEN, options={"verify_exp": False, "verify_iat": False})
    assert other["jti"] != claims["jti"]        # a fresh jti every time


def test_kid_defaults_to_the_rfc7638_thumbprint_and_can_be_given(rsa_key: Path) -> None:
    key = ClientKey.load(rsa_key)
    jwk = key.public_jwk()
    assert set(jwk) >= {"kty", "n", "e", "alg", "kid"} and "d" not in jwk   # the public part only
    assert jwt.PyJWK(jwk).key.public_numbers() == key.key.public_key().public_numbers()
    assert len(key.kid) == 43 and ClientKey.load(rsa_key).kid == key.kid     # SHA-256, stable
    assert ClientKey.load(rsa_key, "site-key-1").kid == "site-key-1"


def test_unusable_keys_are_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(AuthError, match="cannot read"):
        ClientKey.load(tmp_path / "missing.pem")
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(AuthError, match="not a PEM private key"):
        ClientKey.load(tmp_path / "junk.pem")
    p256 = write_key(tmp_path / "p256.pem", ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(AuthError, match="RS384 .* or ES384"):
        ClientKey.load(p256)
    small = write_key(tmp_path / "small.pem", rsa.generate_private_key(public_exponent=65537, key_size=1024))
    with pytest.raises(AuthError, match="at least 2048"):
        ClientKey.load(small)


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@responses.activate
def test_the_token_is_reused_then_renewed_before_it_expires(rsa_key: Path) -> None:
    seen: list[dict] = []

    def issue(req: requests.PreparedRequest) -> tuple[int, dict, str]:
        form = {k: v[0] for k, v in parse_qs(req.body).items()}
        seen.append(form)
        return 200, {}, json.dumps({"access_token": f"tok-{len(seen)}", "token_type": "bearer", "expires_in": 600})
    responses.add_callback(responses.POST, TOKEN, callback=issue)
    clock = Clock()
    source = TokenSource(requests.Session(), TOKEN, "my-client", ClientKey.load(rsa_key), clock=clock)
    assert source.token() == "tok-1"
    clock.t += 500                 # 100 s left: more than the 60 s margin
    assert source.token() == "tok-1"
    clock.t += 50                  # 50 s left: renewed
    assert source.token() == "tok-2"
    source.invalidate("tok-1")     # a stale token's 401 does not drop the new one
    assert source.token() == "tok-2"
    source.invalidate("tok-2")     # the server refused the current one: a new one
    assert source.token() == "tok-3"
    form = seen[0]
    assert form["grant_type"] == "client_credentials" and form["scope"] == "system/*.read"
    assert form["client_assertion_type"] == ASSERTION_TYPE
    assert len({f["client_assertion"] for f in seen}) == 3


@responses.activate
def test_a_refusal_says_the_servers_error_but_never_the_assertion(rsa_key: Path) -> None:
    responses.add(responses.POST, TOKEN, status=401,
                  json={"error": "invalid_client", "error_description": "no key with that kid"})
    source = TokenSource(requests.Session(), TOKEN, "my-client", ClientKey.load(rsa_key))
    with pytest.raises(AuthError) as info:
        source.token()
    message = str(info.value)
    assert "invalid_client" in message and "no key with that kid" in message and "HTTP 401" in message
    sent = parse_qs(responses.calls[0].request.body)["client_assertion"][0]
    assert sent not in message and sent[:20] not in message


@responses.activate
def test_the_token_url_is_discovered_from_the_smart_configuration() -> None:
    responses.add(responses.GET, f"{BASE}/.well-known/smart-configuration",
                  json={"token_endpoint": TOKEN, "grant_types_supported": ["client_credentials"]})
    assert discover_token_url(requests.Session(), BASE) == TOKEN
    responses.replace(responses.GET, f"{BASE}/.well-known/smart-configuration", status=404)
    with pytest.raises(AuthError, match="give --token-url"):
        discover_token_url(requests.Session(), BASE)
