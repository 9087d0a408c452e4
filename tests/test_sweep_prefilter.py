"""The prefilter never drops a patient the chart would see as on an antiresorptive.

Checked against the chart's own classifier (RULES.md D3, ``medications.classify``): every code and
every display of ``codes.json``, in each place a record can carry it, and texts generated from
every D3 name pattern. Whatever the classifier calls denosumab or a bisphosphonate, the line
prefilter must pass.
"""

from __future__ import annotations

import json
import re

import orjson
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from cds_service.chart import BISPHOSPHONATE, DENOSUMAB, default_value_sets, medications
from cds_service.chart.valuesets import TEXT_PATTERNS
from sweep.prefilter import Prefilter, anchors

VS = default_value_sets()
PF = Prefilter(VS)


def _antiresorptive(record: dict, meds: dict | None = None) -> bool:
    drug = medications.classify(record, VS, meds or {})
    return drug is not None and drug.drug_class in (DENOSUMAB, BISPHOSPHONATE)


def _shapes(concept: dict) -> list[tuple[dict, dict]]:
    """The same concept as a MedicationRequest coding, a contained Medication, a referenced one."""
    base = {"resourceType": "MedicationAdministration", "id": "a1", "status": "completed",
            "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-01-01"}
    return [
        ({**base, "medicationCodeableConcept": concept}, {}),
        ({**base, "contained": [{"resourceType": "Medication", "id": "m", "code": concept}],
          "medicationReference": {"reference": "#m"}}, {}),
    ]


def test_every_antiresorptive_code_and_display_of_codes_json_passes() -> None:
    checked = 0
    for name, concepts in VS.sets.items():
        for c in concepts:
            for concept in ({"coding": [{"system": c.system, "code": c.code}]},
                            {"coding": [{"system": c.system, "code": c.code, "display": c.display}]},
                            {"text": c.display}, {"coding": [{"display": c.display}]}):
                for record, meds in _shapes(concept):
                    if _antiresorptive(record, meds):
                        checked += 1
                        assert PF.hit(orjson.dumps(record)), (name, c.code, concept)
                        assert PF.hit(json.dumps(record, indent=1).encode()), (name, c.code)
    assert checked > 300


def test_a_referenced_medication_line_passes_by_itself() -> None:
    prolia = next(c for c in VS.codes("denosumab-60mg"))
    med = {"resourceType": "Medication", "id": "m1", "code": {"coding": [{"system": prolia.system,
                                                                          "code": prolia.code}]}}
    assert PF.hit(orjson.dumps(med))


#: Every D3 name pattern: the built-in fallbacks and every codes.json text-pattern entry.
PATTERNS = sorted({**{f"builtin:{k}": v for k, v in TEXT_PATTERNS.items()},
                   **{f"{name}:{c.code}": c.code for name, cs in VS.sets.items() for c in cs
                      if c.system == "urn:bone-safety-cds:text-pattern"}}.items())


def test_the_denosumab_names_of_codes_json_are_among_the_patterns() -> None:
    assert any(key.startswith("denosumab-text:") for key, _ in PATTERNS)


@pytest.mark.parametrize("key,pattern", PATTERNS, ids=[k for k, _ in PATTERNS])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_texts_matching_any_d3_pattern_pass_when_the_chart_calls_them_antiresorptive(key: str, pattern: str,
                                                                                    data) -> None:
    text = data.draw(st.from_regex(pattern, fullmatch=False)
                     .filter(lambda t: "\n" not in t and len(t) < 200))
    upper = data.draw(st.booleans())
    text = text.upper() if upper else text
    for record, meds in _shapes({"text": text}):
        if _antiresorptive(record, meds):
            assert PF.hit(orjson.dumps(record)), (key, text)
            assert PF.hit(json.dumps(record).encode()), (key, text)   # \\u escapes for non-ASCII


def test_most_medication_records_are_not_candidates() -> None:
    metformin = {"resourceType": "MedicationRequest", "id": "m", "status": "active", "intent": "order",
                 "subject": {"reference": "Patient/p"}, "authoredOn": "2026-01-01",
                 "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                           "code": "860975", "display": "metformin 500 MG"}]}}
    assert not PF.hit(orjson.dumps(metformin))
    assert PF.hit(orjson.dumps({**metformin, "note": [{"text": "was on PROLIA"}]}))   # anywhere: superset


def test_an_escaped_name_is_a_candidate() -> None:
    assert PF.hit(b'{"medicationCodeableConcept": {"text": "d\\u0065nosumab"}}')


def test_anchors_of_the_antiresorptive_patterns() -> None:
    assert anchors(TEXT_PATTERNS["alendronate"]) == ["alendron", "fosamax", "binosto"]
    assert anchors(r"\bprolia\b") == ["prolia"]
    assert anchors(r"\bcalcium (carbonate|citrate)\b") == ["calcium "]
    assert anchors(r"(zole|pami)dron") == ["dron"]
    assert anchors(r"a.b") is None
    assert not PF.always


def _by_runs(line: bytes) -> bool:
    """The prefilter's answer spelt out: a literal in the lower-cased line, or a code equal to a
    whole run of ASCII digits (what the single RE2 search must give)."""
    if b"\\u" in line:
        return True
    low = line.lower() if line.isascii() else line.decode("utf-8", "replace").lower().encode()
    return any(a in low for a in PF.literals) or not PF.numeric.isdisjoint(re.findall(rb"[0-9]+", line))


_CODES = sorted(PF.numeric)
_PIECES = st.one_of(st.sampled_from(_CODES), st.sampled_from(PF.literals),
                    st.sampled_from([b"0", b"9", b"1", b"-", b" ", b'"', b"\xc3\xa9", b"\xff", b"\xe2\x84\xaa",
                                     b"DENOSUMAB", b"Prolia", b"metformin", b"2026-01-01"]),
                    st.binary(max_size=6))


@settings(max_examples=400, deadline=None)
@given(pieces=st.lists(_PIECES, max_size=12))
def test_one_search_gives_the_answer_of_literals_and_runs_of_digits(pieces: list[bytes]) -> None:
    line = b"".join(pieces)
    assert PF.hit(line) == _by_runs(line), line


def test_a_code_inside_a_longer_number_is_not_a_hit() -> None:
    code = _CODES[0]
    assert PF.hit(b'"code":"' + code + b'"') and PF.hit(code) and PF.hit(b"x" + code + b"\xff")
    assert not PF.hit(b'"code":"9' + code + b'"') and not PF.hit(code + b"0")
