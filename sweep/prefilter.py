"""Could this patient be on an antiresorptive? A cheap, conservative test on raw NDJSON lines.

Every patient-view rule (DMAB-OVERDUE-TRANSITION, DMAB-DOSE-DUE, DMAB-ONCOLOGY-INTERVAL,
DMAB-HYPOCALCEMIA, BP-HYPOCALCEMIA, BP-DRUG-HOLIDAY-REVIEW, …) starts from a denosumab or
bisphosphonate dose history, so a patient none of whose medication records the chart classifies
as one (RULES.md D3) can have no finding: most patients need no chart at all.

The test runs on the raw bytes of each medication record (and Medication) line, and is a
necessary condition of D3's antiresorptive classification, never a guess:

* **codes**: every code of ``codes.json`` that the chart's own classifier
  (:func:`cds_service.chart.medications.classify`) turns into denosumab or a bisphosphonate.
  Numeric codes (RxNorm) are compared with every run of digits of the line; any other code is
  searched as a substring of the lower-cased line (covers exact and prefix matching);
* **text**: the D3 name patterns of denosumab and of every bisphosphonate agent, plus the
  ``codes.json`` text-pattern entries of the antiresorptive sets: any match contains one of the
  literal runs of its alternative (found by parsing the pattern), so the line must contain one,
  lower-cased. A pattern whose alternative has no such run makes every line a candidate;
* a line with a ``\\u`` escape (a name could hide behind it) is a candidate;
* both tests are one RE2 search (``google-re2``: a DFA, linear in the line, about 1 µs for a
  typical record instead of one substring search per name): the literals, or a code standing
  as a whole run of digits (``(^|[^0-9])code([^0-9]|$)``, the same answer as comparing the runs);
* a ``medicationReference`` to a Medication that is not in the export, or whose own line passes,
  makes the patient a candidate (resolved by the engine, :mod:`sweep.local`).

It looks at the whole line, not only the elements D3 reads, so it can only say yes too often.
``tests/test_sweep_prefilter.py`` checks it against the classifier over every code and display of
``codes.json`` and over texts generated from every D3 pattern.
"""

from __future__ import annotations

import re
from typing import Any

import re2

try:  # Python ≥ 3.11
    import re._parser as sre_parse  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - older interpreters
    import sre_parse  # type: ignore[no-redef]

from cds_service.chart import BISPHOSPHONATE, DENOSUMAB, ValueSets, default_value_sets
from cds_service.chart import medications
from cds_service.chart.valuesets import TEXT_PATTERNS

ANTIRESORPTIVE = (DENOSUMAB, BISPHOSPHONATE)
#: D3 text-fallback keys (``TEXT_PATTERNS``) that name an antiresorptive agent.
TEXT_KEYS = ("denosumab", "alendronate", "risedronate", "ibandronate", "zoledronic-acid",
             "pamidronate", "etidronate")
#: ``codes.json`` set names whose text-pattern entries may name an antiresorptive.
_SET_PREFIXES = ("denosumab", "bisphosphonate", "alendronate", "risedronate", "ibandronate",
                 "zoledronic", "pamidronate", "etidronate")
_TEXT_PATTERN_SYSTEM = "urn:bone-safety-cds:text-pattern"
_MIN_ANCHOR = 3


def _needed(items: list) -> list[str] | None:
    """Literals one of which every match of the parsed sequence ``items`` contains; None when
    there are none of at least three characters. Zero-width asserts (``\\b``) are transparent;
    a repeat, a class or any other element ends a literal run."""
    best, run = "", []
    groups: list[list] = []
    for op, arg in items:
        if op is sre_parse.LITERAL:
            run.append(chr(arg))
            continue
        if op is sre_parse.AT:
            continue
        best, run = max(best, "".join(run), key=len), []
        if op is sre_parse.SUBPATTERN:
            groups.append(list(arg[-1]))
        elif op is sre_parse.BRANCH:
            groups.append([(op, arg)])
    best = max(best, "".join(run), key=len)
    if len(best) >= _MIN_ANCHOR:
        return [best.lower()]
    for group in groups:           # a mandatory group whose every alternative is anchored
        if len(group) == 1 and group[0][0] is sre_parse.BRANCH:
            found = [_needed(list(alt)) for alt in group[0][1][1]]
            if all(f is not None for f in found):
                return [a for f in found for a in f]  # type: ignore[union-attr]
        else:
            inner = _needed(group)
            if inner is not None:
                return inner
    return None


def anchors(pattern: str) -> list[str] | None:
    """Literals (lower case) one of which every match of ``pattern`` contains; None when some
    alternative has none of at least three characters."""
    return _needed(list(sre_parse.parse(pattern)))


def _classifies_as_antiresorptive(concept: dict, vs: ValueSets) -> bool:
    record = {"resourceType": "MedicationRequest", "status": "active", "intent": "order",
              "medicationCodeableConcept": concept}
    drug = medications.classify(record, vs, {})
    return drug is not None and drug.drug_class in ANTIRESORPTIVE


class Prefilter:
    """``hit(line)``: True when a medication record (or Medication) line might be an antiresorptive."""

    def __init__(self, vs: ValueSets | None = None) -> None:
        vs = vs or default_value_sets()
        numeric: set[bytes] = set()
        literals: set[str] = set()
        patterns = [TEXT_PATTERNS[k] for k in TEXT_KEYS if k in TEXT_PATTERNS]
        for name, concepts in vs.sets.items():
            for c in concepts:
                if c.system == _TEXT_PATTERN_SYSTEM:
                    if name.startswith(_SET_PREFIXES):
                        patterns.append(c.code)
                elif _classifies_as_antiresorptive({"coding": [{"system": c.system, "code": c.code}]}, vs):
                    code = c.code.strip()
                    if code.isdigit() and getattr(c, "match", None) is None:
                        numeric.add(code.encode())
                    else:
                        literals.add(code.lower())
        self.always = False
        for p in patterns:
            found = anchors(p)
            if found is None:
                self.always = True     # a pattern we cannot anchor: every line is a candidate
            else:
                literals.update(found)
        self.numeric = frozenset(numeric)
        self.literals = tuple(sorted(a.encode() for a in literals))
        self._search = _compile(self.literals, self.numeric)

    def hit(self, line: bytes) -> bool:
        """The line could be classified as denosumab or a bisphosphonate (see the module doc)."""
        if self.always or b"\\u" in line:
            return True
        # lower-casing keeps every ASCII digit and every boundary of a run of digits (no character
        # lower-cases to a digit, "replace" puts a non-digit for a non-digit): one search does both
        low = line.lower() if line.isascii() else line.decode("utf-8", "replace").lower().encode()
        return self._search(low) is not None


def _compile(literals: tuple[bytes, ...], numeric: frozenset[bytes]) -> Any:
    """One RE2 search for "a literal occurs, or a code is a whole run of digits" (None: never)."""
    alternatives = [re.escape(a) for a in literals]
    if numeric:
        alternatives.append(rb"(?:^|[^0-9])(?:" + b"|".join(sorted(numeric)) + rb")(?:[^0-9]|$)")
    if not alternatives:
        return lambda _line: None
    options = re2.Options()
    options.encoding = re2.Options.Encoding.LATIN1   # bytes as bytes: any byte is a non-digit but 0-9
    options.never_capture = True
    options.max_mem = 64 << 20   # room for the DFA of ~150 alternatives
    return re2.compile(b"|".join(alternatives), options).search


__all__ = ["Prefilter", "TEXT_KEYS", "anchors"]
