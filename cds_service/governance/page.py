"""The report as one self-contained HTML page (no script, no external resource: works offline
and as a static file from ``bone-cds feedback-report --html``)."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, select_autoescape
from markupsafe import Markup

from .charts import all_charts

#: Sent with the page: nothing but inline styles and data: images may load.
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>bone-safety-cds governance report ({{ r.window.days }} days)</title>
<style>
body { font-family: sans-serif; margin: 1.5rem; color: #222; max-width: 1200px; }
table { border-collapse: collapse; margin: .5rem 0 1.5rem; font-size: .9rem; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.flagged td:first-child { border-left: 4px solid #d62728; }
.flag { color: #d62728; font-weight: bold; }
.muted { color: #666; font-size: .85rem; }
figure { margin: 0 0 1.5rem; } figure svg { max-width: 100%; height: auto; }
nav a { margin-right: 1rem; }
</style></head><body>
<h1>Governance report</h1>
<p class="muted">Cards issued from {{ r.window.start }} to {{ r.window.end }} ({{ r.window.days }} days);
generated {{ r.generated_at }}. Outcome of a card: its latest feedback. Rates over cards issued and over cards
answered; coverage = answered / issued (ignored cards send nothing).</p>
{% if links %}<nav>{% for d in (7, 30, 90) %}<a href="?days={{ d }}">{{ d }} days</a>{% endfor %}
<a href="report.json?days={{ r.window.days }}">JSON</a></nav>{% endif %}

<h2>All rules</h2>
<table id="totals"><tr><th>cards issued</th><th>unique patients</th><th>answered</th><th>coverage</th>
<th>accepted</th><th>overridden</th><th>feedback on unknown cards</th></tr>
<tr><td>{{ r.totals.cards_issued }}</td><td>{{ r.totals.unique_patients }}</td><td>{{ r.totals.cards_answered }}</td>
<td>{{ pct(r.totals.feedback_coverage) }}</td><td>{{ r.totals.accepted }}</td><td>{{ r.totals.overridden }}</td>
<td data-field="unknown_card_feedback">{{ r.unknown_card_feedback.feedback }}</td></tr></table>
{% if r.unknown_card_feedback.feedback %}
<h3>Feedback for unknown cards</h3>
<p class="muted">Feedback received in the window for card ids this service never issued (another service's cards,
a test client, or records lost): counted apart from every rule.</p>
<table id="unknown-cards"><tr><th>tenant</th><th>feedback</th><th>cards</th></tr>
{% for tenant, u in r.unknown_card_feedback.by_tenant.items() %}
<tr><td>{{ tenant }}</td><td>{{ u.feedback }}</td><td>{{ u.cards }}</td></tr>{% endfor %}
<tr><td>all</td><td>{{ r.unknown_card_feedback.feedback }}</td><td>{{ r.unknown_card_feedback.cards }}</td></tr>
</table>{% endif %}

<h2>Per rule</h2>
<table id="rules">
<tr><th>rule</th><th>cards issued</th><th>unique patients</th><th>answered</th><th>coverage</th>
<th>accepted</th><th>accept rate (issued / answered)</th><th>overridden</th><th>override rate (issued / answered)</th>
<th>median time to feedback</th><th>top override reason (HL7)</th><th>flag</th></tr>
{% for rule, x in r.rules.items() %}
<tr data-rule="{{ rule }}"{% if x.governance_flag %} class="flagged"{% endif %}>
<td>{{ rule }}</td><td data-field="cards_issued">{{ x.cards_issued }}</td>
<td data-field="unique_patients">{{ x.unique_patients }}</td><td data-field="cards_answered">{{ x.cards_answered }}</td>
<td data-field="feedback_coverage">{{ pct(x.feedback_coverage) }}</td><td data-field="accepted">{{ x.accepted }}</td>
<td data-field="accept_rate">{{ pct(x.accept_rate_over_issued) }} / {{ pct(x.accept_rate_over_answered) }}</td>
<td data-field="overridden">{{ x.overridden }}</td>
<td data-field="override_rate">{{ pct(x.override_rate_over_issued) }} / {{ pct(x.override_rate_over_answered) }}</td>
<td data-field="median_seconds_to_feedback">{{ duration(x.median_seconds_to_feedback) }}</td>
<td>{% if x.override_reasons %}{% set top = x.override_reasons[0] %}{{ top.code }} ({{ top.count }}){% if top.hl7 %} → {{ top.hl7.code }}{% endif %}{% else %}–{% endif %}</td>
<td data-field="flag">{% if x.governance_flag %}<span class="flag" title="{{ x.flag_reasons|join('; ') }}">review</span>{% endif %}</td></tr>
{% endfor %}
</table>
{% set flagged = r.rules.values()|selectattr("governance_flag")|list %}
{% if flagged %}<h3>Why flagged</h3><ul id="flags">
{% for x in flagged %}<li><b>{{ x.rule }}</b>: {{ x.flag_reasons|join("; ") }}</li>{% endfor %}</ul>{% endif %}

<h2>Charts</h2>
{% for name, svg in charts.items() %}<figure id="chart-{{ name }}">{{ svg }}</figure>{% endfor %}

<h2>By hook and by tenant</h2>
<table id="breakdown"><tr><th>rule</th><th>hook or tenant</th><th>cards issued</th><th>answered</th>
<th>accepted</th><th>overridden</th><th>override rate (answered)</th></tr>
{% for rule, x in r.rules.items() %}{% for kind in ("by_hook", "by_tenant") %}{% for name, y in x[kind].items() %}
<tr><td>{{ rule }}</td><td>{{ "hook" if kind == "by_hook" else "tenant" }}: {{ name }}</td><td>{{ y.cards_issued }}</td>
<td>{{ y.cards_answered }}</td><td>{{ y.accepted }}</td><td>{{ y.overridden }}</td>
<td>{{ pct(y.override_rate_over_answered) }}</td></tr>
{% endfor %}{% endfor %}{% endfor %}</table>

<h2>Override reasons</h2>
<table id="reasons"><tr><th>rule</th><th>reason</th><th>HL7 non-adherence category</th><th>cards</th><th>share</th></tr>
{% for rule, x in r.rules.items() %}{% for y in x.override_reasons %}
<tr><td>{{ rule }}</td><td>{{ y.display or y.code }}</td><td>{{ y.hl7.code if y.hl7 else "–" }}</td>
<td>{{ y.count }}</td><td>{{ pct(y.share) }}</td></tr>{% endfor %}{% endfor %}</table>

{% set merged = r.rules.values()|selectattr("accepted_by_member")|list %}
{% if merged %}<h2>Accepted suggestions by member rule</h2>
<p class="muted">A merged card (one card for several missing pre-treatment items) offers one suggestion per member
rule: what clinicians accepted, item by item.</p>
<table id="members"><tr><th>rule</th><th>member rule</th><th>suggestions accepted</th></tr>
{% for x in merged %}{% for member, n in x.accepted_by_member.items() %}
<tr data-rule="{{ x.rule }}" data-member="{{ member }}"><td>{{ x.rule }}</td><td>{{ member }}</td><td>{{ n }}</td></tr>
{% endfor %}{% endfor %}</table>{% endif %}

<p class="muted">Change points: {{ r.method.change_points.test }} (k = {{ r.method.change_points.k }},
h = {{ r.method.change_points.h }}, baseline {{ r.method.change_points.baseline_weeks }} weeks) over the
{{ r.method.change_points.series_weeks }} complete weeks before this one. A rule is flagged for review when its
override rate over cards answered is above 90% with at least 20 answered, its feedback coverage is below 20%, or
its weekly cards changed in the last {{ r.method.change_points.recent_weeks }} weeks.</p>
</body></html>
"""

_env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.0%}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def render_page(report: dict[str, Any], *, links: bool = True) -> str:
    """The HTML page of ``report`` (``links``: the 7/30/90-day and JSON links of the live page)."""
    charts = {name: Markup(svg) for name, svg in all_charts(report).items()}
    return _env.from_string(_TEMPLATE).render(r=report, charts=charts, links=links, pct=_pct, duration=_duration)
