"""What-if experiments for the proposals of issue "Speed": ``python -m bench.whatif``.

Each variant changes the service *in this process only* (monkeypatching, undone afterwards; no
project file is touched) and measures the in-process total (decode + evaluate_hook + encode) on the
same workloads, so the proposals can be ranked by measured gain rather than by guess:

* ``baseline``            the code as it is
* ``no-validation``       fhir.resources validation skipped entirely: the lower bound of our own code
* ``slim-schema``         every resource validated by a pydantic TypeAdapter over a TypedDict of only the
                          elements the chart reads (a prototype of "validate what you read")
* ``window-365``          Observations older than 365 days (the longest lab look-back of RULES.md D10)
                          dropped before the chart, except the newest per lab concept ("stale" mentions)
* ``cache-warm``          the service's own ``VerdictCache`` (R4B verdicts memoised by content digest),
                          warm: every call after the first is a repeat call on the same patient
* ``gc-freeze``           ``gc.freeze()`` after warm-up (long-lived objects out of the collector's scans)
* ``stdlib-json``         request decode with the standard library's json instead of orjson (jsonio)
* ``slim+gc-freeze``, ``slim+window+freeze``, ``window+cache``: combinations
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from contextlib import ExitStack, contextmanager
from datetime import date, datetime, time as dtime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Iterator, Literal, Sequence

from typing_extensions import TypedDict

import cds_service.chart.verdicts as verdicts_mod
import cds_service.pipeline as pipeline
import hooks.evaluation as evaluation
from cds_service.chart import default_value_sets, labs
from cds_service import jsonio
from cds_service.chart.verdicts import VerdictCache
from hooks.services import service_by_id

from .stats import summary_ms
from .workload import DEFAULT_SEED, build_workloads

# ------------------------------------------------------------------ patches


@contextmanager
def patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


class _NoValidation:
    @staticmethod
    def model_validate(data: Any) -> None:
        return None


def _slim_types() -> dict[str, Any]:
    """TypedDicts of only the elements cds_service/chart reads, per resource type."""
    from pydantic import TypeAdapter

    class Coding(TypedDict, total=False):
        system: str
        code: str
        display: str

    class Concept(TypedDict, total=False):
        coding: list[Coding]
        text: str

    class Quantity(TypedDict, total=False):
        value: Decimal
        unit: str
        system: str
        code: str
        comparator: Literal["<", "<=", ">=", ">"]

    class Reference(TypedDict, total=False):
        reference: str
        display: str

    class Period(TypedDict, total=False):
        start: str
        end: str

    class Repeat(TypedDict, total=False):
        frequency: int
        period: Decimal
        periodUnit: Literal["s", "min", "h", "d", "wk", "mo", "a"]

    class Timing(TypedDict, total=False):
        repeat: Repeat

    class DoseAndRate(TypedDict, total=False):
        doseQuantity: Quantity

    class Dosage(TypedDict, total=False):
        text: str
        timing: Timing
        route: Concept
        doseAndRate: list[DoseAndRate]
        dose: Quantity

    class Range(TypedDict, total=False):
        low: Quantity
        high: Quantity
        text: str

    class Observation(TypedDict, total=False):
        resourceType: Literal["Observation"]
        id: str
        status: Literal["registered", "preliminary", "final", "amended", "corrected", "cancelled",
                        "entered-in-error", "unknown"]
        code: Concept
        effectiveDateTime: str
        effectivePeriod: Period
        issued: str
        valueQuantity: Quantity
        valueString: str
        valueCodeableConcept: Concept
        interpretation: list[Concept]
        referenceRange: list[Range]

    class Medication(TypedDict, total=False):
        resourceType: str
        id: str
        status: str
        intent: str
        medicationCodeableConcept: Concept
        medicationReference: Reference
        subject: Reference
        authoredOn: str
        effectiveDateTime: str
        effectivePeriod: Period
        whenHandedOver: str
        dosageInstruction: list[Dosage]
        dosage: Any
        daysSupply: Quantity
        reasonCode: list[Concept]
        statusReason: Any

    class Clinical(TypedDict, total=False):
        resourceType: str
        id: str
        status: str
        code: Concept
        clinicalStatus: Concept
        verificationStatus: Concept
        onsetDateTime: str
        recordedDate: str
        abatementDateTime: str
        performedDateTime: str
        performedPeriod: Period

    class Patient(TypedDict, total=False):
        resourceType: Literal["Patient"]
        id: str
        gender: Literal["male", "female", "other", "unknown"]
        birthDate: str

    med = TypeAdapter(Medication)
    clin = TypeAdapter(Clinical)
    return {"Observation": TypeAdapter(Observation), "Patient": TypeAdapter(Patient), "Condition": clin,
            "Procedure": clin, "MedicationRequest": med, "MedicationAdministration": med,
            "MedicationStatement": med, "MedicationDispense": med}


@contextmanager
def slim_schema() -> Iterator[None]:
    adapters = _slim_types()
    original = verdicts_mod.get_fhir_model_class

    class _Slim:
        def __init__(self, adapter: Any) -> None:
            self.model_validate = adapter.validate_python

    def lookup(rtype: str) -> Any:
        adapter = adapters.get(rtype)
        return _Slim(adapter) if adapter is not None else original(rtype)
    with patched(verdicts_mod, "get_fhir_model_class", lookup):
        yield


@contextmanager
def window(days: int = 365) -> Iterator[None]:
    original = evaluation.build_chart   # the chart the rules read (hooks.evaluation.assess)
    vs = default_value_sets()

    def build(resources: Any, now: datetime, **kw: Any) -> Any:
        cutoff = now.date() - timedelta(days=days)
        keep: list[dict] = []
        newest: dict[str, tuple[date, dict]] = {}
        for r in resources:
            if isinstance(r, dict) and r.get("resourceType") == "Observation":
                when = labs.observation_date(r)
                concept = labs.observation_concept(r, vs)
                if when is not None and when < cutoff and concept is not None:
                    if concept[0] not in newest or newest[concept[0]][0] < when:
                        newest[concept[0]] = (when, r)
                    continue
            keep.append(r)
        keep.extend(r for _, r in newest.values())
        return original(keep, now, **kw)
    with patched(evaluation, "build_chart", build):
        yield


@contextmanager
def gc_freeze() -> Iterator[None]:
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _enter(*factories: Callable[[], Any], stdlib_json: bool = False,
           cache: bool = False) -> Callable[[ExitStack], tuple[bool, bool]]:
    """A variant: enter these context managers; (decode with the stdlib json?, pass a VerdictCache?)."""
    def apply(stack: ExitStack) -> tuple[bool, bool]:
        for factory in factories:
            stack.enter_context(factory())
        return stdlib_json, cache
    return apply


VARIANTS: dict[str, Callable[[ExitStack], tuple[bool, bool]]] = {
    "baseline": _enter(),
    "no-validation": _enter(lambda: patched(verdicts_mod, "get_fhir_model_class", lambda t: _NoValidation)),
    "slim-schema": _enter(slim_schema),
    "window-365": _enter(lambda: window(365)),
    "cache-warm": _enter(cache=True),
    "gc-freeze": _enter(gc_freeze),
    "stdlib-json": _enter(stdlib_json=True),
    "slim+gc-freeze": _enter(slim_schema, gc_freeze),
    "slim+window+freeze": _enter(slim_schema, lambda: window(365), gc_freeze),
    "window+cache": _enter(lambda: window(365), cache=True),
}


# ------------------------------------------------------------------ runner


def run_variant(name: str, workloads: list, now: datetime, iterations: int, time_limit: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with ExitStack() as st:
        stdlib_json, cache = VARIANTS[name](st)
        verdicts = VerdictCache() if cache else None
        loads = json.loads if stdlib_json else jsonio.loads
        for w in workloads:
            service = service_by_id(w.service_id)
            samples: list[float] = []
            cpu: list[float] = []
            for _ in range(2):   # warm-up (fills caches: the first call of a patient misses)
                pipeline.evaluate_hook(service, loads(w.body), now=now, verdicts=verdicts)
            started = time.monotonic()
            for i in range(iterations):
                if i >= 5 and time.monotonic() - started > time_limit:
                    break
                c0, t0 = time.thread_time(), time.perf_counter()
                response = pipeline.evaluate_hook(service, loads(w.body), now=now, verdicts=verdicts).response
                json.dumps(response, separators=(",", ":"), ensure_ascii=False)
                samples.append(time.perf_counter() - t0)
                cpu.append(time.thread_time() - c0)
            s, c = summary_ms(samples), summary_ms(cpu)
            out[w.name] = {"median": s["median"], "p95": s["p95"], "cpu_median": c["median"], "cpu_p95": c["p95"],
                           "n": s["n"], "cards": len(response["cards"])}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.whatif", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--hooks", default="patient-view,order-sign")
    p.add_argument("--iterations", type=int, default=60)
    p.add_argument("--time-per-case", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    names = [v for v in args.variants.split(",") if v]
    unknown = set(names) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variants: {', '.join(sorted(unknown))}")
    anchor = datetime.now(timezone.utc).date()
    now = datetime.combine(anchor, dtime(12), tzinfo=timezone.utc)
    workloads = build_workloads(args.seed, anchor, hooks=[h for h in args.hooks.split(",") if h])
    results: dict[str, Any] = {}
    for name in names:
        print(f"  what-if: {name} ...", file=sys.stderr, flush=True)
        results[name] = run_variant(name, workloads, now, max(1, min(args.iterations, 10_000)),
                                    max(0.5, min(args.time_per_case, 600.0)))
    base = results.get("baseline", {})
    cols = [w.name for w in workloads]
    print("In-process cost per call (decode + evaluate_hook + encode), ms of this thread's CPU time: median / p95 "
          "(speed-up of the median vs baseline); wall-clock medians in the JSON")
    print(f"  {'variant':27}" + "".join(f"{c:>30}" for c in cols))
    for name, r in results.items():
        if "skipped" in r:
            print(f"  {name:27}  skipped: {r['skipped']}")
            continue
        cells = []
        for c in cols:
            x = r[c]
            speed = f"({base[c]['cpu_median'] / x['cpu_median']:.1f}x)" if c in base else ""
            cells.append(f"{x['cpu_median']:8.1f} /{x['cpu_p95']:7.1f} {speed:>8}")
        print(f"  {name:27}" + "".join(f"{cell:>30}" for cell in cells))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
