"""Kidney function rules of catalog v2 (RULES.md D5, BP-RENAL-CONTRAINDICATION,
BP-RENAL-DOSE-ADJUST, AR-RENAL-FUNCTION-UNKNOWN; A5, A10, A13, A14, A21, A32, A35, A39)."""

from __future__ import annotations

from typing import Any

import pytest

from cards.thresholds import Thresholds
from tests.factory import (ICD10, administration, condition, draft, evaluate_rules, observation,
                           patient, request)
from tests.rules._bp_helpers import (ALENDRONATE_70, IBANDRONATE_IV, PAMIDRONATE, ZOL4, ZOL5, ago,
                                     calcium, card, creatinine, egfr, ids)
from tests.rules._helpers import UNMERGED
from tests.rules._helpers import run as run_rule

CONTRA = "BP-RENAL-CONTRAINDICATION"
ADJUST = "BP-RENAL-DOSE-ADJUST"
UNKNOWN = "AR-RENAL-FUNCTION-UNKNOWN"
DMAB60 = "993452"
WEIGHT = "29463-7"
MYELOMA = condition("C90.00", ICD10, onset="2025-06-01")


def weight(kg: float | None, days: int = 30, unit: str | None = "kg", **kw: Any) -> dict[str, Any]:
    return observation(WEIGHT, kg, unit, ago(days), **kw)


def run(resources: list, drafts: list = (), *, birth: str = "1940-06-01", gender: str = "female",
        hook: str = "order-sign", **kw: Any) -> list[dict[str, Any]]:
    """Age 86 on the tests' today (the A10 example patient) unless told; the member cards of the
    work-up card are read one by one (A12 merge off: these tests read the kidney cards' text)."""
    kw.setdefault("thresholds", UNMERGED)
    return evaluate_rules([patient(birth, gender), *resources], hook=hook, drafts=list(drafts), **kw)


def crcl_labs(kg: float, creat: float = 1.0, egfr_value: float | None = 55, days: int = 3) -> list:
    out = [creatinine(creat, ago(days)), weight(kg), calcium(9.4, ago(days))]
    if egfr_value is not None:
        out.append(egfr(egfr_value, ago(days)))
    return out


# ---- BP-RENAL-CONTRAINDICATION: CrCl for IV agents (A10) --------------------------------------

def test_the_a10_patient_44_kg_86_years_egfr_55_has_crcl_28_zol5_contraindicated() -> None:
    c = card(run(crcl_labs(44), [draft(ZOL5)]), CONTRA)
    assert c is not None and c["indicator"] == "critical"
    assert c["summary"] == (f"CrCl 28 mL/min (Cockcroft-Gault) on {ago(3)}, below 35: "
                            "zoledronic acid 5 mg is contraindicated")
    assert "age 86, female, weight 44.0 kg" in c["detail"]
    assert "serum creatinine 1.00 mg/dL" in c["detail"]
    assert "eGFR is not judged again" in c["detail"]


@pytest.mark.parametrize("kg, crcl, fires", [(38.2, 35, False), (37.1, 34, True), (39.3, 36, False)])
def test_iv_cutoff_applies_to_crcl_below_at_above(kg: float, crcl: int, fires: bool) -> None:
    """Male, 74 years, creatinine 1.00: CrCl = 66 × kg / 72; zoledronic acid 5 mg cut-off 35."""
    cards = run(crcl_labs(kg, egfr_value=80), [draft(ZOL5)], birth="1952-03-14", gender="male")
    assert (CONTRA in ids(cards)) is fires
    if fires:
        assert card(cards, CONTRA)["summary"].startswith(f"CrCl {crcl} mL/min (Cockcroft-Gault)")


def test_crcl_replaces_the_egfr_for_iv_agents() -> None:
    """A10: a computable CrCl is not re-checked against the eGFR (eGFR 20, CrCl 50: no card)."""
    assert CONTRA not in ids(run(crcl_labs(80, egfr_value=20), [draft(ZOL5)], birth="1960-01-01"))


