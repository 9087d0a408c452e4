"""AR-AFF-HISTORY (RULES.md §5): atypical femoral fracture on record (ICD-10-CM M84.75* prefix or
text), any clinical status, warning; refuted / entered-in-error ignored."""

from __future__ import annotations

import pytest

from tests.factory import (ALENDRONATE, DMAB60, ICD10, RISEDRONATE, ZOL5, administration, condition,
                           draft, patient)
from tests.rules._ar_helpers import engine_ids, override_codes, run

RID = "AR-AFF-HISTORY"


@pytest.mark.parametrize("code", ["M84.750A", "M84.751A", "M84.752A", "M84.751D", "M84.754S", "m84.752g"])
@pytest.mark.parametrize("drug", [DMAB60, ZOL5, ALENDRONATE])
def test_ar_aff_history_fires_on_m84_75_prefix(code, drug):
    card = run(RID, [patient(), condition(code, ICD10, onset="2024-02-03", clinical="resolved")],
               drafts=[draft(drug)])
    assert card is not None and card["indicator"] == "warning"
    assert card["summary"] == ("History of atypical femoral fracture (2024-02-03): antiresorptive "
                               "therapy is usually stopped; review before ordering")
    assert override_codes(card) == ["specialist-decision"]
    assert card["source"]["topic"]["display"] == "History of atypical femoral fracture"
    assert "dailymed.nlm.nih.gov/dailymed/drugInfo.cfm?setid=" in card["source"]["url"]
    assert [a["type"] for s in card["suggestions"] for a in s["actions"]] == ["delete"]


@pytest.mark.parametrize("clinical", ["active", "resolved", "inactive", None])
def test_ar_aff_history_any_status_is_warning(clinical):
    card = run(RID, [patient(), condition("M84.751A", ICD10, clinical=clinical, onset="2024-02-03")],
               drafts=[draft(RISEDRONATE)])
    assert card is not None and card["indicator"] == "warning"


@pytest.mark.parametrize("text", ["Atypical femoral fracture, left", "atypical femur fracture (2019)"])
def test_ar_aff_history_by_text(text):
    card = run(RID, [patient(), condition(None, text=text, recorded="2021-05-05")], drafts=[draft(DMAB60)])
    assert card is not None and "(2021-05-05)" in card["summary"]
    assert "identified by name, not code" in card["detail"]


@pytest.mark.parametrize("code, system", [("M84.759A", "http://example.org/local"),  # not ICD-10-CM
                                          ("M84.40XA", ICD10),   # pathological fracture, unspecified
                                          ("S72.001A", ICD10)])  # ordinary femoral neck fracture
def test_ar_aff_history_other_fractures_do_not_fire(code, system):
    assert run(RID, [patient(), condition(code, system, text="Fracture of femur")], drafts=[draft(DMAB60)]) is None


@pytest.mark.parametrize("verification", ["refuted", "entered-in-error"])
def test_ar_aff_history_refuted_or_entered_in_error_ignored(verification):
    res = [patient(), condition("M84.751A", ICD10, verification=verification)]
    assert run(RID, res, drafts=[draft(DMAB60)]) is None


def test_ar_aff_history_undated():
    card = run(RID, [patient(), condition("M84.751A", ICD10)], drafts=[draft(ZOL5)])
    assert "(date unknown)" in card["summary"]


def test_ar_aff_history_order_select_selected_vs_not_selected():
    d, statin = draft(DMAB60), draft("197361", text="atorvastatin")
    res = [patient(), condition("M84.751A", ICD10)]
    assert run(RID, res, hook="order-select", drafts=[d, statin]) is not None
    assert run(RID, res, hook="order-select", drafts=[d, statin],
               selections=[f"MedicationRequest/{statin['id']}"]) is None


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_ar_aff_history_on_order_hooks_not_patient_view(hook):
    res = [patient(), condition("M84.751A", ICD10), administration(DMAB60, "2026-09-01")]
    assert RID in engine_ids(res, hook=hook, drafts=[draft(DMAB60)])
    assert RID not in engine_ids(res, hook="patient-view")
    assert run(RID, res, hook="patient-view") is None
