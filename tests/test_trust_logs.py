"""Logs guard the data (checklist REQ-6, SEC-10; cds_service/logs.py) and say what happened.

1. Every route is driven with a sentinel patient (id, name, birth date, MRN), a sentinel FHIR
   access token and sentinel JWTs — hooks with prefetch, hooks fetching from an allowed FHIR
   server (answers good and bad), from a server not allowed, feedback valid and invalid, every
   4xx, a 401, a store failure and a 500 — with every logger at DEBUG; no captured line (the
   records, and the JSON handler's own output on stderr) may contain a sentinel.
2. A hook call logs exactly one JSON line with hookInstance, service, rules fired, duration
   and the prefetch status of every key.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

import pytest
import requests
import responses
from sqlalchemy import text

from cds_service import api
from cds_service.app import create_app
from cds_service.config import Settings
from hooks.services import services
from tests.factory import (
    DMAB60,
    NOW,
    PID as FACTORY_PID,
    administration,
    draft,
    hook_request,
    observation,
    CALCIUM_SERUM,
)
from tests.trust_helpers import PUBLIC_BASE, Signer, probe_rule  # noqa: F401 - fixture

PV, OSEL, OSIGN = (s.id for s in services())
SERVICES = {"patient-view": PV, "order-select": OSEL, "order-sign": OSIGN}

PID = "SENTINEL-PID-4f1c9e"
FAMILY = "Sentinelfamilyname"
GIVEN = "Qwertzsentinelgiven"
BIRTH = "1931-07-29"
MRN = "MRN-SENTINEL-88412"
ACCESS_TOKEN = "SENTINEL-ACCESS-TOKEN-9d8e7f6a5b4c"
FHIR = "https://fhir.example.org/r4"
BROKEN = "https://broken.example.org/fhir"
NOT_ALLOWED = "https://not-allowed.example.net/fhir"


def sentinel_patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": PID,
        "gender": "female",
        "birthDate": BIRTH,
        "name": [{"family": FAMILY, "given": [GIVEN], "text": f"{GIVEN} {FAMILY}"}],
        "identifier": [
            {
                "system": "urn:oid:1.2.36.146.595.217.0.1",
                "value": MRN,
                "type": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]
                },
            }
        ],
    }


def with_sentinels(body: dict[str, Any]) -> dict[str, Any]:
    """The factory's request, re-pointed at the sentinel patient."""
    body = json.loads(json.dumps(body).replace(f"Patient/{FACTORY_PID}", f"Patient/{PID}"))
    body["context"]["patientId"] = PID
    if "prefetch" in body:
        body["prefetch"]["patient"] = sentinel_patient()
    return body


def hook_body(hook: str, *, prefetch: bool = True, **extra: Any) -> dict[str, Any]:
    resources = [
        sentinel_patient(),
        administration(DMAB60, "2026-05-20"),
        observation(CALCIUM_SERUM, 7.2, "mg/dL", "2026-11-20"),
    ]
    body = with_sentinels(hook_request(hook, resources, drafts=[draft(DMAB60)], prefetch=prefetch))
    body.update(extra)
    return body


def fhir_auth() -> dict[str, Any]:
    return {
        "access_token": ACCESS_TOKEN,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "bone-cds",
        "patient": PID,
    }


# ---- a FHIR server that knows the sentinel patient ---------------------------------------------


def _bundle(resources: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    b: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in resources],
    }
    if next_url:
        b["link"] = [{"relation": "next", "url": next_url}]
    return b