def test_crcl_is_never_used_for_oral_agents_or_denosumab() -> None:
    """A35: CrCl 28 with eGFR 55 and alendronate: the eGFR decides (no card)."""
    assert CONTRA not in ids(run(crcl_labs(44), [draft(ALENDRONATE_70)]))
    # an eGFR below the cut-off fires for alendronate, with its eGFR wording
    c = card(run(crcl_labs(80, egfr_value=30), [draft(ALENDRONATE_70)], birth="1960-01-01"), CONTRA)
    assert c is not None and c["summary"].startswith(f"eGFR 30 on {ago(3)} (below 35)")
    # denosumab: no CrCl stands in for a missing eGFR
    cards = run([creatinine(1.0, ago(3)), weight(60), calcium(9.4, ago(3))], [draft(DMAB60)])
    assert UNKNOWN in ids(cards)


def test_unusable_latest_weight_means_the_egfr_is_judged() -> None:
    """A39: the latest weight has no unit → CrCl not computable → eGFR 33 judged (below 35)."""
    res = [creatinine(1.0, ago(3)), weight(80, days=60), weight(44, days=2, unit=None),
           egfr(33, ago(3)), calcium(9.4, ago(3))]
    c = card(run(res, [draft(ZOL5)]), CONTRA)
    assert c is not None and c["summary"].startswith(f"eGFR 33 on {ago(3)} (below 35)")
    assert "could not be computed (weight not usable)" in c["detail"]


def test_unknown_sex_means_the_egfr_is_judged() -> None:
    c = card(run(crcl_labs(44, egfr_value=33), [draft(ZOL5)], gender="unknown"), CONTRA)
    assert c is not None and c["summary"].startswith("eGFR 33")


def test_weight_window_365_days() -> None:
    res = [creatinine(1.0, ago(3)), weight(44, days=366), egfr(55, ago(3)), calcium(9.4, ago(3))]
    assert CONTRA not in ids(run(res, [draft(ZOL5)]))           # no CrCl: eGFR 55 judged
    res[1] = weight(44, days=365)
    assert CONTRA in ids(run(res, [draft(ZOL5)]))


# ---- A14: critical for every IV agent -------------------------------------------------------

@pytest.mark.parametrize("code", [ZOL5, ZOL4, IBANDRONATE_IV, PAMIDRONATE])
def test_every_iv_bisphosphonate_below_its_cutoff_is_critical(code: str) -> None:
    c = card(run([egfr(25, ago(3)), calcium(9.4, ago(3)), MYELOMA], [draft(code)]), CONTRA)
    assert c is not None and c["indicator"] == "critical"


def test_an_oral_agent_below_its_cutoff_is_a_warning() -> None:
    c = card(run([egfr(25, ago(3))], [draft(ALENDRONATE_70)]), CONTRA)
    assert c is not None and c["indicator"] == "warning"


# ---- A32: suggestions -------------------------------------------------------------------------

def _kinds(c: dict) -> list[str]:
    out = []
    for s in c["suggestions"]:
        a = s["actions"][0]
        out.append("delete" if a["type"] == "delete" else a["resource"]["code"]["coding"][0]["code"])
    return out


@pytest.mark.parametrize("days, expected", [(7, ["delete"]), (8, ["2160-0", "delete"])])
def test_iv_recheck_order_when_the_measure_is_older_than_7_days(days: int, expected: list) -> None:
    c = card(run([egfr(25, ago(days)), calcium(9.4, ago(3))], [draft(ZOL5)]), CONTRA)
    assert _kinds(c) == expected and c["selectionBehavior"] == "any"


@pytest.mark.parametrize("days, expected", [(90, ["delete"]), (91, ["2160-0", "delete"])])
def test_oral_recheck_order_when_the_measure_is_older_than_90_days(days: int, expected: list) -> None:
    c = card(run([egfr(25, ago(days))], [draft(ALENDRONATE_70)]), CONTRA)
    assert _kinds(c) == expected


def test_the_delete_action_names_the_draft_only_in_resource_id() -> None:
    d = draft(ALENDRONATE_70)
    c = card(run([egfr(25, ago(3))], [d]), CONTRA)
    action = c["suggestions"][-1]["actions"][0]
    assert action == {"type": "delete", "description": "Remove the draft alendronate order",
                      "resourceId": f"MedicationRequest/{d['id']}"}
    assert d["id"] not in c["suggestions"][-1]["label"]


