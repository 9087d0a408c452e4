"""Caller authentication wired through the app (checklist SEC-2 … SEC-10, CORS-1/2, IOP-2).

``tests/test_auth.py`` tests the verifier itself; here the whole app runs with
``BONE_CDS_AUTH=jwt`` and one trusted issuer whose key set is inline. Tokens are ES384 with
``aud`` = the full endpoint URL, as the CDS Hooks sandbox sends them.
"""

from __future__ import annotations

import logging
import uuid

import pytest
from gunicorn.app.base import BaseApplication

from cds_service import cli
from cds_service.app import create_app
from cds_service.auth import PUBLIC_MESSAGE
from cds_service.config import Settings
from hooks.services import services
from tests.factory import DMAB60, NOW, draft, hook_request, patient
from tests.trust_helpers import PUBLIC_BASE, Signer

PV, OSEL, OSIGN = (s.id for s in services())
ORIGIN = "https://sandbox.cds-hooks.org"
UNAUTHORIZED = {"error": "unauthorized", "message": PUBLIC_MESSAGE}


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer()


@pytest.fixture
def app(tmp_path, signer):
    settings = Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path / "data"), **signer.env()})
    return create_app(settings, clock=lambda: NOW)


@pytest.fixture
def client(app):
    return app.test_client()


def url(path: str) -> str:
    return f"{PUBLIC_BASE}{path}"


def feedback_body(card: str | None = None) -> dict:
    return {
        "feedback": [
            {
                "card": card or str(uuid.uuid4()),
                "outcome": "overridden",
                "outcomeTimestamp": "2026-11-23T15:05:00Z",
            }
        ]
    }


def assert_401(r) -> None:
    """SEC-10: 401, a JSON body that names no check, RFC 6750 challenge; CORS-2 headers."""
    assert r.status_code == 401
    assert r.mimetype == "application/json"
    assert r.get_json() == UNAUTHORIZED
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in r.headers["Access-Control-Allow-Headers"]


CALLS = [
    ("GET", "/cds-services", None),
    ("POST", f"/cds-services/{PV}", lambda: hook_request("patient-view", [patient()])),
    (
        "POST",
        f"/cds-services/{OSEL}",
        lambda: hook_request("order-select", [patient()], drafts=[draft(DMAB60)]),
    ),
    (
        "POST",
        f"/cds-services/{OSIGN}",
        lambda: hook_request("order-sign", [patient()], drafts=[draft(DMAB60)]),
    ),
    ("POST", f"/cds-services/{OSIGN}/feedback", feedback_body),
    ("POST", f"/cds-services/{PV}/feedback", feedback_body),
]
IDS = ["discovery", "patient-view", "order-select", "order-sign", "feedback-osign", "feedback-pv"]


def call(client, method: str, path: str, body_fn, headers: dict | None = None):
    headers = {"Origin": ORIGIN, **(headers or {})}
    if method == "GET":
        return client.get(path, headers=headers)
    return client.post(path, json=body_fn(), headers=headers)


@pytest.mark.parametrize("method, path, body_fn", CALLS, ids=IDS)
def test_sec_3_no_token_is_401_without_detail(client, method, path, body_fn) -> None:
    """SEC-3/SEC-10: discovery, hook and feedback calls without a token are refused."""
    assert_401(call(client, method, path, body_fn))


@pytest.mark.parametrize("method, path, body_fn", CALLS, ids=IDS)
def test_sec_5_valid_es384_token_with_full_endpoint_aud_is_200(client, signer, method, path, body_fn) -> None:
    """SEC-5, IOP-2: ``aud`` is the full URL of the endpoint called (feedback: service URL + /feedback)."""
    r = call(client, method, path, body_fn, signer.bearer(url(path)))
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.headers["Access-Control-Allow-Origin"] == "*"


def test_sec_5_the_audience_never_comes_from_the_host_header(client, signer) -> None:
    """Issue 12, measured: a token for another vendor's URL, sent with that vendor's ``Host`` and
    ``X-Forwarded-Proto: https``, got 200. Audiences come from configuration only."""
    for other in ("https://cds.other-vendor.example/cds-services", "http://cds.other-vendor.example/cds-services"):
        r = client.get("/cds-services", headers={**signer.bearer(other), "Host": "cds.other-vendor.example",
                                                 "X-Forwarded-Proto": "https"})
        assert r.status_code == 401
    r = client.get("/cds-services", headers=signer.bearer("http://localhost/cds-services"))
    assert r.status_code == 401   # the URL as the app sees it is not configured either


def test_iop_2_feedback_aud_is_service_url_slash_feedback(client, signer) -> None:
    """IOP-2: the sandbox signs feedback for ``{service URL}/feedback``; the service URL alone, or
    the discovery URL, names another endpoint."""
    path = f"/cds-services/{OSIGN}/feedback"
    assert client.post(path, json=feedback_body(), headers=signer.bearer(url(path))).status_code == 200
    for wrong in (url(f"/cds-services/{OSIGN}"), url("/cds-services"), url(f"/cds-services/{PV}/feedback")):
        assert_401(
            client.post(path, json=feedback_body(), headers={**signer.bearer(wrong), "Origin": ORIGIN})
        )


def test_sec_9_a_token_for_another_service_is_refused(client, signer) -> None:
    body = hook_request("order-sign", [patient()], drafts=[draft(DMAB60)])
    r = client.post(
        f"/cds-services/{OSIGN}",
        json=body,
        headers={**signer.bearer(url(f"/cds-services/{OSEL}")), "Origin": ORIGIN},
    )
    assert_401(r)