def fhir_server(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
    """The allowed server: the sentinel patient, a dose history whose next page leaves the server,
    and assorted failures (500, 401, unreadable JSON, OperationOutcome)."""
    path = request.path_url.split("?", 1)[0]
    rtype = path.rstrip("/").split("/")[2] if path.count("/") >= 2 else ""
    if rtype == "Patient":
        return 200, {}, json.dumps(sentinel_patient())
    if rtype == "MedicationAdministration":
        dose = json.loads(json.dumps(administration(DMAB60, "2026-05-20")).replace(FACTORY_PID, PID))
        return (
            200,
            {},
            json.dumps(_bundle([dose], f"https://elsewhere.example.org/fhir/x?patient={PID}&mrn={MRN}")),
        )
    if rtype == "MedicationRequest":  # pages on the server until max_pages stops it
        return 200, {}, json.dumps(_bundle([], f"{FHIR}/MedicationRequest?patient={PID}&page=n"))
    if rtype == "Observation":
        return (
            500,
            {},
            json.dumps({"resourceType": "OperationOutcome", "issue": [{"diagnostics": f"no {PID}"}]}),
        )
    if rtype == "Condition":
        return 401, {}, f"token {ACCESS_TOKEN} refused for {PID}"
    if rtype == "Procedure":
        return 200, {}, f"<html>{FAMILY}</html>"
    if rtype == "MedicationStatement":
        return (
            200,
            {},
            json.dumps(
                {
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "error", "diagnostics": f"{MRN} {BIRTH}"}],
                }
            ),
        )
    return 200, {}, json.dumps(_bundle([]))