def test_a_record_only_card_offers_the_lab_order() -> None:
    c = card(run([condition("N18.4", ICD10)], [draft(ALENDRONATE_70)]), CONTRA)
    assert _kinds(c) == ["2160-0", "delete"]


def test_recheck_days_are_parameters() -> None:
    c = card(run([egfr(25, ago(5)), calcium(9.4, ago(3))], [draft(ZOL5)],
                 thresholds=Thresholds(renal_recheck_days_iv_bp=3)), CONTRA)
    assert _kinds(c) == ["2160-0", "delete"]


# ---- A21: patient-view, current oral course -------------------------------------------------

def pv(resources: list, **kw: Any) -> dict | None:
    return card(run(resources, hook="patient-view", **kw), CONTRA)


def test_patient_view_current_oral_course_below_cutoff_is_info() -> None:
    c = pv([request(ALENDRONATE_70, ago(40)), egfr(30, ago(20))])
    assert c is not None and c["indicator"] == "info"
    assert c["summary"] == (f"eGFR 30 on {ago(20)} is below 35 for alendronate: "
                            "reassess oral bisphosphonate therapy")
    assert _kinds(c) == ["2160-0"]        # always the lab order, never a delete (no draft)


@pytest.mark.parametrize("value, fires", [(34, True), (35, False), (36, False)])
def test_patient_view_cutoff_boundary(value: int, fires: bool) -> None:
    assert (pv([request(ALENDRONATE_70, ago(40)), egfr(value, ago(20))]) is not None) is fires


def test_patient_view_ckd_record_with_a_current_course() -> None:
    c = pv([request(ALENDRONATE_70, ago(40)), condition("N18.5", ICD10)])
    assert c is not None and c["indicator"] == "info"
    assert c["summary"].startswith("CKD stage 4/5 on record: alendronate")


def test_patient_view_no_card_without_a_current_oral_course() -> None:
    assert pv([egfr(20, ago(20))]) is None
    assert pv([request(ALENDRONATE_70, ago(800), status="completed"), egfr(20, ago(20))]) is None
    assert pv([request(ALENDRONATE_70, ago(40), status="entered-in-error"), egfr(20, ago(20))]) is None
    # an IV history is not an oral course
    assert pv([administration(ZOL5, ago(100)), egfr(20, ago(20))]) is None


def test_patient_view_oral_window_365_days_and_no_crcl() -> None:
    assert pv([request(ALENDRONATE_70, ago(40)), egfr(20, ago(366))]) is None
    assert pv([request(ALENDRONATE_70, ago(40)), egfr(55, ago(3)), creatinine(1.0, ago(3)),
               weight(44)]) is None          # CrCl 28 is not used for an oral agent


# ---- BP-RENAL-DOSE-ADJUST: CrCl, band parameters, HCM (A5, A10) ----------------------------

def zol4(**kw: Any) -> dict:
    return draft(ZOL4, dose_mg=4, **kw)


def test_dose_adjust_uses_crcl_when_computable() -> None:
    # 74-year-old male, 60 kg, creatinine 1.00 → CrCl 55 (eGFR 75 would need no reduction)
    cards = run(crcl_labs(60, egfr_value=75) + [MYELOMA], [zol4()], birth="1952-03-14", gender="male")
    c = card(cards, ADJUST)
    assert c is not None
    assert c["summary"] == f"CrCl 55 on {ago(3)}: zoledronic acid (oncology) dose should be 3.5 mg, not 4 mg"
    assert "Cockcroft-Gault with actual body weight" in c["detail"]


@pytest.mark.parametrize("value, fires", [(29, False), (30, True), (60, True), (61, False)])
def test_dose_adjust_band_edges(value: int, fires: bool) -> None:
    cards = run([egfr(value, ago(3)), calcium(9.4, ago(3)), MYELOMA], [zol4()])
    assert (ADJUST in ids(cards)) is fires


def test_dose_adjust_band_comes_from_parameters() -> None:
    res = [egfr(62, ago(3)), calcium(9.4, ago(3)), MYELOMA]
    assert ADJUST not in ids(run(res, [zol4()]))
    assert ADJUST in ids(run(res, [zol4()], thresholds=Thresholds(zol4_dose_band_high=65)))
    res = [egfr(45, ago(3)), calcium(9.4, ago(3)), MYELOMA]
    assert ADJUST not in ids(run(res, [zol4()], thresholds=Thresholds(zol4_dose_band_low=50)))


