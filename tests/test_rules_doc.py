"""docs/rules.md is generated from the code and current (issue 14), and what it says holds."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from cards.registry import CATALOG_ORDER, REGISTRY, load_rules
from cds_service import cli
from cds_service.app import create_app
from cds_service.config import Settings
from cds_service.rules_doc import markdown, rule_docs
from hooks.services import services

ROOT = Path(__file__).resolve().parent.parent


def test_docs_rules_md_is_current() -> None:
    assert (ROOT / "docs" / "rules.md").read_text() == markdown(), \
        "docs/rules.md is stale: run `bone-cds rules --markdown > docs/rules.md`"


def test_every_registered_rule_is_documented_in_catalog_order() -> None:
    load_rules()
    docs = rule_docs()
    assert [d.id for d in docs] == [r for r in CATALOG_ORDER if r in REGISTRY]
    assert all(d.indicators and d.hooks and d.trigger for d in docs), [d.id for d in docs if not d.trigger]


def test_cli_prints_the_markdown(capsys) -> None:
    assert cli.main(["rules", "--markdown"]) == 0
    assert capsys.readouterr().out == markdown()


def test_every_fixture_card_has_a_documented_indicator(tmp_path) -> None:
    """The indicators found in the code are the ones the rules really give."""
    documented = {d.id: set(d.indicators) for d in rule_docs()}
    seen = 0
    for path in sorted((ROOT / "fixtures").glob("*/*.json")):
        if path.parent.name == "negative":
            continue
        body = json.loads(path.read_text())
        now = datetime.fromisoformat(body["extension"]["org.bone-safety-cds.scenario"]["now"].replace("Z", "+00:00"))
        client = create_app(Settings.from_env({"BONE_CDS_DATA_DIR": str(tmp_path / path.stem)}),
                            clock=lambda now=now: now).test_client()
        service = next(s.id for s in services() if s.hook == body["hook"])
        for card in client.post(f"/cds-services/{service}", json=body).get_json()["cards"]:
            rule = card["source"]["topic"]["code"]
            if rule in documented:
                seen += 1
                assert card["indicator"] in documented[rule], f"{path.name}: {rule} {card['indicator']}"
    assert seen > 50
