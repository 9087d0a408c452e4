"""Governance (issue 16): what clinicians did with every card — the record, the report, charts.

* :mod:`.patient_key` — the pseudonymous patient key (HMAC-SHA256 with a server secret).
* :mod:`.record` — what the hook route stores for every issued card.
* :mod:`.changepoint` — change points in weekly card counts (two-sided CUSUM).
* :mod:`.report` — the per-rule report (JSON), by hook and by tenant.
* :mod:`.charts`, :mod:`.page` — the report's SVG charts and its HTML page.
* :mod:`.routes` — ``GET /admin/report`` and ``/admin/report.json`` behind ``BONE_CDS_ADMIN_TOKEN``.
"""