def test_sec_10_every_failure_looks_the_same(client, signer) -> None:
    """Missing, malformed, expired, wrong issuer key, wrong aud, replayed: one identical answer."""
    path = f"/cds-services/{OSIGN}"
    stranger = Signer()  # same iss and kid, another key: the signature fails
    replayed = signer.token(url(path))
    body = hook_request("order-sign", [patient()], drafts=[draft(DMAB60)])
    assert client.post(path, json=body, headers={"Authorization": f"Bearer {replayed}"}).status_code == 200
    variants = {
        "missing": {},
        "not bearer": {"Authorization": f"Basic {replayed}"},
        "malformed": {"Authorization": "Bearer not.a.jwt"},
        "expired": {"Authorization": f"Bearer {signer.token(url(path), now=0)}"},
        "bad signature": {"Authorization": f"Bearer {stranger.token(url(path))}"},
        "wrong aud": {"Authorization": f"Bearer {signer.token('https://elsewhere.example.org/x')}"},
        "replayed": {"Authorization": f"Bearer {replayed}"},
    }
    answers = {}
    for name, headers in variants.items():
        r = client.post(path, json=body, headers={**headers, "Origin": ORIGIN})
        assert_401(r)
        answers[name] = (r.get_data(), r.headers["WWW-Authenticate"])
    assert len(set(answers.values())) == 1, answers


@pytest.mark.parametrize(
    "path", ["/cds-services", f"/cds-services/{OSIGN}", f"/cds-services/{OSIGN}/feedback"]
)
def test_cors_1_preflight_needs_no_token(client, path) -> None:
    """CORS-1: browsers send the preflight without Authorization; it must pass."""
    r = client.options(
        path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    allowed = {h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert {"GET", "POST"} <= {m.strip() for m in r.headers["Access-Control-Allow-Methods"].split(",")}


def test_healthz_and_index_need_no_token(client) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/").status_code == 200


def test_unknown_paths_do_not_tell_apart_without_a_token(client) -> None:
    """Without a token an unknown service is 401 like a known one (no service enumeration)."""
    assert_401(client.post("/cds-services/nope", json={}, headers={"Origin": ORIGIN}))
    assert_401(client.get("/cds-services/nope/feedback", headers={"Origin": ORIGIN}))


def test_auth_off_by_default_and_says_so(tmp_path, caplog) -> None:
    """SEC-2: without BONE_CDS_AUTH the service is open, and start-up warns about it."""
    with caplog.at_level(logging.WARNING, logger="cds_service"):
        app = create_app(Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path)}), clock=lambda: NOW)
    assert app.test_client().get("/cds-services").status_code == 200
    assert any("authentication is OFF" in r.getMessage() for r in caplog.records)


# ---- start-up: several workers need a shared replay store (SEC-10) ---------------------------


@pytest.fixture
def no_gunicorn(monkeypatch):
    """``bone-cds serve`` up to the point where gunicorn would take over."""
    started: list[object] = []
    monkeypatch.setattr(BaseApplication, "run", lambda self: started.append(self))
    return started


def _serve_env(monkeypatch, tmp_path, env: dict[str, str]) -> None:
    for name in (
        "BONE_CDS_AUTH",
        "BONE_CDS_TRUSTED_ISSUERS",
        "BONE_CDS_REPLAY_DB",
        "BONE_CDS_FEEDBACK_DB",
        "BONE_CDS_AUDIENCE_BASE_URLS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BONE_CDS_DATA_DIR", str(tmp_path / "data"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def _replay_warnings(caplog) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if "BONE_CDS_REPLAY_DB" in r.getMessage() and r.levelno == logging.WARNING
    ]


def test_serve_shares_the_replay_store_by_default_with_several_workers(
    monkeypatch, tmp_path, caplog, signer, no_gunicorn
) -> None:
    """SEC-10, issue 12: several workers without BONE_CDS_REPLAY_DB used to keep one seen-jti set
    each (a token accepted once per worker); now they share a SQLite store in the data folder."""
    _serve_env(monkeypatch, tmp_path, signer.env())
    monkeypatch.delenv("BONE_CDS_REPLAY_DB", raising=False)
    with caplog.at_level(logging.INFO, logger="cds_service"):
        assert cli.main(["serve", "--port", "0", "--workers", "3"]) == 0
    assert no_gunicorn, "gunicorn was not started"
    assert not _replay_warnings(caplog)
    shared = [r for r in caplog.records if "replay store is shared" in r.getMessage()]
    assert len(shared) == 1 and "replay.sqlite3" in shared[0].getMessage()


@pytest.mark.parametrize(
    "workers, replay_db, auth",
    [(1, False, True), (2, True, True), (4, False, False)],
    ids=["one worker", "shared replay db", "auth off"],
)
def test_serve_does_not_warn_when_replay_is_covered(
    monkeypatch, tmp_path, caplog, signer, no_gunicorn, workers, replay_db, auth
) -> None:
    env = signer.env() if auth else {}
    if replay_db:
        env["BONE_CDS_REPLAY_DB"] = str(tmp_path / "replay.sqlite3")
    _serve_env(monkeypatch, tmp_path, env)
    with caplog.at_level(logging.INFO, logger="cds_service"):
        assert cli.main(["serve", "--port", "0", "--workers", str(workers)]) == 0
    assert no_gunicorn and not _replay_warnings(caplog)
