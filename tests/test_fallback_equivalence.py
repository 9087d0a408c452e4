"""The same scenarios through the FHIR-server fallback give the same cards as with full prefetch.

Each fixture's prefetch is served by a mocked FHIR server (``responses``), the request is sent
without prefetch but with ``fhirServer`` + ``fhirAuthorization``, and the cards must match the
scenario's expectation (checklist PF-5, PF-7; issue "Denosumab safety": prefetch vs fallback).
"""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime
from pathlib import Path

import pytest
import responses

from cds_service.app import create_app
from cds_service.config import Settings
from hooks.services import services

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
BASE = "https://ehr.example.org/fhir"
TOKEN = "fallback-token-123"
SCENARIO = "org.bone-safety-cds.scenario"


def _cases() -> list[Path]:
    return [p for p in sorted(FIXTURES.glob("*/*.json")) if p.parent.name not in ("negative", "service")]


def _serve(rsps: responses.RequestsMock, templates: dict[str, str], prefetch: dict) -> None:
    """Answer each template's query with what the fixture prefetched for that key."""
    for key, template in templates.items():
        value = prefetch.get(key)
        path = template.split("?")[0].split("/")[0]
        if template.startswith("Patient/"):
            status, body = (404, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found"}]}) \
                if value is None else (200, value)
            rsps.add(responses.GET, re.compile(rf"{re.escape(BASE)}/Patient/[^?]+$"), json=body, status=status)
            continue
        bundle = value if isinstance(value, dict) else {"resourceType": "Bundle", "type": "searchset", "entry": []}

        def callback(request, bundle=bundle):
            assert request.headers["Authorization"] == f"Bearer {TOKEN}"
            return 200, {"Content-Type": "application/fhir+json"}, json.dumps(bundle)
        rsps.add_callback(responses.GET, re.compile(rf"{re.escape(BASE)}/{path}\?.*"), callback=callback)


@pytest.mark.parametrize("path", _cases(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fallback_gives_the_same_cards_as_prefetch(path: Path, tmp_path: Path) -> None:
    body = json.loads(path.read_text())
    scenario = body["extension"][SCENARIO]
    service = next(s for s in services() if s.hook == body["hook"])
    now = datetime.fromisoformat(scenario["now"].replace("Z", "+00:00"))
    settings = Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path), "BONE_CDS_ALLOWED_FHIR_SERVERS": BASE})
    client = create_app(settings, clock=lambda: now).test_client()

    fallback = copy.deepcopy(body)
    prefetch = fallback.pop("prefetch", {}) or {}
    fallback["fhirServer"] = BASE
    fallback["fhirAuthorization"] = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                                     "scope": "patient/*.read", "subject": "bone-safety-cds"}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        _serve(rsps, service.prefetch, prefetch)
        r = client.post(f"/cds-services/{service.id}", json=fallback)
    assert r.status_code == 200, r.get_json()
    got = sorted(c["source"]["topic"]["code"] for c in r.get_json()["cards"])
    assert got == sorted(scenario["expect"])
