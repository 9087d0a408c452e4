"""Conditions, procedures and patient facts (RULES.md D2, D6, D7, D8)."""

from __future__ import annotations

import logging
import re
from datetime import date, datetime, timezone, tzinfo
from typing import Any, Mapping

from .dates import age_on, fhir_date
from .memo import Memo, remembered
from .model import ConditionFact, PatientFacts, ProcedureFact
from .valuesets import ValueSets

_ACTIVE = frozenset({"active", "recurrence", "relapse"})
_IGNORED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
_SUSPECTED = frozenset({"provisional", "differential", "unconfirmed"})
#: ICD-10-CM prefix for atypical femoral fracture (D3 text fallback table).
_AFF_ICD_PREFIX = "M84.75"
#: Paget's disease of bone (osteitis deformans) has no value set in codes.json: ICD-10-CM M88.*
#: and text, so that BP-DRUG-HOLIDAY-REVIEW can leave Paget's courses alone (RULES.md §4).
_PAGET_ICD_PREFIX = "M88"
_PAGET_TEXT = re.compile(r"osteitis deformans|\bpaget", re.IGNORECASE)
_NOT_BONE_PAGET = re.compile(r"breast|nipple|mammary|vulva|penis|perian|anal\b|skin|carcinoma", re.IGNORECASE)
_ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
#: Condition value sets recognised by text as well as by code (D6 "codes + text").
#: (Sets with text-pattern entries in codes.json, e.g. the A18 ones, are matched by those.)
_TEXT_CONDITION_SETS = frozenset({"osteonecrosis-of-jaw", "atypical-femoral-fracture", "giant-cell-tumor-of-bone",
                                  "hypercalcemia-of-malignancy"})

log = logging.getLogger(__name__)


def _status_code(concept: Any) -> str | None:
    if not isinstance(concept, dict):
        return None
    for c in concept.get("coding") or []:
        if isinstance(c, dict) and c.get("code"):
            return str(c["code"])
    return None


#: A4 / E1 (D6): codes that alone do not decide their set. ICD-10-CM E83.52 "Hypercalcemia" covers
#: hypercalcemia of any cause: such a Condition gets :data:`HYPERCALCEMIA_UNSPECIFIED` instead of
#: ``hypercalcemia-of-malignancy`` / ``oncology-bone-indication`` (the rules count it as HCM only
#: with an active malignancy or a malignancy reason on the order). D48.0 "Neoplasm of uncertain
#: behavior of bone" is a proxy: :data:`GCTB_PROXY` instead of ``giant-cell-tumor-of-bone``, but it
#: stays an oncology bone indication. The set's text pattern on the same Condition restores the set.
HYPERCALCEMIA_UNSPECIFIED = "hypercalcemia-unspecified"
GCTB_PROXY = "giant-cell-tumor-of-bone-proxy"
_NONSPECIFIC: dict[str, tuple[str, str, frozenset[str]]] = {
    "E83.52": ("hypercalcemia-of-malignancy", HYPERCALCEMIA_UNSPECIFIED,
               frozenset({"hypercalcemia-of-malignancy", "oncology-bone-indication"})),
    "D48.0": ("giant-cell-tumor-of-bone", GCTB_PROXY, frozenset({"giant-cell-tumor-of-bone"})),
}
#: Texts that name a malignancy without stating one (screening, family history, suspicion, a past
#: or ruled-out cancer): not an active malignancy for A4 (safe reading: E83.52 then stays
#: non-specific, so a 120 mg order is questioned and supplements are not silenced).
_NOT_A_MALIGNANCY = re.compile(r"\b(screening|family history|history of|fear of|suspected|suspicion|"
                               r"ruled out|rule out|no evidence of|negative for|risk of|at risk)\b",
                               re.IGNORECASE)
#: Texts in which "extraction", "bone graft" etc. are not dental (cataract extraction, an
#: orthopaedic graft): the invasive-dental-procedure text pattern does not count there.
_NOT_DENTAL = re.compile(r"\b(cataract|lens|foreign body|vacuum|forceps|breech|stone|menstrual|"
                         r"spine|spinal|femur|femoral|hip|knee|tibia|iliac|fracture)\b", re.IGNORECASE)