def _reason(text: str | None = None, code: tuple[str, str] | None = None) -> dict:
    d = zol4()
    concept: dict = {}
    if code:
        concept["coding"] = [{"system": code[0], "code": code[1]}]
    if text:
        concept["text"] = text
    d["reasonCode"] = [concept]
    return d


LABS_45 = [egfr(45, ago(3)), calcium(9.4, ago(3))]
HCM_CONDITION = condition("E83.52", ICD10)


def test_no_dose_reduction_when_the_order_reason_is_hcm() -> None:
    assert ADJUST not in ids(run(LABS_45 + [MYELOMA], [_reason("Hypercalcemia of malignancy")]))
    assert ADJUST not in ids(run(LABS_45 + [MYELOMA], [_reason("tumour-induced hypercalcaemia")]))


def test_e83_52_on_the_order_is_hcm_only_with_a_malignancy() -> None:
    """A4: E83.52 as the order's reason is HCM only with an active malignancy (or a malignancy
    reason); alone (e.g. primary hyperparathyroidism) it is not, and the card fires."""
    e83 = ("http://hl7.org/fhir/sid/icd-10-cm", "E83.52")
    assert ADJUST in ids(run(LABS_45, [_reason(code=e83)]))
    assert ADJUST not in ids(run(LABS_45 + [MYELOMA], [_reason(code=e83)]))
    assert ADJUST not in ids(run(LABS_45, [_reason("hypercalcemia, breast cancer", code=e83)]))


def test_no_reason_and_hcm_the_only_oncology_indication_is_silent() -> None:
    hcm_text = condition(None, text="Hypercalcemia of malignancy")
    assert ADJUST not in ids(run(LABS_45 + [hcm_text], [zol4()]))
    # with bone metastases or myeloma active as well, the reduction applies
    assert ADJUST in ids(run(LABS_45 + [hcm_text, MYELOMA], [zol4()]))


def test_no_reason_e83_52_without_malignancy_is_not_hcm() -> None:
    """A4: E83.52 without an active malignancy is not HCM; with only it on the problem list the
    draft reads as 4 mg oncology and the reduction applies (the cautious direction)."""
    assert ADJUST in ids(run(LABS_45 + [HCM_CONDITION], [zol4()]))


def test_an_oncology_reason_other_than_hcm_keeps_the_card() -> None:
    assert ADJUST in ids(run(LABS_45 + [MYELOMA], [_reason("multiple myeloma")]))
    assert ADJUST in ids(run(LABS_45, [_reason("Hypercalcemia of malignancy; bone metastases")]))


# ---- AR-RENAL-FUNCTION-UNKNOWN (A10, A13) ---------------------------------------------------

def test_a_computable_crcl_is_a_kidney_measure_for_iv_agents() -> None:
    res = [creatinine(1.0, ago(3)), weight(70), calcium(9.4, ago(3))]
    assert UNKNOWN not in ids(run(res, [draft(ZOL5)]))


def test_creatinine_without_weight_fires_for_iv_and_names_it() -> None:
    res = [creatinine(0.4522232972528771, ago(3)), calcium(9.4, ago(3))]
    c = card(run(res, [draft(ZOL5)]), UNKNOWN)
    assert c is not None and c["indicator"] == "warning"
    assert "0.45 mg/dL" in c["summary"] and "0.4522" not in c["detail"]
    assert "could not be computed: no body weight in the last 365 days" in c["detail"]
    assert [len(s["actions"]) for s in c["suggestions"]] == [2]      # creatinine + weight


def test_unusable_creatinine_for_iv_fires_even_with_a_weight() -> None:
    res = [creatinine(1.0, ago(3), unit="mg"), weight(70), calcium(9.4, ago(3))]
    c = card(run(res, [draft(ZOL5)]), UNKNOWN)
    assert c is not None and "creatinine not usable" in c["detail"]


