"""The request body's nesting limit read from its bytes (``json_body._raw_deeper_than``) gives the same
answer as walking the decoded document, whatever the strings hold (issue 11 "Speed budgets":
the walk cost ~0.3 ms per typical call and ~3 ms per heavy one)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from cds_service.json_body import _deeper_than, _raw_deeper_than, too_deep

#: strings made of what the byte scan treats specially
TRICKY = st.text(alphabet='[]{}",:\\ a\u00e9\u2028', max_size=8)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TRICKY,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TRICKY, inner, max_size=4),
    max_leaves=60,
)


def _depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@settings(max_examples=400, deadline=None)
@given(JSON, st.booleans())
def test_byte_scan_agrees_with_the_walk(doc, ascii_only) -> None:
    raw = json.dumps(doc, ensure_ascii=ascii_only, indent=None if ascii_only else 1).encode()
    depth = _depth(doc)
    for limit in {max(depth - 1, 0), depth, depth + 1}:
        assert _raw_deeper_than(raw, limit) == (depth > limit) == (
            isinstance(doc, (dict, list)) and _deeper_than(doc, limit)), (raw, limit)


@pytest.mark.parametrize("text", ['"]"', '"]]]]"', '"\\\\"', '"\\\\\\"]"', '"\\"]\\""', '"[[["'])
def test_brackets_in_strings_neither_hide_nor_add_depth(text: str) -> None:
    """A string of closing brackets before deep nesting (and opening ones after) must not hide
    levels, nor must brackets in strings count as levels."""
    deep = "[" * 6 + "1" + "]" * 6
    raw = f'[{text}, {deep}, {text}]'.encode()
    assert json.loads(raw)  # valid JSON
    assert _raw_deeper_than(raw, 6) is True and _raw_deeper_than(raw, 7) is False
    hidden = ("[" * 3 + '"' + "]" * 3 + '",' + "[" * 5 + "0" + "]" * 5 + ',"' + "[" * 3 + '"' + "]" * 3).encode()
    assert _raw_deeper_than(hidden, 7) is True and _raw_deeper_than(hidden, 8) is False


def test_utf16_body_is_walked() -> None:
    doc = {"a": [[["x"]]]}
    raw = json.dumps(doc).encode("utf-16")
    assert json.loads(raw) == doc
    assert too_deep(raw, doc, 3) is True and too_deep(raw, doc, 4) is False
    assert too_deep(b"1", 1, 0) is False
