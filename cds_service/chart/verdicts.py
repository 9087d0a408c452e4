"""R4B validation of one resource, and a bounded memo of its verdicts by content digest.

Validating a resource with ``fhir.resources.R4B`` costs about 0.2–0.5 ms (issue "Speed"): most of
a hook call. EHRs send the same resources again and again — every chart open (``patient-view``),
every change of selection (``order-select``), then ``order-sign`` — so :class:`VerdictCache`
remembers, per process, whether a resource with exactly this content was valid. The key is a
BLAKE2b digest of the resource's JSON text (with the draft flag): no patient data is kept, a
changed resource is a new key, and the verdict is the one R4B gives (same function, same input).
Pure: no I/O; the cache is handed to ``build_chart`` by its caller.
"""

from __future__ import annotations

import json
import threading
from hashlib import blake2b
from typing import Any

from cachetools import LRUCache
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from .normalize import normalise_resource

#: Entries kept by default: about 210 bytes each (16-byte digest, verdict, LRU links), ~10 MB per worker.
DEFAULT_SIZE = 50_000

_VALID = ""  # the cached verdict of a valid resource (else the reason it is not)


def validate_r4b(resource: dict[str, Any], *, draft: bool = False) -> tuple[dict[str, Any] | None, str]:
    """(repaired resource, "") when it validates against its R4B model, else (None, reason)."""
    rtype = str(resource.get("resourceType"))
    try:
        fixed = normalise_resource(resource, draft=draft)
        get_fhir_model_class(rtype).model_validate(fixed)
    except (ValidationError, ValueError, TypeError, KeyError, RecursionError) as exc:
        first = str(exc).splitlines()[1:2] or [type(exc).__name__]
        return None, f"invalid {rtype}: {first[0].strip()}"
    return fixed, _VALID


def _digest(resource: dict[str, Any], draft: bool) -> bytes | None:
    """Digest of the resource's JSON text and the draft flag; None if it has no JSON text."""
    try:
        text = json.dumps(resource, separators=(",", ":"), allow_nan=True)
    except (TypeError, ValueError, RecursionError):
        return None  # not JSON-shaped (only possible for callers other than the HTTP route)
    h = blake2b(text.encode("ascii"), digest_size=16)  # ensure_ascii: always ASCII
    h.update(b"D" if draft else b"-")
    return h.digest()


class VerdictCache:
    """Thread-safe LRU memo of :func:`validate_r4b` verdicts, ``size`` entries at most (0: off)."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self._verdicts: LRUCache[bytes, str] | None = LRUCache(maxsize=size) if size > 0 else None
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def validate(self, resource: dict[str, Any], *, draft: bool = False) -> tuple[dict[str, Any] | None, str]:
        """The verdict of :func:`validate_r4b`, from the memo when this content was seen before."""
        if self._verdicts is None:
            return validate_r4b(resource, draft=draft)
        key = _digest(resource, draft)
        if key is None:
            return validate_r4b(resource, draft=draft)
        with self._lock:
            verdict = self._verdicts.get(key)
            if verdict is None:
                self.misses += 1
            else:
                self.hits += 1
        if verdict is None:
            fixed, verdict = validate_r4b(resource, draft=draft)
            with self._lock:
                self._verdicts[key] = verdict
            return fixed, verdict
        if verdict != _VALID:
            return None, verdict
        return normalise_resource(resource, draft=draft), _VALID

    def clear(self) -> None:
        """Forget every verdict (the benchmark's "first sight" runs; tests)."""
        with self._lock:
            if self._verdicts is not None:
                self._verdicts.clear()
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._verdicts) if self._verdicts is not None else 0


__all__ = ["DEFAULT_SIZE", "VerdictCache", "validate_r4b"]
