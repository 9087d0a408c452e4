"""JSON decoding of request bodies and FHIR answers: orjson when it can, else the standard library.

orjson decodes about twice as fast as ``json`` (issue "Speed": 6.6 → 3 ms on the heavy 630 KB
request). What orjson refuses but ``json`` reads — NaN and Infinity, lone surrogate escapes,
nesting beyond 1,024 levels — falls back to ``json``, and the errors are the same
(``ValueError``/``UnicodeDecodeError``, or ``RecursionError`` when ``json`` gives up on the
nesting). One difference remains: an integer beyond 64 bits reads as a float (``json`` keeps it
exact). FHIR integers are 32-bit, so such a value is invalid FHIR either way, and ``json`` already
reads every decimal with a fraction or exponent as a float.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: bytes | str) -> Any:
    """The decoded JSON document."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


__all__ = ["loads"]
