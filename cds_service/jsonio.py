"""JSON decoding of request bodies and FHIR answers: orjson when it can, else the standard library.

orjson decodes about twice as fast as ``json`` (issue "Speed": 6.6 → 3 ms on the heavy 630 KB
request). What orjson refuses but ``json`` reads — NaN and Infinity, lone surrogate escapes,
nesting beyond 1,024 levels — falls back to ``json``, and the errors are the same
(``ValueError``/``UnicodeDecodeError``, or ``RecursionError`` when ``json`` gives up on the
nesting). One difference remains: an integer beyond 64 bits reads as a float (``json`` keeps it
exact). FHIR integers are 32-bit, so such a value is invalid FHIR either way, and ``json`` already
reads every decimal with a fraction or exponent as a float.

Decoding a large body allocates millions of containers, and the cyclic garbage collector,
triggered by allocation counts, then walks every young object again and again: measured 101 ms
at 10k resources and 2,356 ms at 100k with collection on, 59 and 620 ms with it off (issue 11,
``python -m bench --only scale``). A decoded JSON document holds no reference cycles, so a body
over :data:`PAUSE_GC_BYTES` is decoded with automatic collection paused (a counter shared by
threads: collection resumes when the last large decode ends); the hook route keeps it paused
until the answer is built and the document released (:func:`paused_for`).
"""

from __future__ import annotations

import gc
import json
import threading
from contextlib import contextmanager, nullcontext
from typing import Any, ContextManager, Iterator

import orjson

#: Bodies at least this large are decoded with automatic garbage collection paused.
PAUSE_GC_BYTES = 1 << 20
_lock = threading.Lock()
_pausing = 0


@contextmanager
def gc_paused() -> Iterator[None]:
    """Automatic collection off while any thread is inside (on again if it was on before)."""
    global _pausing
    with _lock:
        if _pausing == 0 and not gc.isenabled():
            was_off = True
        else:
            was_off = False
            _pausing += 1
            gc.disable()
    try:
        yield
    finally:
        if not was_off:
            with _lock:
                _pausing -= 1
                if _pausing == 0:
                    gc.enable()


def paused_for(data: bytes | str) -> ContextManager[None]:
    """:func:`gc_paused` for a body of :data:`PAUSE_GC_BYTES` or more, else nothing.

    For a whole request: decoding, evaluating and releasing a large body with collection paused
    means the collector never walks the decoded document at all (resuming right after the decode
    would walk every object of it once: measured 34 ms at 10k Observations, issue 11 §3)."""
    return gc_paused() if len(data) >= PAUSE_GC_BYTES else nullcontext()


def _decode(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def loads(data: bytes | str) -> Any:
    """The decoded JSON document."""
    if len(data) < PAUSE_GC_BYTES:
        return _decode(data)
    with gc_paused():
        return _decode(data)


__all__ = ["PAUSE_GC_BYTES", "gc_paused", "loads", "paused_for"]
