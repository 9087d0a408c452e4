"""SMART Backend Services: an access token for a system-to-system client (the ``--export`` sweep).

SMART App Launch 2.x, "Backend Services": the client proves who it is with a JWT it signs with its
own private key (``private_key_jwt``), POSTed to the token endpoint as a ``client_credentials``
grant with ``client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer``. The
assertion carries ``iss`` = ``sub`` = the client id, ``aud`` = the token URL, ``exp`` no more than
five minutes ahead, a unique ``jti``, and ``kid`` (the key's id in the JWK Set the server was
given) in its header. The algorithm follows the key: RSA → RS384, EC P-384 → ES384 (the two the
specification requires servers to support).

The token URL is ``--token-url`` or the ``token_endpoint`` of ``{base}/.well-known/smart-configuration``.
A token is reused until shortly before it expires, then a new one is asked for; a 401 from the FHIR
server forces one refresh (:meth:`TokenSource.invalidate`). Tokens and assertions are never logged
and never put into an exception message.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: SMART: ``exp`` no more than five minutes after the assertion is made.
ASSERTION_LIFETIME = 240
#: a token is renewed this many seconds before it expires (clock skew, a slow download)
RENEW_MARGIN = 60
#: ``expires_in`` assumed when the token response has none
DEFAULT_TOKEN_LIFETIME = 300
MAX_RESPONSE_BYTES = 1024 * 1024
DEFAULT_SCOPE = "system/*.read"


class AuthError(RuntimeError):
    """No access token could be had (the message never holds a credential)."""


@dataclass(frozen=True)
class ClientKey:
    """A private signing key from a PEM file, its algorithm and its ``kid``."""

    key: Any
    algorithm: str
    kid: str

    @classmethod
    def load(cls, path: Path, kid: str | None = None) -> "ClientKey":
        """Read an unencrypted PEM private key (PKCS#8 or traditional): RSA (≥ 2048 bits) → RS384,
        EC P-384 → ES384; ``kid`` defaults to the RFC 7638 thumbprint of its public JWK."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise AuthError(f"cannot read the key file {path}: {exc.strerror or exc}") from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except TypeError:
            raise AuthError(f"{path}: the private key is encrypted; give an unencrypted PEM key") from None
        except ValueError:
            raise AuthError(f"{path}: not a PEM private key") from None
        if isinstance(key, rsa.RSAPrivateKey):
            if key.key_size < 2048:
                raise AuthError(f"{path}: an RSA key of {key.key_size} bits; at least 2048 are required")
            algorithm = "RS384"
        elif isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP384R1):
            algorithm = "ES384"
        else:
            raise AuthError(f"{path}: SMART Backend Services signs with RS384 (an RSA key) or ES384 "
                            "(an EC key on P-384); this key is neither")
        out = cls(key, algorithm, "")
        return cls(key, algorithm, kid or thumbprint(out.public_jwk()))

    def public_jwk(self) -> dict[str, Any]:
        """The public key as a JWK (``kty``, ``n``/``e`` or ``crv``/``x``/``y``), with ``alg``,
        ``use`` and ``kid`` when known: what is registered with the server."""
        algo = jwt.get_algorithm_by_name(self.algorithm)
        jwk = json.loads(algo.to_jwk(self.key.public_key()))
        jwk.update({"alg": self.algorithm, "use": "sig"})
        if self.kid:
            jwk["kid"] = self.kid
        return jwk

    def jwks(self) -> dict[str, Any]:
        """The JWK Set of this one public key (``bone-cds jwks KEY.pem``)."""
        return {"keys": [self.public_jwk()]}


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): a stable ``kid`` for a key."""
    members = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canonical = json.dumps({k: jwk[k] for k in members}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def client_assertion(client_id: str, token_url: str, key: ClientKey, *, now: float | None = None) -> str:
    """The signed JWT the token endpoint authenticates the client with (a fresh ``jti`` each time)."""
    issued = int(time.time() if now is None else now)
    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "iat": issued,
              "exp": issued + ASSERTION_LIFETIME, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, key.key, algorithm=key.algorithm, headers={"kid": key.kid, "typ": "JWT"})


def _bounded_json(resp: requests.Response, what: str) -> Any:
    body = b""
    for chunk in resp.iter_content(64 * 1024):
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            raise AuthError(f"{what}: the answer is larger than {MAX_RESPONSE_BYTES:,} bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise AuthError(f"{what}: the answer (HTTP {resp.status_code}) is not JSON") from None


def discover_token_url(session: requests.Session, base: str, timeout: float = 30.0) -> str:
    """``token_endpoint`` of ``{base}/.well-known/smart-configuration``."""
    url = base.rstrip("/") + "/.well-known/smart-configuration"
    try:
        resp = session.get(url, headers={"Accept": "application/json"}, timeout=timeout, stream=True,
                           allow_redirects=False)
    except requests.RequestException as exc:
        raise AuthError(f"SMART configuration {url}: {type(exc).__name__}; give --token-url") from None
    with resp:
        if resp.status_code != 200:
            raise AuthError(f"SMART configuration {url}: HTTP {resp.status_code}; give --token-url")
        doc = _bounded_json(resp, f"SMART configuration {url}")
    endpoint = doc.get("token_endpoint") if isinstance(doc, dict) else None
    if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
        raise AuthError(f"SMART configuration {url} names no token_endpoint; give --token-url")
    return endpoint


class TokenSource:
    """Access tokens for one client, cached until :data:`RENEW_MARGIN` seconds before they expire;
    thread-safe (the parallel downloads share it)."""

    def __init__(self, session: requests.Session, token_url: str, client_id: str, key: ClientKey, *,
                 scope: str = DEFAULT_SCOPE, timeout: float = 30.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.session, self.token_url, self.client_id, self.key = session, token_url, client_id, key
        self.scope, self.timeout, self.clock = scope, timeout, clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self.issued = 0   # tokens obtained (for tests and the summary)

    def token(self) -> str:
        """A token valid for :data:`RENEW_MARGIN` seconds more (a fifth of its lifetime if that is
        shorter): a new one when needed."""
        with self._lock:
            if self._token is None or self.clock() >= self._renew_at:
                self._token, lifetime = self._fetch()
                self._renew_at = self.clock() + lifetime - min(RENEW_MARGIN, lifetime / 5)
                self.issued += 1
            return self._token

    def invalidate(self, token: str) -> None:
        """The server refused ``token`` (401): the next :meth:`token` asks for a new one."""
        with self._lock:
            if self._token == token:
                self._token = None

    def _fetch(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials", "scope": self.scope,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": client_assertion(self.client_id, self.token_url, self.key,
                                                     now=self.clock())}
        try:
            resp = self.session.post(self.token_url, data=form, timeout=self.timeout, stream=True,
                                     headers={"Accept": "application/json"}, allow_redirects=False)
        except requests.RequestException as exc:
            raise AuthError(f"token endpoint {self.token_url}: {type(exc).__name__}") from None
        with resp:
            doc = _bounded_json(resp, f"token endpoint {self.token_url}")
        if resp.status_code != 200 or not isinstance(doc, dict) or not isinstance(doc.get("access_token"), str):
            error = doc.get("error") if isinstance(doc, dict) else None
            desc = doc.get("error_description") if isinstance(doc, dict) else None
            detail = ": ".join(str(x)[:300] for x in (error, desc) if x) or "no access_token"
            raise AuthError(f"token endpoint {self.token_url} refused client {self.client_id!r} "
                            f"(HTTP {resp.status_code}): {detail}")
        lifetime = doc.get("expires_in")
        lifetime = float(lifetime) if isinstance(lifetime, (int, float)) and lifetime > 0 else DEFAULT_TOKEN_LIFETIME
        return doc["access_token"], lifetime


__all__ = ["ASSERTION_TYPE", "AuthError", "ClientKey", "TokenSource", "client_assertion",
           "discover_token_url", "thumbprint"]
