"""Shared condition facts of catalog v2 (cards/rules/_definitions.py, cds_service/chart): A4
hypercalcemia of malignancy, A5 "the order's indication is hypercalcemia of malignancy", E1 GCTB
diagnosis, and the codes.json ``match: prefix`` / text-pattern entries they rely on."""

from __future__ import annotations

import pytest

from cards.registry import RuleInput
from cards.rules import _definitions as defs
from cards.thresholds import Thresholds
from cds_service.chart import build_chart, default_value_sets
from tests import factory as f
from tests.factory import NOW, condition, draft, observation, patient

from ._dmab_helpers import ICD10, ago, run

ZOL4 = f.ZOL4


def _inp(*resources, drafts=(), thresholds: Thresholds = Thresholds()) -> RuleInput:
    drafts = list(drafts)
    chart = build_chart(list(resources), NOW, hook="order-sign", draft_orders=drafts)
    return RuleInput(chart=chart, hook="order-sign", now=NOW, thresholds=thresholds)


def _e83(**kw):
    return condition("E83.52", ICD10, text="Hypercalcemia", **kw)


# ---- value sets: prefix and text-pattern entries ----------------------------------------------

@pytest.mark.parametrize("code, sets", [
    ("C50.911", {"malignancy"}), ("C79.51", {"malignancy", "bone-metastases"}),
    ("c34.90", {"malignancy"}),                      # case of the code does not matter
    ("E20.8", {"hypoparathyroidism"}), ("E20", {"hypoparathyroidism"}),
    ("K90.09", {"celiac-disease", "malabsorption"}), ("K90.1", set()), ("E21.0", set()),
    ("D48.0", {"giant-cell-tumor-of-bone", "oncology-bone-indication"}),
])
def test_prefix_entries_match_every_code_of_the_category(code, sets):
    names = default_value_sets().names_for(ICD10, code)
    assert sets <= names
    if not sets:
        assert not names & {"malignancy", "hypoparathyroidism", "celiac-disease", "malabsorption"}


def test_text_pattern_entries_are_not_codes():
    vs = default_value_sets()
    pattern = next(c.code for c in vs.codes("malignancy") if c.is_pattern)
    assert vs.names_for("urn:bone-safety-cds:text-pattern", pattern) == frozenset()
    assert "malignancy" in vs.pattern_matches(["Metastatic melanoma"])
    assert "hypoparathyroidism" in vs.pattern_matches(["HYPOPARATHYROIDISM after surgery"])
    assert vs.pattern_matches(["Hypercalcemia"], ("malignancy", "hypercalcemia-of-malignancy")) == frozenset()


# ---- A4 ---------------------------------------------------------------------------------------

def test_a4_e83_52_alone_is_not_hcm_nor_an_oncology_indication():
    inp = _inp(patient(), _e83(), condition("E21.0", ICD10, text="Primary hyperparathyroidism"))
    c = inp.chart.conditions[0]
    assert "hypercalcemia-of-malignancy" not in c.concepts and "oncology-bone-indication" not in c.concepts
    assert defs.hcm_conditions(inp.chart) == []
    assert defs.oncology_indication(inp.chart) == []


@pytest.mark.parametrize("malignancy", [
    lambda: condition("C61", ICD10),                          # prostate cancer (chapter C)
    lambda: condition("363346000"),                            # SNOMED CT
    lambda: condition(None, text="Multiple myeloma"),
    lambda: condition("C90.00", ICD10, clinical="relapse"),
])
def test_a4_e83_52_is_hcm_with_an_active_malignancy(malignancy):
    inp = _inp(patient(), _e83(), malignancy())
    assert len(defs.hcm_conditions(inp.chart)) == 1
    assert defs.oncology_indication(inp.chart)


def test_a4_condition_matched_by_the_hcm_text_is_hcm_without_malignancy():
    inp = _inp(patient(), condition("E83.52", ICD10, text="Hypercalcemia of malignancy"))
    assert len(defs.hcm_conditions(inp.chart)) == 1


