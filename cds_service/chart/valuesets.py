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
    "dental-referral", "invasive-dental-procedure",
)

#: Lab and pregnancy value sets whose LOINC codes the Observation prefetch asks for (§1).
OBSERVATION_SETS: tuple[str, ...] = (
    "calcium-serum", "calcium-corrected", "calcium-ionized", "albumin", "egfr", "creatinine",
    "vitamin-d-25oh", "magnesium", "phosphate", "pth-intact", "pregnancy-test", "pregnancy-status",
)

#: Text fallbacks (RULES.md D3), matched case-insensitively on ``text`` and ``coding.display``.
TEXT_PATTERNS: dict[str, str] = {
    "denosumab": r"\bdenosumab\b|prolia|xgeva|jubbonti|wyost|ospomyv|xbryk|stoboclo|osenvelt|"
                 r"conexxence|bomyntra|bildyos|bilprevda|osvyrti|jubereq|bosaya|aukelso|enoby|"
                 r"xtrenbo|oziltus",
    "alendronate": r"alendron|fosamax|binosto",
    "risedronate": r"risedron|actonel|atelvia",
    "ibandronate": r"ibandron|boniva",
    "zoledronic-acid": r"zoledron|reclast|zometa|aclasta",
    "pamidronate": r"pamidron|aredia",
    "etidronate": r"etidron|didronel",
    "calcimimetic": r"cinacalcet|sensipar|etelcalcetide|parsabiv|evocalcet",
    "calcium-supplement": r"\bcalcium (carbonate|citrate|gluconate|lactate|phosphate|acetate)\b|"
                          r"\bcalcium\b.*\b(tab|chew|supplement)",
    "vitamin-d-supplement": r"cholecalciferol|ergocalciferol|vitamin d|colecalciferol|calcitriol|"
                            r"alfacalcidol|paricalcitol|doxercalciferol",
    "osteonecrosis-of-jaw": r"osteonecrosis of (the )?jaw|\bmronj\b|\bbronj\b|\bonj\b",
    "atypical-femoral-fracture": r"atypical (femoral|femur) fracture",
    "giant-cell-tumor-of-bone": r"giant[- ]cell tumou?r of (the )?bone|\bgctb\b",
    "hypercalcemia-of-malignancy": r"hypercalc(a)?emia of malignancy|malignant hypercalc",
    # BP-ORAL-CONTRAINDICATION (A18): the text-pattern entries of these two sets in codes.json
    "esophageal-emptying-disorder": r"\bachalasia\b|\b(o)?esophag(eal|us)\b.{0,20}\b(stricture|stenosis)\b|"
                                    r"\b(stricture|stenosis) of (the )?(o)?esophagus\b",
    "unable-to-sit-upright": r"\b(bed-?bound|bedridden|bed confinement|confined to bed|unable to (sit|stand)"
                             r"( up| upright)?|cannot (sit|stand)( up| upright)?)\b",
}


class ValueSetError(ValueError):
    """The value-set file is unusable; the message names the file and the entry."""


@dataclass(frozen=True)
class Concept:
    """One code of a value set."""

    system: str
    code: str
    display: str
    resource: str | None = None


class ValueSets:
    """Code lookup by (system, code) → the value-set names that contain it, plus text patterns."""

    def __init__(self, sets: Mapping[str, list[Concept]]) -> None:
        self.sets = dict(sets)
        index: dict[tuple[str, str], set[str]] = {}
        for name, concepts in self.sets.items():
            for c in concepts:
                index.setdefault((c.system, c.code), set()).add(name)
        self._index = {k: frozenset(v) for k, v in index.items()}
        # The patterns are lower case and matched on lower-cased text: the same matches as
        # re.IGNORECASE, about 3x faster (issue "Speed": ~350 searches on a heavy patient).
        self._patterns = {name: re.compile(p) for name, p in TEXT_PATTERNS.items()}
        # one search decides whether any class can match (most medication names match none)
        self._any = re.compile("|".join(f"(?:{p})" for p in TEXT_PATTERNS.values()))

    def names_for(self, system: str | None, code: str | None) -> frozenset[str]:
        """Value-set names containing this coding (empty when none)."""
        if not isinstance(system, str) or not isinstance(code, str):
            return frozenset()
        return self._index.get((system, code), frozenset())

    def names_for_codings(self, codings: Iterable[Mapping[str, object]]) -> frozenset[str]:
        """Union of :meth:`names_for` over every coding (D3: look at every coding)."""
        out: set[str] = set()
        for c in codings:
            out |= self.names_for(c.get("system"), c.get("code"))  # type: ignore[arg-type]
        return frozenset(out)

    def text_matches(self, texts: Iterable[str]) -> frozenset[str]:
        """Text-fallback classes (D3) that any of ``texts`` matches."""
        joined = " | ".join(t for t in texts if t).lower()
        if not joined or not self._any.search(joined):
            return frozenset()
        return frozenset(n for n, p in self._patterns.items() if p.search(joined))

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
            concepts.append(Concept(e["system"], e["code"], str(e.get("display") or e["code"]),
                                    e.get("resource")))
        sets[name] = concepts
    missing = [n for n in REQUIRED_SETS if n not in sets]
    if missing:
        raise ValueSetError(f"{path}: required value sets missing: {', '.join(missing)}")
    return ValueSets(sets)


@lru_cache(maxsize=1)
def default_value_sets() -> ValueSets:
    """The project's value sets, loaded once per process."""
    return load_value_sets(DEFAULT_PATH)
