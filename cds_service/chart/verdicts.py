"""R4B validation of the elements the chart reads, and a bounded memo of verdicts by content digest.

Each resource is projected onto the elements the chart reads and those are validated with their
``fhir.resources.R4B`` datatypes (:mod:`.projection`, issue 11): still the costliest step of a
first call. EHRs send the same resources again and again — every chart open (``patient-view``),
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

from .projection import Memo, project, reproject

#: Entries kept by default: about 210 bytes each (16-byte digest, verdict, LRU links), ~10 MB per worker.
DEFAULT_SIZE = 50_000


def validate_r4b(resource: dict[str, Any], *, draft: bool = False,
                 memo: Memo | None = None) -> tuple[dict[str, Any] | None, str]:
    """(projection, "") when every element the chart reads validates with its R4B datatype,
    else (None, reason naming the element). ``memo``: this request's element verdicts."""
    fixed, reason, _dropped = project(resource, draft=draft, memo=memo)
    return fixed, reason


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
    """Thread-safe LRU memo of :func:`validate_r4b` verdicts, ``size`` entries at most (0: off).

    A verdict is the reason a resource is unreadable (a string), or the display-only elements its
    projection drops (a tuple, empty for a clean resource)."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self._verdicts: LRUCache[bytes, str | tuple[str, ...]] | None = LRUCache(maxsize=size) if size > 0 else None
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def validate(self, resource: dict[str, Any], *, draft: bool = False,
                 memo: Memo | None = None) -> tuple[dict[str, Any] | None, str]:
        """The verdict of :func:`validate_r4b`, from the memo when this content was seen before."""
        if self._verdicts is None:
            return validate_r4b(resource, draft=draft, memo=memo)
        key = _digest(resource, draft)
        if key is None:
            return validate_r4b(resource, draft=draft, memo=memo)
        with self._lock:
            verdict = self._verdicts.get(key)
            if verdict is None:
                self.misses += 1
            else:
                self.hits += 1
        if verdict is None:
            fixed, reason, dropped = project(resource, draft=draft, memo=memo)
            with self._lock:
                self._verdicts[key] = reason if fixed is None else dropped
            return fixed, reason
        if isinstance(verdict, str):
            return None, verdict
        return reproject(resource, verdict, draft=draft), ""

    def clear(self) -> None:
        """Forget every verdict (the benchmark's "first sight" runs; tests)."""
        with self._lock:
            if self._verdicts is not None:
                self._verdicts.clear()
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._verdicts) if self._verdicts is not None else 0


__all__ = ["DEFAULT_SIZE", "VerdictCache", "validate_r4b"]