def test_a4_supplement_rule_not_silenced_by_e83_52_alone():
    """DMAB-NO-CA-VITD-SUPPLEMENT: E83.52 on its own does not silence; with a malignancy it does;
    a calcium > 10.5 mg/dL still silences (D6)."""
    rid = "DMAB-NO-CA-VITD-SUPPLEMENT"
    base = [patient(), observation(f.CALCIUM_SERUM, 10.1, "mg/dL", ago(3))]
    assert run(rid, base + [_e83()], drafts=[draft()]) is not None
    assert run(rid, base + [_e83(), condition("C50.911", ICD10)], drafts=[draft()]) is None
    high = [patient(), observation(f.CALCIUM_SERUM, 10.6, "mg/dL", ago(3)), _e83()]
    assert run(rid, high, drafts=[draft()]) is None
    at_limit = [patient(), observation(f.CALCIUM_SERUM, 10.5, "mg/dL", ago(3)), _e83()]
    assert run(rid, at_limit, drafts=[draft()]) is not None


def test_a4_e83_52_resolved_or_other_patient_does_not_count():
    inp = _inp(patient(), _e83(clinical="resolved"), condition("C50.911", ICD10))
    assert defs.hcm_conditions(inp.chart) == []


# ---- A5: the order's indication is hypercalcemia of malignancy --------------------------------

def _zol4(reason=(), text=None, ref=None):
    d = draft(ZOL4, dose_mg=4, reason=reason)
    if text:
        d["reasonCode"] = [{"text": text}]
    if ref:
        d["reasonReference"] = [{"reference": f"Condition/{ref['id']}"}]
    return d


@pytest.mark.parametrize("resources, order, expected", [
    ([], dict(text="Hypercalcemia of malignancy"), True),
    ([], dict(text="Malignant hypercalcaemia"), True),
    ([], dict(reason=((ICD10, "E83.52"),)), False),                        # no malignancy
    ([condition("C50.911", ICD10)], dict(reason=((ICD10, "E83.52"),)), True),
    ([], dict(reason=((ICD10, "E83.52"), (ICD10, "C34.90"))), True),      # malignancy among reasons
    ([condition("C79.51", ICD10)], dict(text="Bone metastases"), False),  # another reason
    ([condition(None, text="Hypercalcemia of malignancy")], {}, True),     # only HCM, no reason
    ([_e83(), condition("C50.911", ICD10)], {}, True),
    ([_e83()], {}, False),
    ([condition(None, text="Hypercalcemia of malignancy"), condition("C79.51", ICD10)], {}, False),
    ([condition(None, text="Hypercalcemia of malignancy"), condition("D48.0", ICD10)], {}, False),
    ([condition(None, text="Hypercalcemia of malignancy"), condition("109989006")], {}, False),
    ([condition(None, text="Hypercalcemia of malignancy", clinical="resolved")], {}, False),
    ([], {}, False),
])
def test_a5_order_indication_is_hcm(resources, order, expected):
    inp = _inp(patient(), *resources, drafts=[_zol4(**order)])
    assert defs.order_indication_is_hcm(inp.chart, inp.chart.triggers[0]) is expected


def test_a5_reason_reference_to_an_hcm_condition():
    hcm = condition(None, text="Tumour-induced hypercalcaemia")
    inp = _inp(patient(), hcm, drafts=[_zol4(ref=hcm)])
    assert defs.order_indication_is_hcm(inp.chart, inp.chart.triggers[0])
    e83 = _e83()
    inp = _inp(patient(), e83, drafts=[_zol4(ref=e83)])
    assert not defs.order_indication_is_hcm(inp.chart, inp.chart.triggers[0])


# ---- E1: GCTB diagnosis -----------------------------------------------------------------------

