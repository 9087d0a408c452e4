"""Helpers for the AR-* rule tests; running a rule (or the whole engine) is in ``_helpers``."""

from __future__ import annotations

from typing import Any

from tests.rules._helpers import (ORDER_HOOKS, TODAY, ago, engine_ids, fired, override_codes,  # noqa: F401
                                  run)


def suggestion_codes(card: dict[str, Any]) -> list[list[str]]:
    """Per suggestion, the codes of the resources its actions create."""
    out = []
    for s in card.get("suggestions", []):
        codes = []
        for a in s["actions"]:
            res = a["resource"]
            concept = res.get("code") or res.get("medicationCodeableConcept") or {}
            codes += [c["code"] for c in concept.get("coding", [])]
        out.append(codes)
    return out
