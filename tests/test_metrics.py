"""``GET /metrics`` (issue 16): Prometheus text, open like /healthz, no patient data in labels,
and one sum over the workers of ``bone-cds serve --workers 2``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests
import responses
from prometheus_client.parser import text_string_to_metric_families

from cds_service.app import create_app
from cds_service.config import Settings
from tests.factory import DMAB60, NOW, PID, draft, hook_request, patient
from tests.trust_helpers import PUBLIC_BASE, Signer, live_server, probe_rule  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def client(tmp_path):
    return create_app(Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path / "data")}), clock=lambda: NOW).test_client()


def test_requests_hooks_cards_and_feedback_are_counted(client, probe_rule) -> None:
    before = client.get("/metrics").get_data(as_text=True)
    body = hook_request("order-sign", [patient()], drafts=[draft(DMAB60)])
    cards = client.post("/cds-services/bone-safety-order-sign", json=body).get_json()["cards"]
    client.post("/cds-services/bone-safety-order-sign", json=body)
    client.post("/cds-services/bone-safety-order-sign/feedback", json={"feedback": [
        {"card": cards[0]["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-23T15:00:00Z"}]})
    client.post("/cds-services/no-such-service", json=body)
    r = client.get("/metrics")
    assert r.status_code == 200 and r.mimetype == "text/plain"
    text = r.get_data(as_text=True)

    def delta(name: str, **labels: str) -> float:
        return value(text, name, **labels) - value(before, name, **labels)

    route = "/cds-services/<service_id>"
    assert delta("bone_cds_http_requests_total", route=route, method="POST", status="200") == 2
    assert delta("bone_cds_http_requests_total", route=route, method="POST", status="404") == 1
    assert delta("bone_cds_hook_duration_seconds_count", service="bone-safety-order-sign") == 2
    assert delta("bone_cds_hook_duration_seconds_count", service="other") == 1   # never the raw path
    assert delta("bone_cds_cards_total", rule=probe_rule, indicator="warning") == 2
    assert delta("bone_cds_feedback_stored_total", service="bone-safety-order-sign") == 1
    assert delta("bone_cds_validation_cache_total", result="hit") > 0   # the second call saw the same resources
    assert PID not in text and "no-such-service" not in text


def test_metrics_is_open_when_the_hooks_need_a_jwt_and_counts_rejections(tmp_path) -> None:
    signer = Signer()
    client = create_app(Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path / "data"), **signer.env()})).test_client()
    before = client.get("/metrics")
    assert before.status_code == 200
    client.get("/cds-services")                                           # no token
    client.get("/cds-services", headers={"Authorization": "Bearer not.a.jwt"})
    text = client.get("/metrics").get_data(as_text=True)
    old = before.get_data(as_text=True)
    assert value(text, "bone_cds_jwt_rejections_total", reason="Authorization header missing") - \
        value(old, "bone_cds_jwt_rejections_total", reason="Authorization header missing") == 1
    assert sum(v for (n, _), v in samples(text).items() if n == "bone_cds_jwt_rejections_total") - \
        sum(v for (n, _), v in samples(old).items() if n == "bone_cds_jwt_rejections_total") == 2
    assert "not.a.jwt" not in text


@responses.activate
def test_fhir_reads_by_outcome(tmp_path) -> None:
    fhir = "https://fhir.example.org/r4"
    client = create_app(Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path / "data"),
                                           "BONE_CDS_ALLOWED_FHIR_SERVERS": fhir}), clock=lambda: NOW).test_client()
    before = client.get("/metrics").get_data(as_text=True)
    responses.add(responses.GET, f"{fhir}/Patient/{PID}", json=patient())
    responses.add(responses.GET, f"{fhir}/Observation", status=401)
    responses.add(responses.GET, f"{fhir}/Condition", status=500)
    for rtype in ("MedicationRequest", "MedicationAdministration", "MedicationStatement", "MedicationDispense",
                  "Procedure"):
        responses.add(responses.GET, f"{fhir}/{rtype}", json={"resourceType": "Bundle", "type": "searchset"})
    body = hook_request("order-sign", drafts=[draft(DMAB60)], prefetch=False)
    body["fhirServer"] = fhir
    body["fhirAuthorization"] = {"access_token": "t", "token_type": "Bearer", "expires_in": 300,
                                 "scope": "patient/*.read", "subject": "cds"}
    assert client.post("/cds-services/bone-safety-order-sign", json=body).status_code == 200
    text = client.get("/metrics").get_data(as_text=True)

    def delta(outcome: str) -> float:
        return value(text, "bone_cds_fhir_reads_total", outcome=outcome) - \
            value(before, "bone_cds_fhir_reads_total", outcome=outcome)

    assert (delta("ok"), delta("unauthorized"), delta("unavailable")) == (6, 1, 1)


def test_the_cli_imports_no_prometheus_client_before_serve_sets_multiprocess_mode() -> None:
    code = "import sys, cds_service.cli; print('prometheus_client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_two_workers_add_up(tmp_path, probe_rule) -> None:
    """``bone-cds serve --workers 2``: whichever worker answers /metrics, it counts both."""
    with live_server(tmp_path, workers=2, threads=1) as server:
        body = hook_request("patient-view", [patient()])
        n = 20
        with requests.Session() as s:
            for _ in range(n):
                s.headers["Connection"] = "close"   # new connections: gunicorn spreads them over workers
                assert s.post(f"{server.base}/cds-services/bone-safety-patient-view", json=body, timeout=30).ok
        seen = set()
        for _ in range(6):
            text = requests.get(f"{server.base}/metrics", headers={"Connection": "close"}, timeout=10).text
            seen.add(value(text, "bone_cds_hook_duration_seconds_count", service="bone-safety-patient-view"))
        assert seen == {float(n)}
        assert (tmp_path / "data" / "prometheus").is_dir()
        assert len(list((tmp_path / "data" / "prometheus").glob("*.db"))) >= 2
