"""The whole-request time budget (issue 11 §3, ``BONE_CDS_REQUEST_BUDGET``).

Past the budget the answer is what the data supports: the cards of the rules that ran, plus the
data card naming the checks that did not run in time; never a 500. The engine is pure: the clock
comes in as a ``deadline`` callable, here a fake that expires after k checks.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta

import pytest

from cards.engine import evaluate
from cards.registry import REGISTRY, RuleInput, rules_for
from cds_service.chart import build_chart
from cds_service.config import ConfigError, Settings
from cds_service.pipeline import DATA_CARD_ID, evaluate_hook
from hooks.services import service_by_id
from tests.factory import (CALCIUM_SERUM, ICD10, NOW, PID, condition, draft, hook_request, observation,
                           patient, rule_ids)

TODAY = NOW.date()
EARLY, LATE = "DMAB-HYPOCALCEMIA", "AR-ONJ-HISTORY"   # early and late in the catalog order


def _record() -> list[dict]:
    """A denosumab candidate with a low calcium (DMAB-HYPOCALCEMIA) and ONJ (AR-ONJ-HISTORY)."""
    return [patient(), observation(CALCIUM_SERUM, 7.2, "mg/dL", TODAY - timedelta(days=3)),
            condition("M87.180", ICD10, onset="2023-04-12")]


class ExpiresAfter:
    """A fake budget clock: False for the first ``k`` checks, True from then on."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls > self.k


def _order_sign_ids() -> list[str]:
    return [s.id for s in rules_for("order-sign")]


def _engine(deadline=None):
    d = draft()
    chart = build_chart(_record(), NOW, hook="order-sign", draft_orders=[d],
                        selections=[f"MedicationRequest/{d['id']}"])
    return evaluate(RuleInput(chart=chart, hook="order-sign", now=NOW, patient_id=PID), deadline=deadline)


def test_without_a_deadline_every_rule_runs() -> None:
    result = _engine()
    assert {EARLY, LATE} <= set(result.fired) and result.out_of_time == []
    never = _engine(lambda: False)
    assert never.fired == result.fired and never.out_of_time == []


def test_rules_past_the_deadline_are_out_of_time_and_give_no_card() -> None:
    ids = _order_sign_ids()
    k = ids.index(EARLY) + 1                    # the clock expires right after the early rule
    assert ids.index(LATE) >= k
    clock = ExpiresAfter(k)
    result = _engine(clock)
    assert EARLY in result.fired and LATE not in result.fired
    assert result.out_of_time == ids[k:]         # every later rule, in catalog order
    assert clock.calls == k + 1                  # checked before each rule, not again once expired
    assert not set(result.out_of_time) & set(result.not_run)


def test_a_deadline_spent_before_the_first_rule_runs_none() -> None:
    result = _engine(lambda: True)
    assert result.cards == [] and result.out_of_time == _order_sign_ids()


def _hook(deadline=None, **kwargs):
    d = draft()
    body = hook_request("order-sign", _record(), drafts=[d])
    return evaluate_hook(service_by_id("bone-safety-order-sign"), body, now=NOW, deadline=deadline, **kwargs)


def test_the_data_card_names_the_checks_that_did_not_finish_in_time() -> None:
    ids = _order_sign_ids()
    k = ids.index(EARLY) + 1
    cards = _hook(ExpiresAfter(k)).response["cards"]
    fired = rule_ids(cards)
    assert EARLY in fired and LATE not in fired and fired[-1] == DATA_CARD_ID
    card = cards[-1]
    n = len([r for r in ids[k:] if not r.startswith("BP-")])   # a denosumab draft: no bisphosphonate checks
    assert f"{n} checks did not finish in time and were not performed" in card["detail"]
    assert REGISTRY[LATE].title in card["detail"]
    assert card["summary"] == "Some safety checks did not finish in time and were not performed"
    details = card["detail"].split("#### Details", 1)[1]
    assert details.count("did not finish in time") == 1    # said once in the data, once in the finding


def test_out_of_time_joins_the_data_unavailable_card_when_data_is_missing() -> None:
    d = draft()
    body = hook_request("order-sign", _record(), drafts=[d])
    del body["prefetch"]["procedures"]          # no FHIR server: Procedure unavailable
    ids = _order_sign_ids()
    outcome = evaluate_hook(service_by_id("bone-safety-order-sign"), body, now=NOW,
                            deadline=ExpiresAfter(ids.index(EARLY) + 1))
    card = outcome.response["cards"][-1]
    assert rule_ids([card]) == [DATA_CARD_ID]
    assert "procedures" in card["summary"]      # the existing data card, kept
    assert "did not finish in time and were not performed" in card["detail"]


def test_a_generous_budget_changes_nothing() -> None:
    assert rule_ids(_hook(budget=60).response["cards"]) == rule_ids(_hook(budget=None).response["cards"])


def test_a_slow_rule_over_http_gives_the_cards_that_ran_and_the_data_card(monkeypatch, tmp_path) -> None:
    """A rule made slow (injected in the registry) with a tiny budget: 200, never a 500."""
    from cds_service.app import create_app
    slow_id = _order_sign_ids()[0]
    spec = REGISTRY[slow_id]

    def slow(inp):
        time.sleep(0.2)
        return spec.fn(inp)
    monkeypatch.setitem(REGISTRY, slow_id, dataclasses.replace(spec, fn=slow))
    settings = Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path), "BONE_CDS_REQUEST_BUDGET": "0.1"})
    client = create_app(settings, clock=lambda: NOW).test_client()
    d = draft()
    r = client.post("/cds-services/bone-safety-order-sign", json=hook_request("order-sign", _record(), drafts=[d]))
    assert r.status_code == 200
    cards = r.get_json()["cards"]
    assert LATE not in rule_ids(cards) and rule_ids(cards)[-1] == DATA_CARD_ID
    assert "did not finish in time and were not performed" in cards[-1]["detail"]


@pytest.mark.parametrize("raw", ["abc", "0", "-1", "nan", "inf", "601"])
def test_a_bad_budget_stops_the_service_naming_the_variable(raw) -> None:
    with pytest.raises(ConfigError, match="BONE_CDS_REQUEST_BUDGET"):
        Settings.from_env({"BONE_CDS_REQUEST_BUDGET": raw})


def test_the_budget_default_and_a_value() -> None:
    assert Settings.from_env({}).request_budget == 5.0
    assert Settings.from_env({"BONE_CDS_REQUEST_BUDGET": "2.5"}).request_budget == 2.5