def broken_server(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
    raise requests.ConnectionError(f"connection to {request.url} with {ACCESS_TOKEN} failed")


@pytest.fixture
def fhir_mock():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_callback(responses.GET, re.compile(re.escape(FHIR) + r"/.*"), callback=fhir_server)
        rsps.add_callback(responses.GET, re.compile(re.escape(BROKEN) + r"/.*"), callback=broken_server)
        yield rsps


# ---- capture --------------------------------------------------------------------------------


@pytest.fixture
def debug_logs(caplog):
    """Every logger at DEBUG: the root (so libraries that are not floored would show) and ours."""
    caplog.set_level(logging.DEBUG)
    for name in ("cds_service", "cards", "hooks"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def all_log_text(caplog, capsys) -> str:
    """Everything logged: each record's message, arguments and extra fields, tracebacks, and what
    went to stdout/stderr (the JSON handler writes to the current sys.stderr)."""
    parts = [caplog.text]
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(
            json.dumps({k: v for k, v in record.__dict__.items() if k not in ("msg", "args")}, default=repr)
        )
        parts.append(repr(record.args))
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
    out = capsys.readouterr()
    parts += [out.out, out.err]
    return "\n".join(parts)


def sentinels(extra: list[str]) -> dict[str, str]:
    found = {
        "patient id": PID,
        "family name": FAMILY,
        "given name": GIVEN,
        "birth date": BIRTH,
        "MRN": MRN,
        "access token": ACCESS_TOKEN,
    }
    for i, token in enumerate(extra):
        found[f"JWT {i}"] = token
        for j, part in enumerate(token.split(".")):
            if len(part) >= 16:
                found[f"JWT {i} segment {j}"] = part
    return found


def assert_no_sentinel(logged: str, extra_tokens: list[str] = ()) -> None:
    assert "hook answered" in logged, "the capture saw no hook log line: the test would prove nothing"
    leaks = {
        name: logged[max(0, logged.find(value) - 120) : logged.find(value) + 60]
        for name, value in sentinels(list(extra_tokens)).items()
        if value in logged
    }
    assert not leaks, f"sentinel(s) in the logs: {leaks}"


# ---- 1. no sentinel in any log ----------------------------------------------------------------


def _drive_hooks_and_feedback(client, headers_for) -> list[tuple[str, int]]:
    """Every route and path the service has; returns (what, status) for the record."""
    seen: list[tuple[str, int]] = []

    def post(what: str, path: str, body: Any = None, raw: bytes | None = None) -> Any:
        if raw is not None:
            r = client.post(path, data=raw, content_type="application/json", headers=headers_for(path))
        else:
            r = client.post(path, json=body, headers=headers_for(path))
        seen.append((what, r.status_code))
        assert r.status_code < 500 or r.status_code == 503 or what == "bug", (what, r.get_data(as_text=True))
        return r

    seen.append(("discovery", client.get("/cds-services", headers=headers_for("/cds-services")).status_code))
    cards: list[dict[str, Any]] = []
    for hook, sid in SERVICES.items():
        path = f"/cds-services/{sid}"
        r = post(f"{hook} prefetch", path, hook_body(hook))
        assert r.status_code == 200
        cards += r.get_json()["cards"]
        # nothing prefetched: everything from the allowed FHIR server (good and bad answers)
        post(
            f"{hook} fhirServer allowed",
            path,
            hook_body(hook, prefetch=False, fhirServer=FHIR, fhirAuthorization=fhir_auth()),
        )
        post(
            f"{hook} fhirServer broken",
            path,
            hook_body(hook, prefetch=False, fhirServer=BROKEN, fhirAuthorization=fhir_auth()),
        )
        post(
            f"{hook} fhirServer not allowed",
            path,
            hook_body(hook, prefetch=False, fhirServer=NOT_ALLOWED, fhirAuthorization=fhir_auth()),
        )
        post(f"{hook} no fhirServer", path, hook_body(hook, prefetch=False))
        # a key holding an OperationOutcome is fetched; an undeclared key is ignored
        partial = hook_body(hook, fhirServer=FHIR, fhirAuthorization=fhir_auth())
        partial["prefetch"]["conditions"] = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "diagnostics": f"{PID} {MRN}"}],
        }
        partial["prefetch"][MRN] = sentinel_patient()
        post(f"{hook} partial", path, partial)
        # 4xx paths, each carrying the sentinels
        for what, mutate in [
            (
                "wrong hook",
                lambda b: b.update(hook="patient-view" if hook != "patient-view" else "order-sign"),
            ),
            ("no hookInstance", lambda b: b.pop("hookInstance")),
            ("patientId not a string", lambda b: b["context"].update(patientId={"id": PID, "mrn": MRN})),
            ("bad prefetch value", lambda b: b["prefetch"].update(patient=[sentinel_patient()])),
            ("token without fhirServer", lambda b: b.update(fhirAuthorization=fhir_auth())),
            (
                "token type",
                lambda b: b.update(
                    fhirServer=FHIR, fhirAuthorization={**fhir_auth(), "token_type": ACCESS_TOKEN}
                ),
            ),
            ("fhirServer not a string", lambda b: b.update(fhirServer={"url": FHIR, "patient": PID})),
            ("context not an object", lambda b: b.update(context=[PID, FAMILY, BIRTH])),
        ]:
            body = hook_body(hook)
            mutate(body)
            assert 400 <= post(f"{hook} {what}", path, body).status_code < 500
        post(f"{hook} invalid JSON", path, raw=f'{{"hook": "{hook}", "patient": "{PID}", {MRN}'.encode())
        post(f"{hook} too deep", path, raw=("[" * 150 + json.dumps(sentinel_patient()) + "]" * 150).encode())
        post(f"{hook} not an object", path, body=[sentinel_patient()])
    post("unknown service", f"/cds-services/{PID}", hook_body("order-sign"))
    seen.append(
        (
            "405",
            client.get(f"/cds-services/{OSIGN}", headers=headers_for(f"/cds-services/{OSIGN}")).status_code,
        )
    )

    # feedback: valid (on our cards and unknown ones, with a free-text comment naming the patient),
    # then invalid in every field
    assert cards, "the probe rule should have produced cards"
    fb_path = f"/cds-services/{OSIGN}/feedback"
    valid = [
        {
            "card": c["uuid"],
            "outcome": "overridden",
            "outcomeTimestamp": "2026-11-23T15:05:00Z",
            "overrideReason": {
                "reason": {"code": "not-relevant"},
                "userComment": f"{GIVEN} {FAMILY} born {BIRTH}, MRN {MRN}, id {PID}",
            },
        }
        for c in cards
    ]
    valid.append(
        {
            "card": str(uuid.uuid4()),
            "outcome": "accepted",
            "outcomeTimestamp": "2026-11-23T15:06:00Z",
            "acceptedSuggestions": [{"id": str(uuid.uuid4())}],
            "extension": {"x": sentinel_patient()},
        }
    )
    assert post("feedback valid", fb_path, {"feedback": valid}).status_code == 200
    for what, entry in [
        ("no card", {"outcome": "overridden", "outcomeTimestamp": "2026-11-23T15:05:00Z", "note": PID}),
        ("bad outcome", {"card": PID, "outcome": FAMILY, "outcomeTimestamp": "2026-11-23T15:05:00Z"}),
        ("bad timestamp", {"card": PID, "outcome": "overridden", "outcomeTimestamp": BIRTH}),
        (
            "accepted without suggestions",
            {"card": PID, "outcome": "accepted", "outcomeTimestamp": "2026-11-23T15:05:00Z"},
        ),
        (
            "bad reason",
            {
                "card": PID,
                "outcome": "overridden",
                "outcomeTimestamp": "2026-11-23T15:05:00Z",
                "overrideReason": {"reason": MRN},
            },
        ),
        (
            "bad comment",
            {
                "card": PID,
                "outcome": "overridden",
                "outcomeTimestamp": "2026-11-23T15:05:00Z",
                "overrideReason": {"userComment": [FAMILY]},
            },
        ),
    ]:
        assert post(f"feedback {what}", fb_path, {"feedback": [entry]}).status_code == 400
    post("feedback unknown service", f"/cds-services/{MRN}/feedback", {"feedback": valid})
    return seen


