"""DESIGN.md data flow: ``cds_service`` calls ``hooks``, ``hooks`` calls ``cards``; the rules are
pure. ``cards`` may import only the pure clinical model ``cds_service.chart`` (no Flask, no
requests, no I/O), so a rule can be read and tested without a server."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_cards_and_chart_import_no_io_modules() -> None:
    forbidden = ("flask", "requests", "werkzeug", "gunicorn", "sqlite3", "socket", "urllib", "http")
    for folder in (ROOT / "cards", ROOT / "cds_service" / "chart"):
        for path in folder.rglob("*.py"):
            for name in _imports(path):
                assert not name.split(".")[0] in forbidden, f"{path.relative_to(ROOT)} imports {name}"
                if name.startswith("cds_service"):
                    assert name == "cds_service.chart" or name.startswith("cds_service.chart."), \
                        f"{path.relative_to(ROOT)} imports {name}: cards may use only cds_service.chart"


def test_importing_every_rule_loads_no_web_or_network_stack() -> None:
    code = ("import sys; from cards.registry import load_rules; load_rules(); "
            "bad = [m for m in ('flask', 'requests', 'werkzeug', 'sqlite3') if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == ""


def test_every_catalog_rule_is_registered_once() -> None:
    from cards.registry import CATALOG_ORDER, REGISTRY, load_rules
    load_rules()
    assert sorted(REGISTRY) == sorted(CATALOG_ORDER)


#: the batch edge's HTTP client (``sweep --export``): requests, never the web stack
EXPORT_CLIENT = ("sweep/bulk_export.py", "sweep/smart_backend.py")


def test_the_batch_edge_and_the_shared_core_import_no_web_stack() -> None:
    """``sweep/`` (the batch edge) and ``hooks/`` (the core both edges call) use the pure model
    and the rules only: of ``cds_service`` the chart and the data card, never the web modules.
    Only the export client (:data:`EXPORT_CLIENT`) may use ``requests``."""
    forbidden = ("flask", "requests", "werkzeug", "gunicorn", "sqlalchemy")
    allowed = ("cds_service.chart", "cds_service.data_card")
    for folder in (ROOT / "sweep", ROOT / "hooks"):
        for path in folder.rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            for name in _imports(path):
                top = name.split(".")[0]
                if top == "requests" and rel in EXPORT_CLIENT:
                    continue
                assert top not in forbidden, f"{path.relative_to(ROOT)} imports {name}"
                if name.startswith("cds_service"):
                    assert name.startswith(allowed), f"{path.relative_to(ROOT)} imports {name}"


def test_the_sweep_engine_never_loads_the_export_client_or_a_web_stack() -> None:
    """A sweep worker (or Spark executor) imports the engine without requests or Flask: the
    export client is loaded only by ``--export``."""
    code = ("import sys; import sweep.local, sweep.patient, sweep.records; "
            "bad = [m for m in ('flask', 'requests', 'werkzeug', 'sweep.bulk_export', 'sweep.smart_backend') "
            "if m in sys.modules]; print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == ""


def test_the_export_client_imports_no_web_framework() -> None:
    for rel in EXPORT_CLIENT:
        for name in _imports(ROOT / rel):
            assert name.split(".")[0] not in ("flask", "werkzeug", "gunicorn", "sqlalchemy"), f"{rel} imports {name}"
            assert not name.startswith("cds_service") or name.startswith("cds_service.chart"), f"{rel} imports {name}"
