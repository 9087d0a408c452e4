"""BP-RENAL-DOSE-ADJUST (RULES.md §4): zoledronic acid 4 mg with eGFR 30–60 needs a lower dose."""

from __future__ import annotations

import pytest

from tests.factory import ICD10, condition, draft
from tests.rules._bp_helpers import (
    ZOL4,
    ZOL4_BAG,
    ZOL5,
    ZOL_IN,
    ago,
    calcium,
    card,
    egfr,
    ids,
    override_codes,
    run,
)

RID = "BP-RENAL-DOSE-ADJUST"
MYELOMA = condition("C90.00", ICD10, onset="2025-06-01")


def _labs(value, days=10, **kw):
    return [egfr(value, ago(days), **kw), calcium(9.3, ago(days)), MYELOMA]


def test_bp_dose_adjust_egfr_45_suggests_3_3_mg() -> None:
    """BP-RENAL-DOSE-ADJUST: eGFR 45 → 3.3 mg; suggestion is a real MedicationRequest."""
    d = draft(ZOL4, dose_mg=4, period=(4, "wk"))
    c = card(run(_labs(45), [d]), RID)
    assert c is not None and c["indicator"] == "warning"
    assert c["summary"] == f"eGFR 45 on {ago(10)}: zoledronic acid (oncology) dose should be 3.3 mg, not 4 mg"
    assert override_codes(c) == ["crcl-above-60", "specialist-decision"]
    assert c["selectionBehavior"] == "at-most-one"
    res = c["suggestions"][0]["actions"][0]["resource"]
    assert res["resourceType"] == "MedicationRequest"
    assert (res["status"], res["intent"]) == ("draft", "order")
    assert res["subject"] == {"reference": "Patient/pat-1"}
    assert res["medicationCodeableConcept"]["coding"][0]["code"] == ZOL4
    dosage = res["dosageInstruction"][0]
    assert dosage["doseAndRate"][0]["doseQuantity"] == {
        "value": 3.3,
        "unit": "mg",
        "system": "http://unitsofmeasure.org",
        "code": "mg",
    }
    assert dosage["route"]["coding"][0]["code"] == "47625008"
    assert dosage["timing"]["repeat"]["period"] == 4  # the draft's schedule is kept
    # v2 (A10): no creatinine → no CrCl, the eGFR was used and the card says why
    assert "could not be computed (no serum creatinine)" in c["detail"] and "Zometa" in c["source"]["label"]
    # v2 (A32): the second choice removes the draft
    delete = c["suggestions"][1]["actions"][0]
    assert delete == {"type": "delete", "description": "Remove the draft zoledronic acid order",
                      "resourceId": f"MedicationRequest/{d['id']}"}


@pytest.mark.parametrize(
    "value, dose",
    [(61, None), (60, "3.5"), (50, "3.5"), (49, "3.3"), (40, "3.3"), (39, "3.0"), (30, "3.0"), (29, None)],
)
def test_bp_dose_adjust_bands_of_the_label_table(value, dose) -> None:
    """BP-RENAL-DOSE-ADJUST: 50–60 → 3.5; 40–49 → 3.3; 30–39 → 3.0; outside 30–60 no card."""
    c = card(run(_labs(value), [draft(ZOL4, dose_mg=4)]), RID)
    if dose is None:
        assert c is None
    else:
        assert c is not None and f"should be {dose} mg, not 4 mg" in c["summary"]


def test_bp_dose_adjust_below_30_is_the_contraindication_rule() -> None:
    """BP-RENAL-DOSE-ADJUST: eGFR 29 → BP-RENAL-CONTRAINDICATION instead."""
    got = ids(run(_labs(29), [draft(ZOL4, dose_mg=4)]))
    assert RID not in got and "BP-RENAL-CONTRAINDICATION" in got


def test_bp_dose_adjust_dose_unspecified_fires_reduced_dose_does_not() -> None:
    """BP-RENAL-DOSE-ADJUST: dose 4 mg or unspecified fires; an already reduced dose does not."""
    assert RID in ids(run(_labs(55), [draft(ZOL4)]))
    assert RID in ids(run(_labs(55), [draft(ZOL4_BAG)]))
    assert RID not in ids(run(_labs(55), [draft(ZOL4, dose_mg=3.5)]))
    assert RID not in ids(run(_labs(35), [draft(ZOL4, dose_mg=3)]))


def test_bp_dose_adjust_only_for_the_oncology_4_mg_regimen() -> None:
    """BP-RENAL-DOSE-ADJUST: zoledronic acid 5 mg (yearly) is not dose-adjusted."""
    assert RID not in ids(run(_labs(45), [draft(ZOL5)]))
    # ingredient without strength + myeloma: read as the 4 mg oncology regimen
    c = card(run(_labs(45), [draft(ZOL_IN)]), RID)
    assert c is not None and "strength not stated" in c["detail"]


def test_bp_dose_adjust_stale_missing_error_and_comparator_egfr() -> None:
    """BP-RENAL-DOSE-ADJUST: only a usable eGFR within 30 days counts."""
    assert RID not in ids(run(_labs(45, days=31), [draft(ZOL4, dose_mg=4)]))
    assert RID in ids(run(_labs(45, days=30), [draft(ZOL4, dose_mg=4)]))
    assert RID not in ids(run([calcium(9.3, ago(3)), MYELOMA], [draft(ZOL4, dose_mg=4)]))
    assert RID not in ids(run(_labs(45, status="entered-in-error"), [draft(ZOL4, dose_mg=4)]))
    assert RID not in ids(run(_labs(60, comparator=">"), [draft(ZOL4, dose_mg=4)]))
    assert RID in ids(run(_labs(45, unit="mL/min/1.73 m2", ucum=False), [draft(ZOL4, dose_mg=4)]))


def test_bp_dose_adjust_hooks() -> None:
    """BP-RENAL-DOSE-ADJUST: order-select (selected only) and order-sign; never patient-view."""
    d = draft(ZOL4, dose_mg=4)
    assert RID in ids(run(_labs(45), [d], hook="order-select"))
    assert RID not in ids(run(_labs(45), [d], hook="order-select", selections=[]))
    assert RID not in ids(run(_labs(45), [], hook="patient-view"))