def nonspecific_code(system: Any, code: Any) -> str | None:
    """The A4/E1 key ("E83.52", "D48.0") of a coding that alone does not decide its set, else None."""
    if system != _ICD10 or not isinstance(code, str):
        return None
    key = code.strip().upper()
    return key if key in _NONSPECIFIC else None


def demote_nonspecific(system: Any, code: Any, names: set[str] | frozenset[str]) -> set[str]:
    """The value-set names of one coding after A4/E1 (see :data:`HYPERCALCEMIA_UNSPECIFIED`)."""
    out = set(names)
    key = nonspecific_code(system, code)
    if key is not None:
        specific, replacement, removed = _NONSPECIFIC[key]
        if specific in out:
            out -= removed
            out.add(replacement)
    return out


def _coded_names(codings: list[dict[str, Any]], vs: ValueSets, resource_type: str) -> set[str]:
    names: set[str] = set()
    for c in codings:
        system, code = c.get("system"), c.get("code")
        found: set[str] = set()
        for name in vs.names_for(system, code):
            concept = vs.entry(name, system, code)
            if concept is None or concept.resource in (None, resource_type):
                found.add(name)
        if resource_type == "Condition":
            found = demote_nonspecific(system, code, found)
        names |= found
        if system == _ICD10 and str(code or "").upper().startswith(_AFF_ICD_PREFIX):
            names.add("atypical-femoral-fracture")
    return names


def _text_names(texts: list[str], vs: ValueSets, resource_type: str) -> set[str]:
    """Sets named by the record's text: the codes.json pattern entries of condition/procedure sets
    (D6, D7) and, on Conditions, the D3 text fallbacks (ONJ, AFF, GCTB, HCM)."""
    names = set(vs.pattern_matches(texts))
    if "malignancy" in names and all(_NOT_A_MALIGNANCY.search(t) for t in texts
                                     if vs.pattern_matches([t], ("malignancy",))):
        names.discard("malignancy")
    if "invasive-dental-procedure" in names and any(_NOT_DENTAL.search(t) for t in texts):
        names.discard("invasive-dental-procedure")
    if resource_type == "Condition":
        names |= vs.text_matches(texts) & _TEXT_CONDITION_SETS
    return names


def _concept_names(code: Any, vs: ValueSets, resource_type: str) -> tuple[frozenset[str], bool, str]:
    """Value-set names of a Condition/Procedure code (codes, prefixes, then text), by_text, display."""
    if not isinstance(code, dict):
        return frozenset(), False, ""
    codings = [c for c in code.get("coding") or [] if isinstance(c, dict)]
    names = _coded_names(codings, vs, resource_type)
    texts = [code.get("text")] + [c.get("display") for c in codings]
    texts = [t for t in texts if isinstance(t, str)]
    by_text = False
    new = _text_names(texts, vs, resource_type) - names
    if new:
        by_text = not names
        names |= new
    if resource_type == "Condition":
        if any(c.get("system") == _ICD10 and str(c.get("code", "")).upper().startswith(_PAGET_ICD_PREFIX)
               for c in codings):
            names.add("paget-disease-of-bone")
        elif any(_PAGET_TEXT.search(t) and not _NOT_BONE_PAGET.search(t) for t in texts):
            by_text = by_text or not names
            names.add("paget-disease-of-bone")
    if names & {"giant-cell-tumor-of-bone", "hypercalcemia-of-malignancy", "bone-metastases",
                "multiple-myeloma", GCTB_PROXY}:
        names.add("oncology-bone-indication")
    display = (texts[0] if texts else "")[:40]
    return frozenset(names), by_text, display


def concept_names(code: Any, vs: ValueSets, resource_type: str,
                  memo: Memo | None = None) -> tuple[frozenset[str], bool, str]:
    """:func:`_concept_names`, once per distinct ``code`` content in ``memo`` (one request)."""
    return remembered(memo, f"concept-names:{resource_type}", code,
                      lambda: _concept_names(code, vs, resource_type))


