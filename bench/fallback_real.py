"""The FHIR-server fallback against a real server: ``python -m bench.fallback_real``.

Starts sekmet-fhir on loopback (``scripts/sekmet_server.py``, its own virtualenv), loads one
realistic record (``--observations`` results over two years, most of them tests the service does
not read, plus medication records, conditions and procedures), then compares two ways of asking
for the laboratory results:

* ``one``: the discovery template, one Observation search with every code (about 70) and
  ``_sort=-date``;
* ``split``: the same codes in groups (calcium and albumin; kidney; vitamin D; pregnancy; the
  rest), one search each, in parallel;
* ``unsorted``: the one search without ``_sort=-date``.

For each it prints the latency of the Observation search(es) (median, p95, max over
``--rounds`` sequential reads) and, over ``--requests`` full fallback calls (``gather`` with every
key fetched, at the timeouts given), how many lost their laboratory results. Loopback only; every
loop is bounded; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import statistics
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import requests

from cds_service.chart import default_value_sets
from cds_service.prefetch import FetchSettings, gather, new_session, render_template
from cds_service.request import parse_hook_request
from hooks.services import PAGE_SIZE, services

REPO = Path(__file__).resolve().parents[1]
PID = "bench-real-1"
#: value-set groups of the split strategy (the rest of the Observation sets form one more group)
GROUPS = (("calcium-serum", "calcium-corrected", "calcium-ionized", "albumin"),
          ("egfr", "creatinine"), ("vitamin-d-25oh",), ("pregnancy-test", "pregnancy-status"))
OTHER_LOINC = ("4548-4", "2093-3", "2085-9", "13457-7", "2571-8", "718-7", "6690-2", "777-3", "2345-7",
               "2951-2", "2823-3", "2075-0", "1742-6", "1920-8", "6768-6", "1975-2", "3016-3")


def _sekmet() -> Any:
    spec = importlib.util.spec_from_file_location("sekmet_server", REPO / "scripts" / "sekmet_server.py")
    module = importlib.util.module_from_spec(spec)   # type: ignore[arg-type]
    sys.modules.setdefault("sekmet_server", module)
    spec.loader.exec_module(module)                   # type: ignore[union-attr]
    return module


def record(n_obs: int, seed: int, today: date, pid: str = PID) -> dict[str, Any]:
    """A transaction Bundle: one patient (``pid``) with ``n_obs`` Observations (a quarter of them read by
    the service), 60 medication records, 20 conditions, 10 procedures."""
    rng = random.Random(seed)
    ours = [c.code for c in default_value_sets().observation_codes()]
    read = ["17861-6", "1751-7", "98979-8", "2160-0", "62292-8"]
    subject = {"reference": f"Patient/{pid}"}
    entries: list[dict[str, Any]] = [{"resource": {"resourceType": "Patient", "id": pid, "gender": "female",
                                                   "birthDate": "1950-02-03"},
                                      "request": {"method": "PUT", "url": f"Patient/{pid}"}}]

    def put(res: dict[str, Any]) -> None:
        entries.append({"resource": res, "request": {"method": "PUT", "url": f"{res['resourceType']}/{res['id']}"}})

    for i in range(n_obs):
        code = rng.choice(read) if i % 4 == 0 else rng.choice(OTHER_LOINC)
        when = today - timedelta(days=rng.randrange(730))
        put({"resourceType": "Observation", "id": f"{pid}-obs-{i}", "status": "final", "subject": subject,
             "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
             "effectiveDateTime": when.isoformat(),
             "valueQuantity": {"value": round(rng.uniform(1, 100), 1), "unit": "1",
                               "system": "http://unitsofmeasure.org", "code": "1"}})
    for i in range(60):
        when = today - timedelta(days=rng.randrange(2555))
        put({"resourceType": "MedicationRequest", "id": f"{pid}-mr-{i}", "status": "completed", "intent": "order",
             "subject": subject, "authoredOn": when.isoformat(),
             "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                       "code": rng.choice(["197361", "314076", "993452"])}]}})
    for i in range(20):
        put({"resourceType": "Condition", "id": f"{pid}-cond-{i}", "subject": subject,
             "code": {"coding": [{"system": "http://snomed.info/sct", "code": str(38341003 + i)}]}})
    for i in range(10):
        put({"resourceType": "Procedure", "id": f"{pid}-proc-{i}", "status": "completed", "subject": subject,
             "code": {"coding": [{"system": "http://snomed.info/sct", "code": str(80146002 + i)}]}})
    assert len(ours) > 50
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def split_templates(templates: dict[str, str]) -> dict[str, str]:
    """The discovery templates with the Observation search split into value-set groups."""
    vs = default_value_sets()
    out = {k: v for k, v in templates.items() if k != "observations"}
    used: set[str] = set()
    for i, names in enumerate(GROUPS + (None,)):
        if names is None:
            codes = [c for c in vs.observation_codes() if c.code not in used]
        else:
            codes = [c for n in names for c in vs.sets.get(n, []) if c.system == "http://loinc.org"]
        used |= {c.code for c in codes}
        if codes:
            tokens = ",".join(f"{c.system}|{c.code}" for c in dict.fromkeys(codes))
            out[f"observations{i}"] = (f"Observation?patient={{{{context.patientId}}}}&code={tokens}"
                                       f"&_sort=-date&_count={PAGE_SIZE}")
    return out


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.fallback_real", description=__doc__.split("\n\n")[0])
    ap.add_argument("--observations", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=10, help="sequential reads per query for latency")
    ap.add_argument("--requests", type=int, default=10, help="full fallback calls per strategy and timeout")
    ap.add_argument("--timeouts", default="1,2;3,6", help="read,deadline pairs in seconds, ';'-separated")
    ap.add_argument("--patients", type=int, default=50,
                    help="patients in the server's store (the one measured and others like it)")
    ap.add_argument("--drain", type=float, default=15.0,
                    help="seconds to wait before each series (abandoned reads still run on the server)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)

    sekmet = _sekmet()
    server = sekmet.start()
    try:
        load = {"Authorization": f"Bearer {server.token(sekmet.LOAD_CLIENT)}",
                "Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
        t = time.perf_counter()
        for i in range(args.patients):
            pid = PID if i == 0 else f"bench-other-{i}"
            resp = requests.post(server.base_url, data=json.dumps(record(args.observations, args.seed + i,
                                                                        date.today(), pid)),
                                 headers=load, timeout=600)
            resp.raise_for_status()
        print(f"loaded {args.patients} patients of {args.observations} observations + 90 other records each "
              f"in {time.perf_counter() - t:.1f} s")
        token = server.token(sekmet.READ_CLIENT)
        body = {"hook": "patient-view", "hookInstance": str(uuid.uuid4()),
                "context": {"userId": "Practitioner/b", "patientId": PID}, "fhirServer": server.base_url,
                "fhirAuthorization": {"access_token": token, "token_type": "Bearer", "subject": "bone-cds",
                                      "scope": "system/*.read"}}
        req = parse_hook_request(body, "patient-view")
        base = services()[0].prefetch
        strategies = {"unsorted": {k: v.replace("&_sort=-date", "") for k, v in base.items()},
                      "one": base, "split": split_templates(base)}
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
        session = new_session(8)
        print("\nObservation search latency (sequential reads, seconds)")
        print(f"  {'strategy':8} {'query':14} {'median':>7} {'p95':>7} {'max':>7} {'results':>8}")
        for name, templates in strategies.items():
            for key in (k for k in templates if k.startswith("observations")):
                times, found = [], 0
                for _ in range(args.rounds):
                    t = time.perf_counter()
                    r = session.get(f"{server.base_url}/{render_template(templates[key], req)}",
                                    headers=headers, timeout=60)
                    times.append(time.perf_counter() - t)
                    found = len(r.json().get("entry") or [])
                print(f"  {name:8} {key:14} {statistics.median(times):7.3f} {_percentile(times, .95):7.3f} "
                      f"{max(times):7.3f} {found:8d}")
        print("\nFull fallback calls (every key fetched in parallel): laboratory results lost")
        for pair in args.timeouts.split(";"):
            read_timeout, deadline = (float(x) for x in pair.split(","))
            settings = FetchSettings(allowed_servers=(server.base_url,), read_timeout=read_timeout, deadline=deadline)
            for name, templates in strategies.items():
                time.sleep(args.drain)   # the server keeps working on reads we abandoned: let it finish
                lost, totals = 0, []
                for _ in range(args.requests):
                    t = time.perf_counter()
                    result = gather(templates, req, settings, session)
                    totals.append(time.perf_counter() - t)
                    lost += any(k.startswith("observations") for k in result.unavailable)
                print(f"  read {read_timeout:g} s, deadline {deadline:g} s, {name:5}: lost {lost}/{args.requests}, "
                      f"call median {statistics.median(totals):.3f} s, max {max(totals):.3f} s")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
