"""The README's "Value sets a site must review" table matches codes.json (issue 13: keep
``verified`` honest and say which value sets a site must review)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cds_service.chart.valuesets import DEFAULT_PATH

ROOT = Path(__file__).resolve().parent.parent


def test_readme_lists_every_set_with_unverified_entries() -> None:
    sets = json.loads(DEFAULT_PATH.read_text())
    want = {name: (sum(1 for e in entries if not e.get("verified")), len(entries))
            for name, entries in sets.items() if isinstance(entries, list)}
    want = {k: v for k, v in want.items() if v[0]}
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Value sets a site must review"):]
    section = section[:section.index("\n## ", 3)]
    got = {m[0]: (int(m[1]), int(m[2])) for m in re.findall(r"\| `([a-z0-9-]+)` \| (\d+) of (\d+) \|", section)}
    assert got == want
