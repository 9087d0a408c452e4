"""AR-RECENT-INVASIVE-DENTAL (RULES.md §5): denosumab or IV bisphosphonate initiation within
``dental_healing_days`` (28, inclusive) of an invasive dental procedure; earliest start = date + 28."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cards.thresholds import Thresholds
from tests.factory import (ALENDRONATE, CDT, DMAB60, DMAB120, ZOL4, ZOL5, administration, draft,
                           patient, procedure)
from tests.rules._ar_helpers import TODAY, ago, engine_ids, override_codes, run

RID = "AR-RECENT-INVASIVE-DENTAL"
IBANDRONATE_IV = "904952"


def extraction(days: int, **kwargs) -> dict:
    return procedure("D7140", CDT, ago(days), **kwargs)


@pytest.mark.parametrize("days, fires", [(0, True), (14, True), (27, True), (28, True), (29, False)])
def test_ar_recent_invasive_dental_window_boundary(days, fires):
    card = run(RID, [patient(), extraction(days)], drafts=[draft(DMAB60)])
    assert (card is not None) is fires


@pytest.mark.parametrize("code, agent", [(DMAB60, "denosumab"), (DMAB120, "denosumab"),
                                         (ZOL5, "zoledronic acid"), (ZOL4, "zoledronic acid"),
                                         (IBANDRONATE_IV, "ibandronate")])
def test_ar_recent_invasive_dental_card(code, agent):
    when = ago(10)
    card = run(RID, [patient(), procedure("55162003", when=when, text="Extraction of tooth 36")],
               drafts=[draft(code)])
    assert card is not None and card["indicator"] == "warning"
    assert card["summary"] == (f"Extraction of tooth 36 on {when.isoformat()} (10 days ago): allow "
                               f"2–4 weeks of healing before starting {agent}")
    earliest = (when + timedelta(days=28)).isoformat()
    assert f"Suggested earliest start: {earliest}" in card["detail"]
    assert override_codes(card) == ["healed-on-exam", "urgent-oncology-start"]
    assert card["source"]["topic"]["display"] == "Invasive dental procedure in the healing window"


def test_ar_recent_invasive_dental_never_for_oral_bisphosphonates():
    assert run(RID, [patient(), extraction(5)], drafts=[draft(ALENDRONATE)]) is None


@pytest.mark.parametrize("code", ["D6010", "D7210"])
def test_ar_recent_invasive_dental_implant_and_surgical_extraction(code):
    card = run(RID, [patient(), procedure(code, CDT, ago(3))], drafts=[draft(ZOL5)])
    assert card is not None and card["summary"].startswith("Invasive dental procedure on ")


@pytest.mark.parametrize("proc", [
    procedure("D0150", CDT, ago(5)),               # comprehensive oral evaluation: not invasive
    procedure("D2740", CDT, ago(5), text="Crown - porcelain/ceramic"),  # crowns: §8 item 8
    procedure("D1110", CDT, ago(5), text="Prophylaxis - adult"),
])
def test_ar_recent_invasive_dental_non_invasive_dental_work_does_not_fire(proc):
    assert run(RID, [patient(), proc], drafts=[draft(DMAB60)]) is None


@pytest.mark.parametrize("status", ["entered-in-error", "not-done", "in-progress", "preparation"])
def test_ar_recent_invasive_dental_only_completed_procedures(status):
    assert run(RID, [patient(), extraction(5, status=status)], drafts=[draft(DMAB60)]) is None


def test_ar_recent_invasive_dental_future_or_undated_procedure_ignored():
    assert run(RID, [patient(), extraction(-3)], drafts=[draft(DMAB60)]) is None
    undated = procedure("D7140", CDT, None)
    assert run(RID, [patient(), undated], drafts=[draft(DMAB60)]) is None


def test_ar_recent_invasive_dental_continuation_is_not_initiation():
    res = [patient(), extraction(5), administration(DMAB60, ago(months=6))]
    assert run(RID, res, drafts=[draft(DMAB60)]) is None
    res = [patient(), extraction(5), administration(ZOL5, ago(months=12))]
    assert run(RID, res, drafts=[draft(ZOL5)]) is None


def test_ar_recent_invasive_dental_initiation_is_per_drug_class():
    """D4: a bisphosphonate after denosumab is a bisphosphonate initiation (and vice versa)."""
    res = [patient(), extraction(5), administration(DMAB60, ago(months=6))]
    assert run(RID, res, drafts=[draft(ZOL5)]) is not None
    res = [patient(), extraction(5), administration(DMAB60, ago(366))]
    assert run(RID, res, drafts=[draft(DMAB60)]) is not None


def test_ar_recent_invasive_dental_newest_procedure_sets_the_date():
    res = [patient(), extraction(20), procedure("D6010", CDT, ago(6))]
    card = run(RID, res, drafts=[draft(DMAB60)])
    assert f"on {ago(6).isoformat()} (6 days ago)" in card["summary"]
    assert f"Suggested earliest start: {(ago(6) + timedelta(days=28)).isoformat()}" in card["detail"]
    assert ago(20).isoformat() in card["detail"]


def test_ar_recent_invasive_dental_window_from_thresholds():
    res = [patient(), extraction(20)]
    assert run(RID, res, drafts=[draft(DMAB60)], thresholds=Thresholds(dental_healing_days=14)) is None
    card = run(RID, [patient(), extraction(40)], drafts=[draft(DMAB60)],
               thresholds=Thresholds(dental_healing_days=42))
    assert f"Suggested earliest start: {(ago(40) + timedelta(days=42)).isoformat()}" in card["detail"]


def test_ar_recent_invasive_dental_order_select_selected_vs_not_selected():
    d, alendronate = draft(DMAB60), draft(ALENDRONATE)
    res = [patient(), extraction(7)]
    assert run(RID, res, hook="order-select", drafts=[d, alendronate]) is not None
    assert run(RID, res, hook="order-select", drafts=[d, alendronate],
               selections=[f"MedicationRequest/{alendronate['id']}"]) is None


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_ar_recent_invasive_dental_on_order_hooks_never_patient_view(hook):
    res = [patient(), extraction(7)]
    assert engine_ids(res, hook=hook, drafts=[draft(DMAB60), draft(ZOL5)]).count(RID) == 1
    assert RID not in engine_ids(res + [administration(DMAB60, ago(months=7))], hook="patient-view")
    assert run(RID, res, hook="patient-view") is None


def test_ar_recent_invasive_dental_co_occurs_with_dental_clearance_only_without_evaluation():
    """§7: an extraction is not an evaluation; with an evaluation on record only this rule fires."""
    without_eval = [patient(), extraction(7)]
    with_eval = without_eval + [procedure("D0150", CDT, ago(60))]
    ids = engine_ids(without_eval, drafts=[draft(DMAB60)])
    assert RID in ids
    ids_eval = engine_ids(with_eval, drafts=[draft(DMAB60)])
    assert RID in ids_eval and "DMAB-DENTAL-CLEARANCE" not in ids_eval
    assert TODAY.isoformat() == "2026-11-23"


# ---- A22: continuation of an oncology regimen (info) ------------------------------------------



def _pamidronate_code() -> str:
    from cds_service.chart import default_value_sets
    return next(c.code for c in default_value_sets().codes("pamidronate")
                if c.system.endswith("rxnorm"))


@pytest.mark.parametrize("code, history, agent", [
    (DMAB120, lambda: administration(DMAB120, ago(28)), "denosumab"),
    (ZOL4, lambda: administration(ZOL4, ago(28)), "zoledronic acid"),
    (None, lambda: administration(_pamidronate_code(), ago(28)), "pamidronate"),
])
def test_a22_oncology_continuation_within_healing_window_is_info(code, history, agent):
    code = code or _pamidronate_code()
    when = ago(10)
    res = [patient(), procedure("D7210", CDT, when, text="Surgical extraction of tooth 46"), history()]
    card = run(RID, res, drafts=[draft(code)])
    assert card is not None and card["indicator"] == "info"
    assert card["summary"] == (f"Surgical extraction of tooth 46 on {when.isoformat()}: consider delaying "
                               f"this {agent} dose until healed")
    assert f"Suggested earliest next dose: {(when + timedelta(days=28)).isoformat()}" in card["detail"]


@pytest.mark.parametrize("days, fires", [(28, True), (29, False)])
def test_a22_oncology_continuation_window_boundary(days, fires):
    res = [patient(), extraction(days), administration(DMAB120, ago(27))]
    assert (run(RID, res, drafts=[draft(DMAB120)]) is not None) is fires


def test_a22_osteoporosis_continuations_stay_silent_and_initiation_wins():
    """60 mg and zoledronic acid 5 mg continuations are not oncology regimens; an initiation in
    the same request keeps the warning."""
    assert run(RID, [patient(), extraction(5), administration(DMAB60, ago(months=6))],
               drafts=[draft(DMAB60)]) is None
    assert run(RID, [patient(), extraction(5), administration(ZOL5, ago(months=12))],
               drafts=[draft(ZOL5)]) is None
    res = [patient(), extraction(5), administration(DMAB120, ago(28))]
    card = run(RID, res, drafts=[draft(DMAB120), draft(ZOL5)])
    assert card["indicator"] == "warning" and "Also ordered" in card["detail"]


# ---- A23: invasive-dental-procedure CDT codes and text -----------------------------------------

@pytest.mark.parametrize("code", ["D7220", "D7240", "D7251", "D7310", "D7321", "D4210", "D4260",
                                  "D4275", "D3410", "D3426", "D7950", "D7953"])
def test_a23_new_cdt_codes_are_invasive(code):
    assert run(RID, [patient(), procedure(code, CDT, ago(3))], drafts=[draft(DMAB60)]) is not None


@pytest.mark.parametrize("text, fires", [
    ("Surgical removal of wisdom tooth with bone graft", True),
    ("Apicectomy upper left canine", True),
    ("Dental implant placement", True),
    ("Sinus lift", True),
    ("Scaling and root planing", False),
    ("Composite filling", False),
    ("Cataract extraction", False),
    ("Iliac crest bone graft for spinal fusion", False),
])
def test_a23_text_pattern_on_uncoded_procedures(text, fires):
    proc = procedure("000000", "http://example.org/local-codes", ago(4), text=text)
    assert (run(RID, [patient(), proc], drafts=[draft(DMAB60)]) is not None) is fires


def test_a23_cdt_codes_are_exact_not_prefix():
    """D7140 is listed; a longer local code starting with it is not (exact match without `match`)."""
    assert run(RID, [patient(), procedure("D71401", CDT, ago(3))], drafts=[draft(DMAB60)]) is None
    assert run(RID, [patient(), procedure("D2391", CDT, ago(3))], drafts=[draft(DMAB60)]) is None
