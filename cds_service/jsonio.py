"""JSON decoding of request bodies and FHIR answers: orjson when it can, else the standard library.

orjson decodes about twice as fast as ``json`` (issue "Speed": 6.6 → 3 ms on the heavy 630 KB
request). What orjson refuses but ``json`` reads — NaN and Infinity, integers beyond 64 bits, lone
surrogate escapes, nesting beyond 1,024 levels — falls back to ``json``, so every input is read
exactly as before, and the errors are the same (``ValueError``/``UnicodeDecodeError``, or
``RecursionError`` when ``json`` itself gives up on the nesting).
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
