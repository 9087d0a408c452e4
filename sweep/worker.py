"""What one sweep process keeps for its lifetime: the prefilter, warm validators, an element memo.

A sweep process evaluates thousands of patients with the same code, and their records repeat
the same element values (a drug's ``medicationCodeableConcept``, a lab's ``code``, ``status``,
``intent``, units, dates): :class:`SweepVerdicts` keeps the R4B verdict of each distinct element
value for the process's lifetime (the per-request memo of :mod:`cds_service.chart.projection`,
with a longer life), so each is validated once per process, not once per patient. The verdict
is the same function of the same value (the memo key is the value's ``repr``, faithful for
decoded JSON): results are unchanged. The whole-resource digest of the service's
:class:`~cds_service.chart.verdicts.VerdictCache` is not computed: in an export every resource
is seen once, it could never hit.

:func:`prepare` does the one-time work of a process before it reads anything (the validators,
the value sets, the prefilter, the rule modules and one evaluation of a built-in synthetic
patient, whose result is discarded); the local engine calls it before forking its workers, so
they start warm, as the service prepares before gunicorn forks.
"""

from __future__ import annotations

import gc
import time
from datetime import timedelta
from typing import Any

from cards.thresholds import DEFAULT_THRESHOLDS, Thresholds
from cds_service.chart.verdicts import VerdictCache, validate_r4b

from .prefilter import Prefilter

#: Element verdicts kept per process before the memo starts afresh (~150 bytes each: a few MB).
MEMO_ENTRIES = 100_000

_prefilter: Prefilter | None = None
_verdicts: "SweepVerdicts | None" = None
_prepared = False


class SweepVerdicts(VerdictCache):
    """:func:`validate_r4b` with one element memo for the process's lifetime (bounded: cleared
    when it holds :data:`MEMO_ENTRIES`), instead of the chart's per-request one."""

    def __init__(self, entries: int = MEMO_ENTRIES) -> None:
        super().__init__(size=0)
        self.entries = entries
        self.memo: dict[Any, str] = {}

    def validate(self, resource: dict[str, Any], *, draft: bool = False,
                 memo: Any = None) -> tuple[dict[str, Any] | None, str]:
        if len(self.memo) >= self.entries:
            self.memo.clear()
        return validate_r4b(resource, draft=draft, memo=self.memo)

    def clear(self) -> None:
        self.memo.clear()

    def __len__(self) -> int:
        return len(self.memo)


def prefilter() -> Prefilter:
    """This process's prefilter (built once)."""
    global _prefilter
    if _prefilter is None:
        _prefilter = Prefilter()
    return _prefilter


def verdicts() -> SweepVerdicts:
    """This process's element memo."""
    global _verdicts
    if _verdicts is None:
        _verdicts = SweepVerdicts()
    return _verdicts


def prepare(thresholds: Thresholds = DEFAULT_THRESHOLDS) -> float:
    """The one-time work of a sweep process (idempotent); the seconds it took: one synthetic
    patient read and swept the way an export's are (every lazy import and cache filled)."""
    global _prepared
    if _prepared:
        return 0.0
    started = time.perf_counter()
    import tempfile
    from datetime import datetime, timezone
    from pathlib import Path
    from zoneinfo import ZoneInfo

    import orjson

    from cds_service.chart import default_value_sets, projection

    from .partitions import LINES, split_file, sweep_partition

    default_value_sets()
    projection.prepare()
    prefilter()
    now = datetime(2026, 1, 31, 12, tzinfo=timezone.utc)
    with tempfile.TemporaryDirectory(prefix="bone-cds-warm-up-") as tmp:   # the read path too
        path = Path(tmp) / "warm-up.ndjson"
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in _synthetic(now)))
        blocks = [b for kind, _, b in split_file(0, path, path.name, 1, now.date(), ZoneInfo(thresholds.clock_time_zone)) if kind == LINES]
    sweep_partition(blocks, lambda _id: None, now, thresholds)
    gc.collect()
    gc.freeze()   # what is loaded now stays: out of the collector's scans, and of a fork's copies
    _prepared = True
    return time.perf_counter() - started


def _synthetic(now: Any) -> list[dict[str, Any]]:
    """A synthetic patient on denosumab 60 mg (a dose 8 months before ``now``), with a calcium,
    an eGFR and a condition: every step of an evaluation runs once, down to a card's text."""
    ref = {"reference": "Patient/warm-up"}
    day = (now - timedelta(days=240)).date().isoformat()
    lab = (now - timedelta(days=30)).date().isoformat()
    return [
        {"resourceType": "Patient", "id": "warm-up", "gender": "female", "birthDate": "1950-01-01"},
        {"resourceType": "MedicationAdministration", "id": "wa1", "status": "completed", "subject": ref,
         "effectiveDateTime": day,
         "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                   "code": "993449"}], "text": "denosumab 60 MG/ML Prefilled Syringe"},
         "dosage": {"dose": {"value": 60, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}},
        {"resourceType": "Observation", "id": "wo1", "status": "final", "subject": ref, "effectiveDateTime": lab,
         "code": {"coding": [{"system": "http://loinc.org", "code": "17861-6"}]},
         "valueQuantity": {"value": 9.1, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}},
        {"resourceType": "Observation", "id": "wo2", "status": "final", "subject": ref, "effectiveDateTime": lab,
         "code": {"coding": [{"system": "http://loinc.org", "code": "62238-1"}]},
         "valueQuantity": {"value": 55, "unit": "mL/min/{1.73_m2}", "system": "http://unitsofmeasure.org",
                           "code": "mL/min/{1.73_m2}"}},
        {"resourceType": "Condition", "id": "wc1", "subject": ref,
         "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                        "code": "active"}]},
         "code": {"coding": [{"system": "http://snomed.info/sct", "code": "64859006"}]}},
    ]


__all__ = ["MEMO_ENTRIES", "SweepVerdicts", "prefilter", "prepare", "verdicts"]
