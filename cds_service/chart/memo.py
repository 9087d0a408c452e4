"""A per-request memo for pure readers of record content (issue 11 §3, "Speed": index once).

One request repeats the same content many times: every dose of a drug has the same
``medicationCodeableConcept`` and dosage, a problem list the same few codes. A reader that is a
pure function of some elements is computed once per distinct content: the key is the ``repr`` of
those elements (faithful for decoded JSON, as in :mod:`.projection`) with the reader's name.
The memo lives for one chart build (it holds record content: never kept across requests).
"""

from __future__ import annotations

from typing import Any, Callable, MutableMapping, TypeVar

T = TypeVar("T")

Memo = MutableMapping[tuple[str, str], Any]


def remembered(memo: Memo | None, reader: str, content: Any, compute: Callable[[], T]) -> T:
    """``compute()``, or its earlier answer for the same ``reader`` and ``content`` in ``memo``
    (None: no memo). ``compute`` must depend on ``content`` alone and return an immutable value."""
    if memo is None:
        return compute()
    try:
        key = (reader, repr(content))
    except RecursionError:
        return compute()
    try:
        return memo[key]
    except KeyError:
        value = memo[key] = compute()
        return value


__all__ = ["Memo", "remembered"]
