"""Deceased patient (RULES.md D8, §1.3, §7, A37): on patient-view no card at all (no rule card, no
data-availability card); the order hooks are unchanged."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from cards.engine import evaluate
from cards.registry import RuleInput
from cds_service.app import create_app
from cds_service.chart import build_chart
from cds_service.chart.clinical import deceased_on, to_patient
from cds_service.config import Settings
from tests.factory import (DMAB60, NOW, PID, administration, draft, evaluate_rules, hook_request, patient,
                           rule_ids)
from tests.rules._helpers import ago

TODAY = NOW.date()


def dead(**deceased) -> dict:
    return patient() | deceased


# ---- the fact (chart) ---------------------------------------------------------------------------

@pytest.mark.parametrize("deceased, expected", [
    ({"deceasedBoolean": True}, True),
    ({"deceasedBoolean": False}, False),
    ({}, False),
    ({"deceasedDateTime": "2025-03-02"}, True),
    ({"deceasedDateTime": TODAY.isoformat()}, True),                 # on today
    ({"deceasedDateTime": "2026-11-24"}, False),                     # tomorrow: a data error, not deceased
    ({"deceasedDateTime": "2027-01-01T00:00:00Z"}, False),
    ({"deceasedDateTime": "2026-11-23T10:00:00Z"}, True),
    ({"deceasedDateTime": "2026-11-24T01:00:00+05:00"}, True),       # 2026-11-23 20:00 UTC: today
    ({"deceasedDateTime": "2026-11-23T22:00:00-05:00"}, False),      # 2026-11-24 03:00 UTC: future
    ({"deceasedDateTime": "2026"}, True),                            # partial: first day of its period
    ({"deceasedDateTime": "2026-12"}, False),
    ({"deceasedDateTime": "not a date"}, False),
    ({"deceasedBoolean": "true"}, False),                            # not a boolean
])
def test_deceased_fact(deceased, expected):
    assert deceased_on(dead(**deceased), TODAY) is expected
    assert to_patient(dead(**deceased), TODAY).deceased is expected


def test_a_patient_that_could_not_be_read_is_not_known_to_be_deceased():
    assert to_patient(None, TODAY).deceased is False
    chart = build_chart([], NOW)
    assert chart.patient.deceased is False


def test_the_fact_reaches_the_chart():
    assert build_chart([dead(deceasedBoolean=True)], NOW).patient.deceased is True
    assert build_chart([dead(deceasedDateTime=ago(30).isoformat())], NOW).patient.deceased is True


# ---- the hook-level decision (engine) ---------------------------------------------------------

def _overdue() -> list[dict]:
    return [administration(DMAB60, ago(10, months=8))]


@pytest.mark.parametrize("deceased", [{"deceasedBoolean": True}, {"deceasedDateTime": ago(40).isoformat()},
                                      {"deceasedDateTime": TODAY.isoformat()}])
def test_patient_view_gives_no_card_for_a_deceased_patient(deceased):
    assert "DMAB-OVERDUE-TRANSITION" in rule_ids(evaluate_rules([patient(), *_overdue()], hook="patient-view"))
    assert evaluate_rules([dead(**deceased), *_overdue()], hook="patient-view") == []
    chart = build_chart([dead(**deceased), *_overdue()], NOW)
    result = evaluate(RuleInput(chart=chart, hook="patient-view", now=NOW, patient_id=PID))
    assert result.deceased and result.cards == [] and result.not_run == {}


@pytest.mark.parametrize("deceased", [{"deceasedBoolean": False}, {"deceasedDateTime": "2026-12-25"}])
def test_not_deceased_or_future_date_still_gets_its_cards(deceased):
    ids = rule_ids(evaluate_rules([dead(**deceased), *_overdue()], hook="patient-view"))
    assert "DMAB-OVERDUE-TRANSITION" in ids


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
@pytest.mark.parametrize("deceased", [{"deceasedBoolean": True}, {"deceasedDateTime": ago(40).isoformat()}])
def test_order_hooks_are_unchanged_for_a_deceased_patient(hook, deceased):
    alive = evaluate_rules([patient()], hook=hook, drafts=[draft()])
    gone = evaluate_rules([dead(**deceased)], hook=hook, drafts=[draft()])
    assert gone and rule_ids(gone) == rule_ids(alive)
    assert all("deceased" not in (c["summary"] + c.get("detail", "")).lower() for c in gone)


# ---- the service: no data-availability card either ---------------------------------------------

@pytest.fixture
def client(tmp_path: Path):
    app = create_app(Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path)}), clock=lambda: NOW)
    return app.test_client()


def test_service_patient_view_answers_an_empty_card_list_without_the_data_card(client):
    body = hook_request("patient-view", [dead(deceasedBoolean=True), *_overdue()])
    del body["prefetch"]["observations"]           # would give the data-availability card
    got = client.post("/cds-services/bone-safety-patient-view", json=body)
    assert got.status_code == 200 and got.get_json() == {"cards": []}
    alive = hook_request("patient-view", [patient(), *_overdue()])
    del alive["prefetch"]["observations"]
    codes = [c["source"]["topic"]["code"] for c in client.post("/cds-services/bone-safety-patient-view",
                                                                json=alive).get_json()["cards"]]
    assert "DMAB-OVERDUE-TRANSITION" in codes and "SERVICE-DATA-UNAVAILABLE" in codes


def test_service_patient_view_deceased_answers_no_card_even_without_the_medication_data(client):
    """A living patient's patient-view needs the medication keys (412); a deceased one gets no
    card whatever is missing (A37)."""
    body = hook_request("patient-view", [dead(deceasedBoolean=True), *_overdue()])
    del body["prefetch"]["medicationAdministrations"]
    got = client.post("/cds-services/bone-safety-patient-view", json=body)
    assert got.status_code == 200 and got.get_json() == {"cards": []}
    alive = hook_request("patient-view", [patient(), *_overdue()])
    del alive["prefetch"]["medicationAdministrations"]
    assert client.post("/cds-services/bone-safety-patient-view", json=alive).status_code == 412
    other = hook_request("patient-view", [dead(deceasedBoolean=True) | {"id": "someone-else"}, *_overdue()])
    del other["prefetch"]["medicationAdministrations"]
    assert client.post("/cds-services/bone-safety-patient-view", json=other).status_code == 412


def test_service_order_sign_for_a_deceased_patient_still_answers_its_cards(client):
    body = hook_request("order-sign", [dead(deceasedDateTime="2026-01-05T08:00:00Z")], drafts=[draft()])
    cards = client.post("/cds-services/bone-safety-order-sign", json=body).get_json()["cards"]
    assert cards and "AR-PRETREATMENT-WORKUP" in [c["source"]["topic"]["code"] for c in cards]


def test_today_is_the_tests_today():
    assert TODAY == date(2026, 11, 23)
