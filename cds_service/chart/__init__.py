"""The pure clinical model: FHIR R4 resources → a patient's clinical facts (RULES.md §2).

No I/O and no web framework here: rules in ``cards`` import this package and nothing else of
``cds_service`` (a test enforces it).
"""

from . import display
from .chart import MEDICATION_TYPES, OUT_OF_TIME, CalciumLimits, Chart, build_chart, months_since
from .dates import add_months, clock_zone, days_between, fhir_date, is_future, today_in, today_utc
from .labs import CalciumJudgement, LabDay, below
from .model import (BISPHOSPHONATE, CALCIMIMETIC, DENOSUMAB, SUPPLEMENT, ConditionFact,
                    DoseEvent, DraftOrder, Drug, Lab, MedicationRecord, PatientFacts,
                    ProcedureFact, Skipped, Timing)
from .valuesets import ValueSetError, ValueSets, default_value_sets, load_value_sets

__all__ = [
    "display", "MEDICATION_TYPES", "OUT_OF_TIME", "CalciumLimits", "Chart", "build_chart", "months_since", "add_months",
    "days_between", "fhir_date", "today_utc", "today_in", "is_future", "clock_zone", "CalciumJudgement", "LabDay", "below", "BISPHOSPHONATE",
    "CALCIMIMETIC", "DENOSUMAB", "SUPPLEMENT", "ConditionFact", "DoseEvent", "DraftOrder", "Drug",
    "Lab", "MedicationRecord", "PatientFacts", "ProcedureFact", "Skipped", "Timing",
    "ValueSetError", "ValueSets", "default_value_sets", "load_value_sets",
]