def test_no_identifier_or_token_reaches_any_log(
    tmp_path, debug_logs, capsys, fhir_mock, probe_rule, monkeypatch
) -> None:
    settings = Settings.from_env(
        {
            "BONE_CDS_DATA_DIR": str(tmp_path),
            "BONE_CDS_LOG_LEVEL": "DEBUG",
            "BONE_CDS_ALLOWED_FHIR_SERVERS": f"{FHIR},{BROKEN}",
            "BONE_CDS_FHIR_MAX_PAGES": "2",
        }
    )
    app = create_app(settings, clock=lambda: NOW)
    client = app.test_client()
    seen = _drive_hooks_and_feedback(client, lambda path: {})

    # the store fails: feedback answers 503, issued cards are not recorded; both are logged
    store = app.config["FEEDBACK_STORE"]
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE feedback"))
        conn.execute(text("DROP TABLE issued_cards"))
    r = client.post(
        f"/cds-services/{OSIGN}/feedback",
        json={
            "feedback": [
                {
                    "card": PID,
                    "outcome": "overridden",
                    "outcomeTimestamp": "2026-11-23T15:05:00Z",
                    "overrideReason": {"userComment": f"{FAMILY} {MRN}"},
                }
            ]
        },
    )
    assert r.status_code == 503 and r.get_json()["error"] == "feedback_store_unavailable"
    assert client.post(f"/cds-services/{OSIGN}", json=hook_body("order-sign")).status_code == 200
    store.flush()  # the issued cards are written (and their failure logged) by the store's writer thread

    # our own bug, with the patient in the exception message: a 500 whose log has no message
    def bug(*args: Any, **kwargs: Any) -> Any:
        raise KeyError(f"{PID} {FAMILY} {BIRTH} {MRN} {ACCESS_TOKEN}")

    monkeypatch.setattr(api, "evaluate_hook", bug)
    r = client.post(
        f"/cds-services/{OSIGN}", json=hook_body("order-sign", fhirServer=FHIR, fhirAuthorization=fhir_auth())
    )
    assert r.status_code == 500 and r.get_json()["error"] == "internal_error"

    # the sentinels did travel: to the FHIR server (URL, bearer token) and back
    urls = [c.request.url for c in fhir_mock.calls]
    assert any(PID in u for u in urls)
    assert any(c.request.headers.get("Authorization") == f"Bearer {ACCESS_TOKEN}" for c in fhir_mock.calls)
    assert {s for _, s in seen} >= {200, 400, 404, 405, 412}, seen

    logged = all_log_text(debug_logs, capsys)
    assert '"exc_type": "builtins.KeyError"' in logged  # the 500 was logged...
    assert "feedback NOT stored" in logged  # ...and the store failure
    assert "could not record issued cards" in logged
    assert "not on the allowlist" in logged and "leaves the FHIR server" in logged
    assert_no_sentinel(logged)