def counts_as_condition(resource: Mapping[str, Any], vs: ValueSets, memo: Memo | None = None) -> bool:
    """``to_condition(resource, vs) is not None``, without building the fact (a cheap first look)."""
    return (_status_code(resource.get("verificationStatus")) not in _IGNORED_VERIFICATION
            and bool(concept_names(resource.get("code"), vs, "Condition", memo)[0]))


def to_condition(resource: Mapping[str, Any], vs: ValueSets, memo: Memo | None = None) -> ConditionFact | None:
    """A counting Condition in one of our value sets, else None (D2, D6). ``memo``: this
    request's readings (:mod:`.memo`)."""
    verification = _status_code(resource.get("verificationStatus"))
    if verification in _IGNORED_VERIFICATION:
        return None
    names, by_text, display = concept_names(resource.get("code"), vs, "Condition", memo)
    if not names:
        return None
    clinical = _status_code(resource.get("clinicalStatus"))
    abatement_period = resource.get("abatementPeriod")
    abatement = resource.get("abatementDateTime") or (
        abatement_period.get("end") if isinstance(abatement_period, dict) else None)
    has_abatement = any(k.startswith("abatement") for k in resource)
    active = clinical in _ACTIVE if clinical else not has_abatement
    onset_period = resource.get("onsetPeriod")
    onset = resource.get("onsetDateTime") or (
        onset_period.get("start") if isinstance(onset_period, dict) else None)
    return ConditionFact(id=str(resource.get("id") or ""), concepts=names, display=display,
                         active=active, suspected=verification in _SUSPECTED,
                         onset=fhir_date(onset), recorded=fhir_date(resource.get("recordedDate")),
                         abated=fhir_date(abatement), by_text=by_text)


def to_procedure(resource: Mapping[str, Any], vs: ValueSets, memo: Memo | None = None) -> ProcedureFact | None:
    """A completed Procedure in one of our value sets, else None (D2, D7). ``memo``: see
    :func:`to_condition`."""
    if resource.get("status") != "completed":
        return None
    names, _, display = concept_names(resource.get("code"), vs, "Procedure", memo)
    if not names:
        return None
    period = resource.get("performedPeriod") if isinstance(resource.get("performedPeriod"), dict) else {}
    when = resource.get("performedDateTime") or period.get("end") or period.get("start")
    return ProcedureFact(id=str(resource.get("id") or ""), concepts=names, display=display,
                         date=fhir_date(when))


def deceased_on(resource: Mapping[str, Any], today: date, zone: tzinfo = timezone.utc) -> bool:
    """D8 "Deceased" (A37): ``deceasedBoolean`` true, or a ``deceasedDateTime`` whose date (a
    time converted to ``zone`` first, D1; a partial date is the first day of its period) is on or
    before ``today``. False, absent, unreadable or a future date (a data error: logged) = not
    deceased."""
    if resource.get("deceasedBoolean") is True:
        return True
    value = resource.get("deceasedDateTime")
    if not isinstance(value, str):
        return False
    when = fhir_date(value)
    if "T" in value:
        try:
            instant = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            instant = None
        if instant is not None and instant.tzinfo is not None:
            when = instant.astimezone(zone).date()
    if when is None:
        return False
    if when > today:
        log.info("Patient.deceasedDateTime is after today: ignored (not deceased)")
        return False
    return True


def to_patient(resource: Mapping[str, Any] | None, today: date,
               zone: tzinfo = timezone.utc) -> PatientFacts:
    """Age on ``today``, sex and whether deceased; unknown (not deceased) when absent (D1, D8)."""
    if not resource:
        return PatientFacts(age=None, sex=None)
    birth = fhir_date(resource.get("birthDate"))
    gender = resource.get("gender")
    return PatientFacts(age=age_on(birth, today) if birth and birth <= today else None,
                        sex=gender if gender in ("female", "male") else None, birth_date=birth,
                        deceased=deceased_on(resource, today, zone))
