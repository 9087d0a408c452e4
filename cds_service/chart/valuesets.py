"""Value sets (``cds_service/data/codes.json``, copied from ``shared/clinical/codes.json``) and the
text fallbacks of RULES.md D3, loaded and validated once at start-up.

A malformed file stops start-up with :class:`ValueSetError` naming the file and the entry.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "data" / "codes.json"

#: Value sets the rules depend on: a file without them is not a usable configuration.
REQUIRED_SETS: tuple[str, ...] = (
    "denosumab-60mg", "denosumab-120mg", "denosumab-ingredient", "denosumab-any",
    "alendronate", "risedronate", "ibandronate-oral", "ibandronate-iv", "zoledronic-acid-5mg",
    "zoledronic-acid-4mg", "zoledronic-acid", "pamidronate", "bisphosphonate-oral",
    "bisphosphonate-iv", "bisphosphonate-any", "calcimimetic", "calcium-supplement",
    "vitamin-d-supplement", "active-vitamin-d", "calcium-vitamin-d-supplement",
    "calcium-serum", "calcium-corrected", "calcium-ionized", "albumin", "egfr", "creatinine",
    "vitamin-d-25oh", "magnesium", "phosphate", "pth-intact", "pregnancy-test",
    "pregnancy-status", "pregnancy-status-pregnant", "pregnancy-status-not-pregnant",
    "result-positive", "result-negative", "ckd-stage-4-5", "end-stage-renal-disease", "dialysis",
    "hypoparathyroidism", "hypocalcemia", "pregnancy", "non-reproductive-status",
    "osteogenesis-imperfecta", "bone-metastases", "multiple-myeloma", "giant-cell-tumor-of-bone",
    "hypercalcemia-of-malignancy", "oncology-bone-indication", "osteoporosis",
    "osteonecrosis-of-jaw", "atypical-femoral-fracture", "active-infection", "dental-evaluation",
    "dental-referral", "invasive-dental-procedure", "creatinine-serum", "body-weight",
    # D3 text fallbacks with brands (A8, A25): the patterns live in codes.json only
    "denosumab-text", "denosumab-60mg-brand-text", "denosumab-120mg-brand-text",
    "calcium-supplement-text", "vitamin-d-supplement-text",
)

#: Lab and pregnancy value sets whose LOINC codes the Observation prefetch asks for (§1).
#: ``calcium-serum`` holds the whole-blood total calcium 49765-1 (A36); ``body-weight`` 29463-7
#: is asked for the Cockcroft-Gault CrCl (A10); ``creatinine-serum`` is a subset of
#: ``creatinine`` (its codes are asked for through it).
OBSERVATION_SETS: tuple[str, ...] = (
    "calcium-serum", "calcium-corrected", "calcium-ionized", "albumin", "egfr", "creatinine",
    "vitamin-d-25oh", "magnesium", "phosphate", "pth-intact", "pregnancy-test", "pregnancy-status",
    "body-weight",
)

#: Text fallbacks (RULES.md D3), matched case-insensitively on ``text`` and ``coding.display``.
TEXT_PATTERNS: dict[str, str] = {
    "alendronate": r"alendron|fosamax|binosto",
    "risedronate": r"risedron|actonel|atelvia",
    "ibandronate": r"ibandron|boniva",
    "zoledronic-acid": r"zoledron|reclast|zometa|aclasta",
    "pamidronate": r"pamidron|aredia",
    "etidronate": r"etidron|didronel",
    "calcimimetic": r"cinacalcet|sensipar|etelcalcetide|parsabiv|evocalcet",
    "osteonecrosis-of-jaw": r"osteonecrosis of (the )?jaw|\bmronj\b|\bbronj\b|\bonj\b",
    "atypical-femoral-fracture": r"atypical (femoral|femur) fracture",
    "giant-cell-tumor-of-bone": r"giant[- ]cell tumou?r of (the )?bone|\bgctb\b",
    "hypercalcemia-of-malignancy": r"hypercalc(a)?emia of malignancy|malignant hypercalc",
}


#: System of the codes.json entries that are case-insensitive regular expressions, not codes.
TEXT_PATTERN_SYSTEM = "urn:bone-safety-cds:text-pattern"
#: D3 text classes whose patterns are the ``text-pattern`` entries of a ``codes.json`` set (brands
#: included: A8, A25; required sets, so a file without them stops start-up).
TEXT_PATTERN_SETS: dict[str, str] = {
    "denosumab": "denosumab-text",
    "calcium-supplement": "calcium-supplement-text",
    "vitamin-d-supplement": "vitamin-d-supplement-text",
}
#: D3 strength step 2 (A8): a brand of one set alone settles the denosumab regimen.
BRAND_REGIMEN_SETS: dict[str, str] = {"60mg": "denosumab-60mg-brand-text",
                                      "120mg": "denosumab-120mg-brand-text"}
_LOADED_PATTERN_SETS = frozenset(TEXT_PATTERN_SETS.values()) | frozenset(BRAND_REGIMEN_SETS.values())


class ValueSetError(ValueError):
    """The value-set file is unusable; the message names the file and the entry."""


@dataclass(frozen=True)
class Concept:
    """One code of a value set."""

    system: str
    code: str
    display: str
    resource: str | None = None
    match: str | None = None          # "prefix": matches every code starting with ``code``
    #: eGFR codes: rank when several eGFR results share a date (1 = preferred; D5, A28)
    preference: int | None = None

    @property
    def is_pattern(self) -> bool:
        """A text-pattern entry (``urn:bone-safety-cds:text-pattern``), not a code."""
        return self.system == TEXT_PATTERN_SYSTEM

    def matches(self, system: str, code: str) -> bool:
        """This entry covers ``(system, code)``: exact, or by prefix (codes.json ``match``)."""
        if self.system != system or self.is_pattern:
            return False
        if self.match == "prefix":
            return code.upper().startswith(self.code.upper())
        return code == self.code


#: Distinct drug texts whose :meth:`ValueSets.text_matches` answer is kept per process.
TEXT_MEMO_ENTRIES = 20_000


class ValueSets:
    """Code lookup by (system, code) → the value-set names that contain it, plus text patterns."""

    def __init__(self, sets: Mapping[str, list[Concept]]) -> None:
        self.sets = dict(sets)
        index: dict[tuple[str, str], set[str]] = {}
        #: codes.json ``match: prefix`` entries by system: (upper-cased prefix, set name)
        self._prefixes: dict[str, list[tuple[str, str]]] = {}
        #: codes.json text-pattern entries of condition/procedure sets (not the drug ``-text``
        #: sets, which the D3 medication matching reads): set name → compiled patterns
        self.set_patterns: dict[str, list[re.Pattern[str]]] = {}
        for name, concepts in self.sets.items():
            for c in concepts:
                if c.is_pattern:
                    if not name.endswith("-text"):
                        self.set_patterns.setdefault(name, []).append(re.compile(c.code, re.IGNORECASE))
                    continue
                if c.match == "prefix":
                    self._prefixes.setdefault(c.system, []).append((c.code.upper(), name))
                index.setdefault((c.system, c.code), set()).add(name)
        self._index = {k: frozenset(v) for k, v in index.items()}
        self._memo: dict[tuple[str, str], frozenset[str]] = {}
        self._observation_memo: dict[tuple[str, str], tuple[str, str] | None] = {}
        #: :meth:`text_matches` by joined text (drug names repeat across records and patients)
        self._text_memo: dict[str, frozenset[str]] = {}
        # one search decides whether any set pattern can match (most problem-list texts match none)
        self._any_set_pattern = re.compile("|".join(f"(?:{p.pattern})" for ps in self.set_patterns.values()
                                                    for p in ps) or r"(?!x)x", re.IGNORECASE)
        # The patterns are lower case and matched on lower-cased text: the same matches as
        # re.IGNORECASE, about 3x faster (issue "Speed": ~350 searches on a heavy patient).
        patterns = dict(TEXT_PATTERNS)
        for cls, set_name in TEXT_PATTERN_SETS.items():
            loaded = self.text_patterns(set_name)
            if loaded:
                patterns[cls] = loaded
        patterns = {k: v for k, v in patterns.items() if v}
        try:
            self._patterns = {name: re.compile(p) for name, p in patterns.items()}
            # one search decides whether any class can match (most medication names match none)
            self._any = re.compile("|".join(f"(?:{p})" for p in patterns.values()))
            self._brands = {regimen: re.compile(p) for regimen, set_name in BRAND_REGIMEN_SETS.items()
                            if (p := self.text_patterns(set_name))}
        except re.error as exc:
            raise ValueSetError(f"a text pattern does not compile: {exc}") from exc

    def names_for(self, system: str | None, code: str | None) -> frozenset[str]:
        """Value-set names containing this coding (empty when none)."""
        if not isinstance(system, str) or not isinstance(code, str):
            return frozenset()
        exact = self._index.get((system, code), frozenset())
        prefixes = self._prefixes.get(system)
        if not prefixes:
            return exact
        key = (system, code)
        hit = self._memo.get(key)
        if hit is None:
            upper = code.strip().upper()
            hit = exact | frozenset(n for p, n in prefixes if upper.startswith(p))
            if len(self._memo) < 100_000:
                self._memo[key] = hit
        return hit

    def observation_set(self, system: str | None, code: str | None) -> tuple[str, str] | None:
        """(first of :meth:`names_for` in :data:`OBSERVATION_SETS`, code) of one coding, or None;
        remembered per coding (every result of a lab repeats its code)."""
        key = (system, code)
        try:
            return self._observation_memo[key]
        except (KeyError, TypeError):   # TypeError: an unhashable code (malformed): not kept
            pass
        found = next(((name, str(code)) for name in self.names_for(system, code)
                      if name in OBSERVATION_SETS), None)
        if isinstance(system, str) and isinstance(code, str) and len(self._observation_memo) < 100_000:
            self._observation_memo[key] = found
        return found

    def entry(self, name: str, system: str | None, code: str | None) -> Concept | None:
        """The entry of set ``name`` that covers this coding (exact first, then prefix)."""
        if not isinstance(system, str) or not isinstance(code, str):
            return None
        concepts = self.sets.get(name, [])
        return (next((k for k in concepts if k.system == system and k.code == code), None)
                or next((k for k in concepts if k.matches(system, code)), None))

    def pattern_matches(self, texts: Iterable[str], among: Iterable[str] | None = None) -> frozenset[str]:
        """Condition/procedure sets whose codes.json text-pattern entries match any of ``texts``
        (case-insensitive search, RULES.md "codes.json format"); only ``among`` when given."""
        items = [t for t in texts if isinstance(t, str) and t and self._any_set_pattern.search(t)]
        if not items:
            return frozenset()
        names = self.set_patterns if among is None else [n for n in among if n in self.set_patterns]
        return frozenset(n for n in names if any(p.search(t) for p in self.set_patterns[n] for t in items))

    def names_for_codings(self, codings: Iterable[Mapping[str, object]]) -> frozenset[str]:
        """Union of :meth:`names_for` over every coding (D3: look at every coding)."""
        out: set[str] = set()
        for c in codings:
            out |= self.names_for(c.get("system"), c.get("code"))  # type: ignore[arg-type]
        return frozenset(out)

    def text_matches(self, texts: Iterable[str]) -> frozenset[str]:
        """Text-fallback classes (D3) that any of ``texts`` matches."""
        joined = " | ".join(t for t in texts if t).lower()
        found = self._text_memo.get(joined)
        if found is not None:
            return found
        if not joined or not self._any.search(joined):
            found = frozenset()
        else:
            found = frozenset(n for n, p in self._patterns.items() if p.search(joined))
        if len(self._text_memo) < TEXT_MEMO_ENTRIES:   # bounded: a few MB at most
            self._text_memo[joined] = found
        return found

    def egfr_preference(self) -> dict[str, int]:
        """LOINC code → ``preference`` rank of the ``egfr`` codes (D5, A28)."""
        return {c.code: c.preference for c in self.sets.get("egfr", []) if c.preference is not None}

    def text_patterns(self, name: str) -> str:
        """The ``text-pattern`` entries of a set as one alternation ("" when none); they are matched
        on lower-cased text, so they are written in lower case (checked at load)."""
        codes = [c.code for c in self.sets.get(name, []) if c.system == TEXT_PATTERN_SYSTEM]
        return "|".join(f"(?:{c})" for c in codes)

    def brand_regimens(self, texts: Iterable[str]) -> frozenset[str]:
        """The denosumab regimens (``60mg``/``120mg``) whose brand set any of ``texts`` names
        (D3 strength step 2, A8); both when brands of both sets are named."""
        joined = " | ".join(t for t in texts if t).lower()
        if not joined:
            return frozenset()
        return frozenset(r for r, p in self._brands.items() if p.search(joined))

    def codes(self, name: str) -> list[Concept]:
        return list(self.sets.get(name, []))

    def first(self, name: str) -> Concept:
        return self.sets[name][0]

    def observation_codes(self) -> list[Concept]:
        """Every LOINC code of :data:`OBSERVATION_SETS`, without duplicates, in file order."""
        seen: set[tuple[str, str]] = set()
        out: list[Concept] = []
        for name in OBSERVATION_SETS:
            for c in self.sets.get(name, []):
                if (c.system, c.code) not in seen and c.system == "http://loinc.org":
                    seen.add((c.system, c.code))
                    out.append(c)
        return out


def load_value_sets(path: str | Path = DEFAULT_PATH) -> ValueSets:
    """Read and validate a ``codes.json``; raise :class:`ValueSetError` naming file and entry."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueSetError(f"{path}: cannot read value sets: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueSetError(f"{path}: top level must be an object keyed by value-set name")
    sets: dict[str, list[Concept]] = {}
    for name, entries in raw.items():
        if not isinstance(entries, list) or not entries:
            raise ValueSetError(f"{path}: value set '{name}' must be a non-empty list")
        concepts = []
        for i, e in enumerate(entries):
            where = f"{path}: value set '{name}' entry {i}"
            if not isinstance(e, dict):
                raise ValueSetError(f"{where}: must be an object")
            for key in ("system", "code"):
                if not isinstance(e.get(key), str) or not e[key].strip():
                    raise ValueSetError(f"{where}: '{key}' must be a non-empty string")
            if not e["system"].startswith(("http://", "https://", "urn:")):
                raise ValueSetError(f"{where}: system '{e['system']}' is not a URI")
            if e["system"] == TEXT_PATTERN_SYSTEM:
                if name in _LOADED_PATTERN_SETS and e["code"] != e["code"].lower():
                    raise ValueSetError(f"{where}: a text pattern is matched on lower-cased text; "
                                        "write it in lower case")
                try:
                    re.compile(e["code"])
                except re.error as exc:
                    raise ValueSetError(f"{where}: text pattern is not a valid regular expression: {exc}") from exc
            match = e.get("match")
            if match not in (None, "prefix"):
                raise ValueSetError(f"{where}: match must be \"prefix\" or absent, not {match!r}")
            pref = e.get("preference")
            if pref is not None and (isinstance(pref, bool) or not isinstance(pref, int) or pref < 1):
                raise ValueSetError(f"{where}: 'preference' must be a positive whole number")
            concepts.append(Concept(e["system"], e["code"], str(e.get("display") or e["code"]),
                                    e.get("resource"), match, pref))
        sets[name] = concepts
    missing = [n for n in REQUIRED_SETS if n not in sets]
    if missing:
        raise ValueSetError(f"{path}: required value sets missing: {', '.join(missing)}")
    return ValueSets(sets)


@lru_cache(maxsize=1)
def default_value_sets() -> ValueSets:
    """The project's value sets, loaded once per process."""
    return load_value_sets(DEFAULT_PATH)