def test_no_jwt_or_identifier_reaches_any_log_with_auth_on(
    tmp_path, debug_logs, capsys, fhir_mock, probe_rule
) -> None:
    signer, stranger = Signer(), Signer()
    settings = Settings.from_env(
        {
            "BONE_CDS_DATA_DIR": str(tmp_path),
            "BONE_CDS_LOG_LEVEL": "DEBUG",
            "BONE_CDS_ALLOWED_FHIR_SERVERS": f"{FHIR},{BROKEN}",
            **signer.env(),
        }
    )
    client = create_app(settings, clock=lambda: NOW).test_client()
    tokens: list[str] = []

    def headers_for(path: str) -> dict[str, str]:
        token = signer.token(f"{PUBLIC_BASE}{path}")
        tokens.append(token)
        return {"Authorization": f"Bearer {token}"}

    _drive_hooks_and_feedback(client, headers_for)
    # refused tokens: missing, garbage, a stranger's signature, expired, replayed, wrong aud
    path = f"/cds-services/{OSIGN}"
    replay = tokens[-1]
    refused = [
        f"SENTINEL-JWT-{PID}",
        stranger.token(f"{PUBLIC_BASE}{path}", patient=PID),
        signer.token(f"{PUBLIC_BASE}{path}", now=0),
        replay,
        signer.token(f"https://elsewhere.example.org/{PID}"),
    ]
    tokens += refused
    for bad in [None, *refused]:
        headers = {"Authorization": f"Bearer {bad}"} if bad else {}
        r = client.post(path, json=hook_body("order-sign"), headers=headers)
        assert r.status_code == 401
    logged = all_log_text(debug_logs, capsys)
    assert "JWT rejected" in logged
    assert_no_sentinel(logged, tokens)


# ---- 2. one structured line per hook call -----------------------------------------------------


def hook_lines(stderr: str) -> list[dict[str, Any]]:
    lines = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("msg") == "hook answered":
                lines.append(event)
    return lines


@pytest.mark.parametrize("hook", list(SERVICES))
def test_each_hook_call_logs_one_json_line(tmp_path, capsys, fhir_mock, probe_rule, hook) -> None:
    """hookInstance, service id, rules fired, duration and prefetch status per key, as JSON."""
    settings = Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path), "BONE_CDS_ALLOWED_FHIR_SERVERS": FHIR})
    client = create_app(settings, clock=lambda: NOW).test_client()
    capsys.readouterr()
    body = hook_body(hook, fhirServer=FHIR, fhirAuthorization=fhir_auth())
    for key in ("patient", "medicationAdministrations", "observations", "conditions"):
        del body["prefetch"][key]  # fetched: ok, ok, 500, 401
    body["prefetch"]["procedures"] = None  # no data: taken as sent
    r = client.post(f"/cds-services/{SERVICES[hook]}", json=body)
    assert r.status_code == 200
    lines = hook_lines(capsys.readouterr().err)
    assert len(lines) == 1, lines
    line = lines[0]
    assert line["level"] == "INFO" and line["logger"] == "cds_service.api"
    assert line["hookInstance"] == body["hookInstance"]
    assert line["service"] == SERVICES[hook]
    fired = [c["source"]["topic"]["code"] for c in r.get_json()["cards"]]
    assert (
        line["rules"] == [f for f in fired if f != "SERVICE-DATA-UNAVAILABLE"] and probe_rule in line["rules"]
    )
    assert line["cards"] == len(fired)
    assert isinstance(line["ms"], (int, float)) and 0 <= line["ms"] < 60_000
    assert line["prefetch"] == {
        "patient": "fetched",
        "medicationRequests": "prefetch",
        "medicationAdministrations": "fetched",
        "medicationStatements": "prefetch",
        "medicationDispenses": "prefetch",
        "observations": "unavailable:http-500",
        "conditions": "unavailable:unauthorized",
        "procedures": "prefetch",
    }
    assert isinstance(line["skipped_resources"], int)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line["ts"])


def test_a_refused_hook_call_logs_its_status_and_error_code(client, capsys) -> None:
    capsys.readouterr()
    r = client.post(f"/cds-services/{PV}", json=hook_body("patient-view", prefetch=False))
    assert r.status_code == 412
    events = [json.loads(l) for l in capsys.readouterr().err.splitlines() if l.startswith("{")]
    refused = [e for e in events if e.get("msg") == "request refused"]
    assert len(refused) == 1
    assert refused[0]["status"] == 412 and refused[0]["error"] == "prefetch_unavailable"
    assert refused[0]["route"] == "cds.call_service"
