"""The integration guides (docs/integration/) say what the service does (issue 14: "the guide's
commands are run by a test so they cannot rot")."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from cds_service import cli
from cds_service.chart.valuesets import DEFAULT_PATH
from hooks.services import services

ROOT = Path(__file__).resolve().parent.parent
GUIDES = sorted((ROOT / "docs" / "integration").glob("*.md"))
EPIC = ROOT / "docs" / "integration" / "epic.md"


def _table_rows(text: str, heading: str) -> list[list[str]]:
    section = text[text.index(heading):]
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("## "):
            break
        if line.startswith("| `"):
            rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return rows


def test_epic_prefetch_table_matches_discovery() -> None:
    rows = {r[0].strip("`"): r[1].strip("`") for r in _table_rows(EPIC.read_text(), "## 2. Prefetch")}
    for service in services():
        prefetch = service.discovery()["prefetch"]
        assert set(rows) == set(prefetch)
        for key, template in prefetch.items():
            if key == "observations":
                head, _, tail = rows[key].partition("<the LOINC list of the discovery answer>")
                assert template.startswith(head) and template.endswith(tail)
            else:
                assert rows[key] == template


def test_epic_override_reason_table_covers_every_reason_with_its_hl7_code() -> None:
    table = _table_rows(EPIC.read_text(), "## 5. Feedback")
    where = {code.strip("`"): row[0].split("`")[1] for row in table for code in row[1].split(", ")}
    reasons = json.loads(DEFAULT_PATH.read_text())["override-reason"]
    for r in reasons:
        assert r["code"] in where, f"{r['code']} missing from the Epic guide"
        assert where[r["code"]] == (r.get("map") or {}).get("code", "—"), r["code"]


def test_every_setting_a_guide_names_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for guide in GUIDES:
        for name in set(re.findall(r"BONE_CDS_[A-Z_]+", guide.read_text())):
            assert f"`{name}`" in readme, f"{guide.name} names {name}, which README does not document"


def _evaluate_commands() -> list[tuple[str, str]]:
    found = []
    for guide in GUIDES:
        for block in re.findall(r"```bash\n(.*?)```", guide.read_text(), re.S):
            for line in block.splitlines():
                if "bone-cds evaluate" in line:
                    found.append((guide.name, line.strip()))
    return found


@pytest.mark.parametrize("guide,command", _evaluate_commands())
def test_guide_evaluate_commands_run(guide: str, command: str, monkeypatch, capsys) -> None:
    words = shlex.split(command)
    at = next(i for i, w in enumerate(words) if w.endswith("bone-cds"))
    for assignment in words[:at]:
        name, _, value = assignment.partition("=")
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(ROOT)
    assert cli.main(words[at + 1:]) == 0
    response = json.loads(capsys.readouterr().out)
    assert response["cards"], f"{guide}: {command} gave no card"
    if "BONE_CDS_EHR_PROFILE=epic" in command:
        for card in response["cards"]:
            assert re.fullmatch(r"[A-Za-z0-9]+", card["source"]["topic"]["code"])
            assert all(len(s["actions"]) <= 1 for s in card.get("suggestions", []))


def test_the_guides_have_commands_to_run() -> None:
    assert any(g == "epic.md" for g, _ in _evaluate_commands())
