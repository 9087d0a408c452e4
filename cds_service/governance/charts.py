"""The report's charts as inline SVG (pygal: pure Python, no script, no network).

Every chart is made with ``js=[]`` (pygal's default loads a tooltip script from the web: the
page must work offline), without its inline configuration script, and without an XML declaration, ready to embed in HTML. Each data
series is one ``<g class="series ...">`` in the SVG (the browser test counts them).
"""

from __future__ import annotations

import re
from typing import Any

import pygal
from pygal.style import Style

STYLE = Style(background="white", plot_background="white", font_family="sans-serif",
              colors=("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                      "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"))
_COMMON = dict(js=[], disable_xml_declaration=True, style=STYLE, width=900, height=380,
               legend_at_bottom=True, legend_at_bottom_columns=3, truncate_legend=-1,
               truncate_label=-1, explicit_size=False)


#: pygal always writes its tooltip configuration as an inline ``<script>`` (for the script that
#: ``js=[]`` leaves out): removed, so the page runs no script and its CSP allows none. The SVG is
#: built by an XML serialiser, so a label can never contain a literal end tag.
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.DOTALL)


def _render(chart: Any, css_class: str) -> str:
    svg = _SCRIPT.sub("", chart.render(is_unicode=True))
    return svg.replace("<svg ", f'<svg data-chart="{css_class}" role="img" ', 1)


def weekly_lines(report: dict[str, Any]) -> str:
    """Weekly cards per rule, one line each; weeks with a change point's onset drawn larger,
    in black, and labelled."""
    rules = report["rules"]
    weeks = next(iter(rules.values()))["weekly"] if rules else []
    chart = pygal.Line(title="Cards issued per week (change points: large black dots)",
                       x_label_rotation=40, show_minor_x_labels=False, dots_size=2.5, **_COMMON)
    chart.x_labels = [w["week"] for w in weeks]
    chart.x_labels_major = [w["week"] for w in weeks][::4]
    for rule, r in rules.items():
        onsets = {cp["onset_week"]: cp for cp in r["change_points"]}
        values = []
        for w in r["weekly"]:
            cp = onsets.get(w["week"])
            if cp:
                values.append({"value": w["cards"], "node": {"r": 7},
                               "style": "fill: black; stroke: black",
                               "label": f"change point ({cp['direction']}): {cp['before']:g} → {cp['after']:g}"})
            else:
                values.append(w["cards"])
        chart.add(rule, values)
    return _render(chart, "weekly")


def override_rates(report: dict[str, Any]) -> str:
    """Override rate over cards answered, per rule; labels carry the denominators."""
    rules = [r for r in report["rules"].values() if r["cards_issued"]]
    chart = pygal.HorizontalBar(title="Override rate (of cards answered; n = answered / issued)",
                                range=(0, 1), value_formatter=lambda v: f"{v:.0%}", print_values=True,
                                show_legend=True, **{**_COMMON, "height": max(220, 60 + 34 * len(rules))})
    chart.x_labels = [f"{r['rule']} (n={r['cards_answered']}/{r['cards_issued']})" for r in rules]
    chart.add("override rate", [r["override_rate_over_answered"] or 0 for r in rules])
    return _render(chart, "override-rates")


def override_reasons(report: dict[str, Any]) -> str:
    """Override reasons per rule, stacked, one series per HL7 non-adherence category (the
    service's own code when it has no HL7 mapping)."""
    rules = [r for r in report["rules"].values() if r["overridden"]]
    categories: dict[str, dict[str, int]] = {}
    for r in rules:
        for x in r["override_reasons"]:
            name = x["hl7"]["code"] if x.get("hl7") else x["code"]
            categories.setdefault(name, {})
            categories[name][r["rule"]] = categories[name].get(r["rule"], 0) + x["count"]
    chart = pygal.HorizontalStackedBar(title="Override reasons (HL7 non-adherence category)",
                                       **{**_COMMON, "height": max(240, 80 + 34 * len(rules)),
                                          "legend_at_bottom_columns": 2})
    chart.x_labels = [r["rule"] for r in rules]
    for name, counts in sorted(categories.items()):
        chart.add(name, [counts.get(r["rule"], 0) or None for r in rules])
    return _render(chart, "override-reasons")


def latency_histogram(report: dict[str, Any]) -> str:
    """Hook latency (calls that issued cards) per hook, as grouped bars over fixed bins."""
    latency = report["latency"]
    chart = pygal.Bar(title="Hook latency (calls that issued cards)", x_title="milliseconds",
                      y_title="calls", **_COMMON)
    bins = next(iter(latency.values()))["histogram"] if latency else []
    edges = [0] + [b["le_ms"] for b in bins if b["le_ms"] is not None]
    chart.x_labels = [f"{lo}–{hi}" for lo, hi in zip(edges, edges[1:])] + ([f"> {edges[-1]}"] if bins else [])
    for hook, h in latency.items():
        chart.add(f"{hook} (median {h['median_ms']:g} ms, {h['calls']} calls)", [b["calls"] for b in h["histogram"]])
    return _render(chart, "latency")


def all_charts(report: dict[str, Any]) -> dict[str, str]:
    """Every chart of the page, by name."""
    return {"weekly": weekly_lines(report), "override_rates": override_rates(report),
            "override_reasons": override_reasons(report), "latency": latency_histogram(report)}