def test_denosumab_initiation_warning_continuation_info() -> None:
    start = card(run([calcium(9.4, ago(3))], [draft(DMAB60)]), UNKNOWN)
    assert start is not None and start["indicator"] == "warning"
    cont = card(run([calcium(9.4, ago(3)), administration(DMAB60, ago(180))], [draft(DMAB60)]), UNKNOWN)
    assert cont is not None and cont["indicator"] == "info"


def test_oral_agent_is_info() -> None:
    c = card(run([], [draft(ALENDRONATE_70)]), UNKNOWN)
    assert c is not None and c["indicator"] == "info"


def test_egfr_in_ml_min_counts_as_a_measure() -> None:
    """A35: 823 real eGFR results came as mL/min; they are used, not 'unit not recognised'."""
    res = [observation("33914-3", 70, "mL/min", ago(10)), calcium(9.4, ago(3))]
    assert UNKNOWN not in ids(run(res, [draft(DMAB60)]))
    res = [observation("33914-3", 70, "mL/s", ago(10)), calcium(9.4, ago(3))]
    c = card(run(res, [draft(DMAB60)]), UNKNOWN)
    assert c is not None and "unit not recognised" in c["detail"]


def test_a_computable_crcl_stands_for_an_unusable_latest_egfr_for_iv_only() -> None:
    """A39 + A10: the latest eGFR is unusable, but CrCl is computable: an IV agent has its kidney
    measure (no 'unknown' card); an oral agent does not (CrCl never stands in, A35)."""
    res = [creatinine(1.0, ago(3)), weight(70), calcium(9.4, ago(3)),
           observation("98979-8", 13.4, None, ago(2))]
    assert UNKNOWN not in ids(run(res, [draft(ZOL5)], birth="1960-01-01"))
    c = card(run(res, [draft(ALENDRONATE_70)], birth="1960-01-01"), UNKNOWN)
    assert c is not None and "unit not recognised" in c["summary"]


# ---- §1.2 rule 1 (A29) for the kidney cards ---------------------------------------------------

_INTERNAL = [r"(?i)\bseeds?\b", r"\b\d{3}_[0-9a-f]{16}\b", r"RULES\.md", r"codes\.json", "§",
             r"\(D(10|[1-9])\)", r"\b[a-z][a-z0-9]*(_[a-z0-9]+)+\b",
             r"\b(Patient|Medication(Request|Administration|Statement|Dispense)?|Observation|Condition|"
             r"Procedure|ServiceRequest|Encounter)/[A-Za-z0-9.\-]+", r"\burn:",
             r"\b(DMAB|BP|AR)-[A-Z0-9]+(-[A-Z0-9]+)*\b"]


@pytest.mark.parametrize("scenario", [
    lambda: run(crcl_labs(44), [draft(ZOL5)]),
    lambda: run([egfr(25, ago(40)), calcium(9.4, ago(3))], [draft(ZOL5)]),
    lambda: run([condition("N18.4", ICD10)], [draft(ALENDRONATE_70)]),
    lambda: run([request(ALENDRONATE_70, ago(40)), egfr(30, ago(20))], hook="patient-view"),
    lambda: run(crcl_labs(60, egfr_value=75) + [MYELOMA], [zol4()], birth="1952-03-14", gender="male"),
    lambda: run([egfr(45, ago(3)), calcium(9.4, ago(3)), MYELOMA], [zol4()]),
    lambda: run([creatinine(0.45, ago(3)), calcium(9.4, ago(3))], [draft(ZOL5)]),
    lambda: run([calcium(9.4, ago(3))], [draft(DMAB60)]),
    lambda: run([observation("98979-8", 13.4, None, ago(2)), egfr(25, ago(20))], [draft(ALENDRONATE_70)]),
])
def test_kidney_cards_carry_no_internal_references(scenario) -> None:
    import re
    cards = [c for c in scenario() if c["source"]["topic"]["code"] in (CONTRA, ADJUST, UNKNOWN)]
    assert cards
    for c in cards:
        texts = [c["summary"], c["detail"], c["source"]["label"]]
        texts += [s["label"] for s in c["suggestions"]]
        texts += [a["description"] for s in c["suggestions"] for a in s["actions"]]
        for t in texts:
            for p in _INTERNAL:
                assert not re.search(p, t), (c["source"]["topic"]["code"], p, t)
