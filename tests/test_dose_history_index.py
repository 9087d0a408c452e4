"""The indexed dose history (issue 11 §3) against simple reference implementations of D4, on
seeded random histories: the same dose events and, per denosumab dose, the same records behind
it (records of one class less than 4 days apart are one dose, dated by the most confident)."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from cards.rules._dmab_dosing_common import denosumab_doses
from cds_service.chart import BISPHOSPHONATE, DENOSUMAB, Chart, Drug, MedicationRecord, PatientFacts
from tests.factory import NOW

TODAY = NOW.date()
DEDUPE_DAYS = 4   # D10 dose_dedupe_days
TYPES = ("MedicationAdministration", "MedicationDispense", "MedicationStatement", "MedicationRequest")
STATUSES = ("completed", "in-progress", "active", "stopped", "on-hold")
CONFIDENCE = {"MedicationAdministration": 4, "MedicationDispense": 3, "MedicationStatement": 2,
              "MedicationRequest": 1}
DRUGS = (Drug(DENOSUMAB, "denosumab", "Prolia", "60mg", "sc"), Drug(DENOSUMAB, "denosumab", "Xgeva", "120mg", "sc"),
         Drug(DENOSUMAB, "denosumab", "denosumab", None, "sc"),
         Drug(BISPHOSPHONATE, "zoledronic-acid", "Reclast", "5mg", "iv"),
         Drug(BISPHOSPHONATE, "alendronate", "alendronate", None, "oral"))


def _history(rng: random.Random, n: int, span: int) -> tuple[MedicationRecord, ...]:
    out = []
    for i in range(n):
        when = None if rng.random() < 0.05 else TODAY - timedelta(days=rng.randint(0, span))
        out.append(MedicationRecord(resource_type=rng.choice(TYPES), id=f"r{i}", status=rng.choice(STATUSES),
                                    drug=rng.choice(DRUGS), date=when))
    return tuple(out)


def _is_dose(r: MedicationRecord) -> bool:
    return r.date is not None and (
        (r.resource_type == "MedicationAdministration" and r.status in ("completed", "in-progress"))
        or (r.resource_type == "MedicationDispense" and r.status == "completed")
        or (r.resource_type == "MedicationStatement" and r.status in ("active", "completed"))
        or (r.resource_type == "MedicationRequest" and r.status == "completed"))


def _cls(r: MedicationRecord) -> str:
    """D4 drug class: denosumab, else the bisphosphonate ingredient."""
    return r.drug.drug_class if r.drug.drug_class == DENOSUMAB else r.drug.agent


def _counts(r: MedicationRecord, records) -> bool:
    """A dose record after A1: a statement of an injectable (every drug here but alendronate)
    only when its class has no administration, dispense or completed order."""
    if not _is_dose(r):
        return False
    if r.resource_type != "MedicationStatement" or r.drug.agent == "alendronate":
        return True
    return not any(_cls(o) == _cls(r) and o.resource_type != "MedicationStatement" and o.date is not None
                   and _is_dose(o) for o in records)


def reference_events(records) -> list[tuple[date, str, str]]:
    """D4 de-duplication, written plainly: per class, oldest first, a record less than 4 days
    after the current dose joins it (and dates it when more confident), else starts a new dose."""
    out = []
    for cls in sorted({_cls(r) for r in records}):
        doses: list[MedicationRecord] = []
        for r in sorted((r for r in records if _cls(r) == cls and _counts(r, records)),
                        key=lambda r: (r.date, -CONFIDENCE[r.resource_type])):
            if doses and (r.date - doses[-1].date).days < DEDUPE_DAYS:
                if CONFIDENCE[r.resource_type] > CONFIDENCE[doses[-1].resource_type]:
                    doses[-1] = r
                continue
            doses.append(r)
        out += [(d.date, d.drug.drug_class, d.ref) for d in doses]
    return sorted(out)


def reference_clusters(chart: Chart) -> list[tuple[str, ...]]:
    """The records behind each denosumab dose, by scanning every record (the old quadratic way)."""
    records = [r for r in chart.medications if r.drug.drug_class == DENOSUMAB
               and _counts(r, chart.medications)]
    out = []
    for e in chart.dose_events(DENOSUMAB):
        cluster = [r for r in records if abs((r.date - e.date).days) < DEDUPE_DAYS]
        cluster.sort(key=lambda r: -CONFIDENCE[r.resource_type])
        out.append(tuple(r.ref for r in cluster))
    return out


@pytest.mark.parametrize("seed", range(40))
def test_indexed_dose_history_matches_the_references(seed: int) -> None:
    rng = random.Random(seed)
    n, span = rng.choice(((5, 30), (40, 60), (200, 400), (300, 3000)))
    chart = Chart(now=NOW, today=TODAY, patient=PatientFacts(age=70, sex="female"),
                  medications=_history(rng, n, span))
    events = chart.dose_events()
    got = sorted((e.date, e.drug.drug_class, e.record.ref) for e in events)
    assert got == reference_events(chart.medications)
    assert [e.date for e in events] == sorted(e.date for e in events)
    doses = denosumab_doses(chart)
    assert [tuple(r.ref for r in d.records) for d in doses] == reference_clusters(chart)
    for d in doses:   # the dose's own record is always behind it; regimen from the cluster (D3)
        assert d.event.record in d.records
        assert d.regimen == (d.event.drug.regimen or next((r.drug.regimen for r in d.records if r.drug.regimen), None))
    for cls in (DENOSUMAB, BISPHOSPHONATE):
        dates = chart.exposure_dates(cls)
        assert dates == sorted(set(dates)) and all(x <= TODAY for x in dates)
        for gap in (0, 3, 30, 365):
            assert chart.is_initiation([cls], gap) == (not any(0 <= (TODAY - x).days <= gap for x in dates))
