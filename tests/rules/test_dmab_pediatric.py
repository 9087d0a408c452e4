"""DMAB-PEDIATRIC (RULES.md §3, D1 "Age", D8, §8 item 12)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.factory import DMAB120, DMAB60, condition, draft, patient

from ._dmab_helpers import HOOKS, ICD10, TODAY, override_codes, run

RULE = "DMAB-PEDIATRIC"


def _child(years: int, day_shift: int = -30, gender: str = "female") -> dict:
    from cds_service.chart import add_months
    birth = add_months(TODAY, -12 * years) + timedelta(days=day_shift)
    return patient(birth.isoformat(), gender)


def _gctb(**kw):
    return condition("D48.0", ICD10, text="Giant cell tumor of bone, left distal femur", **kw)


@pytest.mark.parametrize("hook", HOOKS)
def test_dmab_pediatric_warning_card(hook: str) -> None:
    card = run(RULE, [_child(15)], hook=hook, drafts=[draft(DMAB60)])
    assert card is not None
    assert card["indicator"] == "warning"
    assert card["summary"] == ("Patient is 15 years old: denosumab is not established as safe in "
                               "children (severe hypercalcemia reported)")
    assert override_codes(card) == ["specialist-decision", "skeletally-mature-gctb", "research-protocol"]
    # v2 (A32): remove the draft, and calcium + albumin
    assert [a["type"] for s in card["suggestions"] for a in s["actions"]] == ["delete", "create", "create"]


@pytest.mark.parametrize("years, shift, fires", [
    (18, 0, False),     # 18th birthday today
    (18, 1, True),      # turns 18 tomorrow: 17
    (17, -100, True),
    (19, 0, False),
])
def test_dmab_pediatric_age_under_18_birthday_edges(years: int, shift: int, fires: bool) -> None:
    assert (run(RULE, [_child(years, shift)], drafts=[draft()]) is not None) is fires


def test_dmab_pediatric_unknown_age_never() -> None:
    assert run(RULE, [patient(None, "female")], drafts=[draft()]) is None
    assert run(RULE, [], drafts=[draft()]) is None


def test_dmab_pediatric_osteogenesis_imperfecta_is_critical() -> None:
    oi = condition("385482004", text="Osteogenesis imperfecta type I")
    card = run(RULE, [_child(9, gender="male"), oi], drafts=[draft(DMAB60)])
    assert card is not None and card["indicator"] == "critical"
    assert "Osteogenesis imperfecta" in card["detail"]
    # OI recorded as inactive still counts ("present": history)
    card = run(RULE, [_child(9), condition("Q78.0", ICD10, clinical="inactive")], drafts=[draft()])
    assert card is not None and card["indicator"] == "critical"


@pytest.mark.parametrize("age, code, gctb, fires", [
    (12, DMAB120, True, False),     # exempt: 120 mg + active GCTB + age ≥ 12
    (16, DMAB120, True, False),
    (11, DMAB120, True, True),      # too young
    (14, DMAB60, True, True),       # 60 mg is not the GCTB regimen
    (14, DMAB120, False, True),     # no GCTB
])
def test_dmab_pediatric_gctb_exemption(age: int, code: str, gctb: bool, fires: bool) -> None:
    resources = [_child(age)] + ([_gctb()] if gctb else [])
    assert (run(RULE, resources, drafts=[draft(code)]) is not None) is fires


def test_dmab_pediatric_gctb_resolved_or_code_only_does_not_exempt() -> None:
    assert run(RULE, [_child(15), _gctb(clinical="resolved")], drafts=[draft(DMAB120)]) is not None
    # D48.0 alone is an unspecific proxy ("neoplasm of uncertain behaviour of bone")
    proxy = condition("D48.0", ICD10, text="Neoplasm of uncertain behavior of bone")
    assert run(RULE, [_child(15), proxy], drafts=[draft(DMAB120)]) is not None


def test_dmab_pediatric_gctb_as_draft_reason_exempts() -> None:
    d = draft(DMAB120)
    d["reasonCode"] = [{"text": "Giant cell tumour of bone, unresectable"}]
    assert run(RULE, [_child(15)], drafts=[d]) is None


def test_dmab_pediatric_mixed_drafts_names_only_the_non_exempt_one() -> None:
    card = run(RULE, [_child(15), _gctb()], drafts=[draft(DMAB120), draft(DMAB60)])
    assert card is not None and "Not concerned" in card["detail"]


def test_dmab_pediatric_hooks() -> None:
    assert run(RULE, [_child(10)], hook="patient-view") is None
    d = draft()
    assert run(RULE, [_child(10)], hook="order-select", drafts=[d], selections=[]) is None
    assert run(RULE, [_child(10)], drafts=[draft("705824")]) is None
