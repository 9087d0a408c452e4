"""AR-ONJ-HISTORY (RULES.md §5): osteonecrosis of the jaw on record (code M87.180 or text), any
clinical status; critical when active, warning when resolved; refuted / entered-in-error ignored."""

from __future__ import annotations

import pytest

from tests.factory import (ALENDRONATE, DMAB60, DMAB120, ICD10, ZOL4, ZOL5, administration, condition,
                           draft, patient)
from tests.rules._ar_helpers import engine_ids, override_codes, run

RID = "AR-ONJ-HISTORY"


def onj(**kwargs) -> dict:
    kwargs.setdefault("onset", "2023-04-12")
    return condition("M87.180", ICD10, **kwargs)


@pytest.mark.parametrize("code", [DMAB60, DMAB120, ZOL5, ZOL4, ALENDRONATE])
def test_ar_onj_history_active_is_critical_for_every_antiresorptive(code):
    card = run(RID, [patient(), onj()], drafts=[draft(code)])
    assert card is not None and card["indicator"] == "critical"
    assert card["summary"] == ("History of osteonecrosis of the jaw (active, 2023-04-12): review "
                               "antiresorptive therapy with dental/oral surgery")
    assert override_codes(card) == ["specialist-approved-rechallenge", "oncology-benefit"]
    assert card["source"]["topic"] == {"system": "urn:bone-safety-cds:rule", "code": RID,
                                       "display": "History of osteonecrosis of the jaw"}
    assert card["links"][0]["url"] == "https://doi.org/10.1016/j.joms.2022.02.008"
    assert "identified by name, not code" not in card["detail"]


@pytest.mark.parametrize("clinical", ["resolved", "inactive", "remission"])
def test_ar_onj_history_resolved_is_warning(clinical):
    card = run(RID, [patient(), onj(clinical=clinical)], drafts=[draft(DMAB60)])
    assert card is not None and card["indicator"] == "warning"
    assert "(resolved, 2023-04-12)" in card["summary"]


@pytest.mark.parametrize("clinical", ["recurrence", "relapse"])
def test_ar_onj_history_recurrence_counts_as_active(clinical):
    assert run(RID, [patient(), onj(clinical=clinical)], drafts=[draft(ZOL5)])["indicator"] == "critical"


def test_ar_onj_history_no_clinical_status_with_abatement_is_resolved():
    card = run(RID, [patient(), onj(clinical=None, abatement="2024-01-01")], drafts=[draft(ZOL5)])
    assert card["indicator"] == "warning" and "resolved 2024-01-01" in card["detail"]


@pytest.mark.parametrize("text", ["Osteonecrosis of jaw, right mandible", "MRONJ stage 2",
                                  "BRONJ after zoledronate", "ONJ"])
def test_ar_onj_history_by_text_says_so(text):
    card = run(RID, [patient(), condition(None, text=text, onset="2022-09-01")], drafts=[draft(ALENDRONATE)])
    assert card is not None and "identified by name, not code" in card["detail"]


@pytest.mark.parametrize("verification", ["refuted", "entered-in-error"])
def test_ar_onj_history_refuted_or_entered_in_error_ignored(verification):
    assert run(RID, [patient(), onj(verification=verification)], drafts=[draft(DMAB60)]) is None


def test_ar_onj_history_suspected_counts_and_is_named():
    card = run(RID, [patient(), onj(verification="provisional")], drafts=[draft(DMAB60)])
    assert "(active, suspected, 2023-04-12)" in card["summary"]


def test_ar_onj_history_active_wins_over_a_newer_resolved_episode():
    res = [patient(), onj(onset="2020-01-01"), onj(onset="2025-06-01", clinical="resolved")]
    card = run(RID, res, drafts=[draft(DMAB60)])
    assert card["indicator"] == "critical" and "(active, 2020-01-01)" in card["summary"]
    assert "2025-06-01" in card["detail"]


def test_ar_onj_history_undated_condition_still_fires():
    card = run(RID, [patient(), condition("M87.180", ICD10)], drafts=[draft(DMAB60)])
    assert "(active, date unknown)" in card["summary"]


def test_ar_onj_history_other_jaw_or_osteonecrosis_codes_do_not_fire():
    res = [patient(), condition("M87.050", ICD10, text="Idiopathic aseptic necrosis of femur"),
           condition("K10.20", ICD10, text="Inflammatory conditions of jaw")]
    assert run(RID, res, drafts=[draft(DMAB60)]) is None


def test_ar_onj_history_order_select_selected_vs_not_selected():
    d = draft(DMAB60)
    assert run(RID, [patient(), onj()], hook="order-select", drafts=[d]) is not None
    assert run(RID, [patient(), onj()], hook="order-select", drafts=[d], selections=[]) is None


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_ar_onj_history_on_order_hooks_through_the_engine(hook):
    assert engine_ids([patient(), onj()], hook=hook, drafts=[draft(ZOL5), draft(DMAB60)]).count(RID) == 1


def test_ar_onj_history_never_on_patient_view_nor_for_other_drugs():
    res = [patient(), onj(), administration(DMAB60, "2026-10-01")]
    assert RID not in engine_ids(res, hook="patient-view")
    assert run(RID, res, hook="patient-view") is None
    assert run(RID, res, drafts=[draft("197361", text="amlodipine 5 mg tablet")]) is None
