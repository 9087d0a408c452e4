"""Every fixture request (fixtures/*/…json) answers exactly the cards its scenario expects.

Runs each file through the HTTP service with its full prefetch, at the scenario's ``now``.
Checklist RESP-1, RESP-2 (clean patients: ``{"cards": []}``), REQ-10 (negative fixtures).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from cds_service.app import create_app
from cds_service.config import Settings
from hooks.services import services

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SCENARIO = "org.bone-safety-cds.scenario"


def _files(exclude_negative: bool) -> list[Path]:
    files = sorted(FIXTURES.glob("*/*.json"))
    return [f for f in files if (f.parent.name == "negative") != exclude_negative]


def _scenario(body: dict) -> dict:
    return body.get("extension", {}).get(SCENARIO, {})


def _client(tmp_path: Path, now: datetime):
    app = create_app(Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path)}), clock=lambda: now)
    return app.test_client()


def _service_for(hook: str) -> str:
    return next(s.id for s in services() if s.hook == hook)


@pytest.mark.parametrize("path", _files(exclude_negative=True), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fixture_answers_expected_cards(path: Path, tmp_path: Path) -> None:
    body = json.loads(path.read_text())
    scenario = _scenario(body)
    assert "expect" in scenario and "now" in scenario, f"{path}: scenario extension missing"
    now = datetime.fromisoformat(scenario["now"].replace("Z", "+00:00"))
    response = _client(tmp_path, now).post(f"/cds-services/{_service_for(body['hook'])}", json=body)
    assert response.status_code == 200, response.get_json()
    got = sorted(c["source"]["topic"]["code"] for c in response.get_json()["cards"])
    assert got == sorted(scenario["expect"]), f"{path.name}: {scenario.get('description', '')}"


@pytest.mark.parametrize("path", _files(exclude_negative=False), ids=lambda p: p.stem)
def test_negative_fixture_is_a_clear_4xx(path: Path, tmp_path: Path) -> None:
    raw = path.read_text()
    try:
        body = json.loads(raw)
        scenario = _scenario(body) if isinstance(body, dict) else {}
    except ValueError:
        body, scenario = None, {}
    hook = body.get("hook") if isinstance(body, dict) and isinstance(body.get("hook"), str) else "patient-view"
    service = next((s.id for s in services() if s.hook == hook), _service_for("patient-view"))
    response = _client(tmp_path, datetime.fromisoformat("2026-11-23T12:00:00+00:00")).post(
        f"/cds-services/{service}", data=raw, content_type="application/json")
    assert 400 <= response.status_code < 500
    payload = response.get_json()
    assert set(payload) >= {"error", "message"}
    if scenario.get("status"):
        assert response.status_code == scenario["status"]
    if scenario.get("error"):
        assert payload["error"] == scenario["error"]
