"""Dose events of catalog version 2 at the chart level (RULES.md D4 dose events, §8 A1, A11):
linked completed orders are the same dose (by relative reference, absolute URL with or without a
version, or the entry's fullUrl); statements of injectables are doses only in statement-only
histories of their D4 drug class."""

from __future__ import annotations

from datetime import date

from cds_service.chart import BISPHOSPHONATE, DENOSUMAB, build_chart
from cds_service.chart.identity import PatientIdentity
from tests import factory as f

NOW = f.NOW


def _events(resources, cls=DENOSUMAB):
    chart = build_chart(resources, NOW, identity=PatientIdentity(f.PID))
    return [(e.date.isoformat(), e.source) for e in chart.dose_events(cls)]


def _linked_pair(reference: str, *, order_id: str = "mr-1"):
    order = f.request(f.ZOL5, "2026-01-01", status="completed", rid=order_id)
    given = f.administration(f.ZOL5, "2026-01-20")
    given["request"] = {"reference": reference}
    return order, given


def test_linked_order_by_relative_reference_is_the_same_dose():
    order, given = _linked_pair("MedicationRequest/mr-1")
    assert _events([order, given], BISPHOSPHONATE) == [("2026-01-20", "MedicationAdministration")]


def test_linked_order_by_absolute_url_with_history():
    order, given = _linked_pair("https://ehr.example.org/fhir/MedicationRequest/mr-1/_history/3")
    assert _events([order, given], BISPHOSPHONATE) == [("2026-01-20", "MedicationAdministration")]


def test_linked_order_by_fullurl():
    order, given = _linked_pair("urn:uuid:7d3b0a3e-0000-4000-8000-000000000001")
    bundle = {"resourceType": "Bundle", "type": "searchset",
              "entry": [{"fullUrl": "urn:uuid:7d3b0a3e-0000-4000-8000-000000000001", "resource": order},
                        {"resource": given}]}
    assert _events([bundle], BISPHOSPHONATE) == [("2026-01-20", "MedicationAdministration")]


def test_unlinked_or_other_id_is_a_second_dose():
    order, given = _linked_pair("MedicationRequest/mr-2")
    assert len(_events([order, given], BISPHOSPHONATE)) == 2
    order, given = _linked_pair("MedicationRequest/mr-10")      # suffix of another id does not match
    order["id"] = "mr-1"
    assert len(_events([order, given], BISPHOSPHONATE)) == 2


def test_dispense_authorizing_prescription_links():
    order = f.request(f.DMAB60, "2026-01-01", status="completed", rid="mr-d")
    disp = f.dispense(f.DMAB60, "2026-01-15")
    disp["authorizingPrescription"] = [{"reference": "MedicationRequest/mr-d"}]
    assert _events([order, disp]) == [("2026-01-15", "MedicationDispense")]


def test_not_done_administration_does_not_link():
    """Only a counting administration makes the order the same dose (D2, A11)."""
    order, given = _linked_pair("MedicationRequest/mr-1")
    given["status"] = "not-done"
    assert _events([order, given], BISPHOSPHONATE) == [("2026-01-01", "MedicationRequest")]


def test_statement_of_injectable_ignored_when_class_has_administrations():
    adm = f.administration(f.DMAB60, "2026-01-10")
    stmt = f.statement(f.DMAB60, "2026-10-01", status="active")
    assert _events([adm, stmt]) == [("2026-01-10", "MedicationAdministration")]
    assert _events([stmt]) == [("2026-10-01", "MedicationStatement")]


def test_statement_rule_is_per_d4_drug_class():
    """A1 "that drug class": a zoledronic acid administration does not void a denosumab
    statement, and an alendronate (oral) statement is never voided."""
    zol = f.administration(f.ZOL5, "2025-01-10")
    dmab_stmt = f.statement(f.DMAB60, "2026-10-01", status="active")
    assert _events([zol, dmab_stmt]) == [("2026-10-01", "MedicationStatement")]
    aln = f.dispense(f.ALENDRONATE, "2026-01-10")
    aln_stmt = f.statement(f.ALENDRONATE, "2026-10-01", status="active")
    assert ("2026-10-01", "MedicationStatement") in _events([aln, aln_stmt], BISPHOSPHONATE)


def test_de_duplication_is_per_bisphosphonate_ingredient():
    """D4: zoledronic acid and alendronate on the same day are two classes, not one dose."""
    got = _events([f.administration(f.ZOL5, "2026-01-10"), f.dispense(f.ALENDRONATE, "2026-01-11")],
                  BISPHOSPHONATE)
    assert len(got) == 2


def test_dedupe_window_from_configuration():
    recs = [f.administration(f.DMAB60, "2026-01-10"), f.request(f.DMAB60, "2026-01-05", status="completed")]
    chart = build_chart(recs, NOW, identity=PatientIdentity(f.PID), dose_dedupe_days=6)
    assert len(chart.dose_events(DENOSUMAB)) == 1
    chart = build_chart(recs, NOW, identity=PatientIdentity(f.PID), dose_dedupe_days=5)
    assert len(chart.dose_events(DENOSUMAB)) == 2
    assert date(2026, 1, 10) in [e.date for e in chart.dose_events(DENOSUMAB)]
