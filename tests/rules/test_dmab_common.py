"""Shared facts of the denosumab order rules (cards/rules/_definitions.py, _dmab_common.py) and the chart fix they
rely on: D9 advanced CKD / hypocalcemia-prone, D8 reproductive potential, catalog parameters."""

from __future__ import annotations

from decimal import Decimal

from cards.registry import RuleInput
from cards.rules import _definitions as defs
from cards.rules import _dmab_common as dm
from cards.rules import _text as tx
from cards.thresholds import Thresholds
from cds_service.chart import build_chart
from tests.factory import (CALCIUM_SERUM, DMAB60, EGFR, NOW, condition, draft, observation, patient,
                           procedure)

from ._dmab_helpers import EGFR_UNIT, ICD10, SNOMED, ago, woman


def _prone(inp: RuleInput) -> list[str]:
    return defs.hypocalcemia_prone(inp.chart, inp.thresholds)


def _inp(*resources, drafts=(), thresholds: Thresholds = Thresholds()) -> RuleInput:
    drafts = list(drafts)
    chart = build_chart(list(resources), NOW, hook="order-sign", draft_orders=drafts)
    return RuleInput(chart=chart, hook="order-sign", now=NOW, thresholds=thresholds)


def test_draft_label_shows_plain_dose_not_exponent() -> None:
    """DMAB-* cards name the draft: "60 mg", never "6E+1 mg" (chart fix in DraftOrder.label)."""
    inp = _inp(drafts=[draft(DMAB60, text="Prolia", dose_mg=60), draft(DMAB60, text="Prolia", dose_mg=120.0)])
    assert [d.label for d in inp.chart.triggers] == ["Prolia 60 mg", "Prolia 120 mg"]


def test_advanced_ckd_collects_each_kind_of_evidence() -> None:
    """D9 (DMAB-CKD-CALCIUM-MONITORING): eGFR < 30, CKD 4/5 condition, dialysis procedure ≤ 90 days."""
    inp = _inp(observation(EGFR, 29, EGFR_UNIT, ago(3)), condition("N18.5", ICD10, text="CKD stage 5"),
               procedure("71192002", SNOMED, ago(10), text="Peritoneal dialysis"))
    ckd = defs.advanced_ckd(inp.chart, inp.thresholds)
    assert ckd.present and ckd.dialysis and ckd.by_diagnosis
    assert ckd.egfr is not None and ckd.egfr.value == Decimal(29)
    words = ckd.words()
    assert words[0].startswith("eGFR 29") and any("Peritoneal dialysis" in w for w in words)
    inp = _inp(observation(EGFR, 30, EGFR_UNIT, ago(3)))
    assert not defs.advanced_ckd(inp.chart, inp.thresholds).present


def test_hypocalcemia_prone_sources() -> None:
    """D9 hypocalcemia-prone (DMAB-NO-CA-VITD-SUPPLEMENT level): low calcium within 365 days only."""
    assert _prone(_inp(observation(CALCIUM_SERUM, 8.4, "mg/dL", ago(365))))
    assert not _prone(_inp(observation(CALCIUM_SERUM, 8.4, "mg/dL", ago(366))))
    assert not _prone(_inp(condition("36976004", clinical="resolved")))
    assert _prone(_inp(condition("36976004")))


def test_reproductive_potential_reasons() -> None:
    """D8 (DMAB-PREGNANCY-STATUS-UNVERIFIED): reasons are named when it does not apply."""
    assert dm.reproductive_potential(_inp(woman(30))).potential
    assert dm.reproductive_potential(_inp(woman(51))).reason == "age 51"
    assert dm.reproductive_potential(_inp(patient(None, "female"))).reason.startswith("age unknown")
    assert dm.reproductive_potential(_inp(patient("1990-01-01", "male"))).reason == "male"
    r = dm.reproductive_potential(_inp(woman(40), procedure("236886002", SNOMED, "2015-01-01")))
    assert not r.potential and "non-reproductive" in r.reason


def test_catalog_parameters_default_and_configurable() -> None:
    """120-day dispense window, 10.5 mg/dL and 42 weeks are catalog values, overridable if configured."""
    inp = _inp()
    assert defs.param(inp, "medication_dispense_recent_days") == 120
    assert defs.param(inp, "calcium_high_mg_dl") == Decimal("10.5")
    assert defs.param(inp, "pregnancy_condition_weeks") == 42


def test_fit_and_cut_keep_summaries_under_140() -> None:
    assert len(tx.fit("x" * 200, "y" * 150)) == 140   # v2: at most 140 (§1.2 rule 2)
    assert tx.fit("short", "fallback") == "short"
    assert tx.cut("a" * 50) == "a" * 39 + "…"