def test_e1_d48_0_alone_is_an_oncology_indication_but_not_a_gctb_diagnosis():
    inp = _inp(patient(), condition("D48.0", ICD10, text="Neoplasm of uncertain behavior of bone"))
    assert defs.oncology_indication(inp.chart)
    assert defs.gctb_diagnosis(inp.chart) == []
    named = _inp(patient(), condition("D48.0", ICD10, text="Giant cell tumour of the bone, left tibia"))
    assert defs.gctb_diagnosis(named.chart)
    with_reason = _inp(patient(), condition("D48.0", ICD10),
                       drafts=[{**draft(f.DMAB120), "reasonCode": [{"text": "GCTB, unresectable"}]}])
    assert defs.gctb_diagnosis(with_reason.chart, with_reason.chart.triggers[0])


@pytest.mark.parametrize("gctb, fires", [
    (lambda: condition("D48.0", ICD10), True),                                   # proxy only
    (lambda: condition("D48.0", ICD10, text="Giant cell tumor of bone"), False),
    (lambda: condition(None, text="GCTB of the sacrum"), False),
])
def test_e1_pediatric_exemption_needs_gctb_named(gctb, fires):
    from ._dmab_helpers import woman
    card = run("DMAB-PEDIATRIC", [woman(15), gctb()], drafts=[draft(f.DMAB120)])
    assert (card is not None) is fires


@pytest.mark.parametrize("age, fires", [(11, True), (12, False), (17, False), (18, False)])
def test_pediatric_ages_from_thresholds(age, fires):
    from ._dmab_helpers import woman
    res = [woman(age), condition(None, text="Giant cell tumor of bone")]
    assert (run("DMAB-PEDIATRIC", res, drafts=[draft(f.DMAB120)]) is not None) is fires
    assert (run("DMAB-PEDIATRIC", [woman(age)], drafts=[draft()]) is not None) is (age < 18)
    t = Thresholds(pediatric_age_below=21, gctb_exemption_min_age=14)
    assert (run("DMAB-PEDIATRIC", [woman(19)], drafts=[draft()], thresholds=t) is not None)
    assert (run("DMAB-PEDIATRIC", [woman(13), condition(None, text="GCTB")], drafts=[draft(f.DMAB120)],
                thresholds=t) is not None)


# ---- D9: hypocalcemia-prone includes every predisposition (A16) ---------------------------------

@pytest.mark.parametrize("resource, word", [
    (lambda: f.procedure("60240", "http://www.ama-assn.org/go/cpt", ago(3000), text="Total thyroidectomy"),
     "Total thyroidectomy"),
    (lambda: condition("Z98.84", ICD10, clinical="resolved", text="Bariatric surgery status"),
     "Bariatric surgery status"),
    (lambda: condition("K90.0", ICD10, text="Celiac disease"), "Celiac disease"),
    (lambda: condition("E20.9", ICD10, text="Hypoparathyroidism"), "Hypoparathyroidism"),
])
def test_hypocalcemia_prone_includes_the_predispositions(resource, word):
    inp = _inp(patient(), resource())
    prone = defs.hypocalcemia_prone(inp.chart, inp.thresholds)
    assert any(word in p for p in prone)
    assert [p.kind for p in defs.predispositions(inp.chart, inp.thresholds)]


def test_hypocalcemia_prone_not_for_partial_thyroidectomy():
    inp = _inp(patient(), f.procedure("60220", "http://www.ama-assn.org/go/cpt", ago(300), text="Thyroid lobectomy"))
    assert defs.hypocalcemia_prone(inp.chart, inp.thresholds) == []


def test_value_set_file_with_bad_pattern_or_match_stops_loading(tmp_path):
    from cds_service.chart import ValueSetError, load_value_sets
    p = tmp_path / "codes.json"
    p.write_text('{"malignancy": [{"system": "urn:bone-safety-cds:text-pattern", "code": "(unclosed"}]}')
    with pytest.raises(ValueSetError, match=r"malignancy.*entry 0.*regular expression"):
        load_value_sets(p)
    p.write_text('{"malignancy": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C", "match": "suffix"}]}')
    with pytest.raises(ValueSetError, match=r"malignancy.*entry 0.*match"):
        load_value_sets(p)
