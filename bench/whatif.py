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
* ``cache-version``       the validation verdict cached by (type, id, meta.versionId, meta.lastUpdated)
                          across requests (upper bound: every call after the first hits)
* ``cache-content``       the same, keyed by a hash of the resource's canonical JSON (cost of hashing)
* ``gc-freeze``           ``gc.freeze()`` after warm-up (long-lived objects out of the collector's scans)
* ``orjson``              request decode with orjson instead of json (if orjson is installed)
* ``slim+gc-freeze``, ``slim+window+freeze+orjson``, ``window+cache+orjson``: combinations
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import sys
import time
from contextlib import ExitStack, contextmanager
from datetime import date, datetime, time as dtime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Iterator, Literal, Sequence

from typing_extensions import TypedDict

import cds_service.chart.chart as chart_mod
import cds_service.pipeline as pipeline
from cds_service.chart import default_value_sets, labs
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
    original = chart_mod.get_fhir_model_class

    class _Slim:
        def __init__(self, adapter: Any) -> None:
            self.model_validate = adapter.validate_python

    def lookup(rtype: str) -> Any:
        adapter = adapters.get(rtype)
        return _Slim(adapter) if adapter is not None else original(rtype)
    with patched(chart_mod, "get_fhir_model_class", lookup):
        yield


@contextmanager
def window(days: int = 365) -> Iterator[None]:
    original = pipeline.build_chart
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
    with patched(pipeline, "build_chart", build):
        yield


@contextmanager
def cached_validation(key_of: Callable[[dict, bool], Any]) -> Iterator[None]:
    original = chart_mod._validate
    cache: dict[Any, tuple[bool, Any]] = {}

    def validate(resource: dict, skipped: list, *, draft: bool = False) -> Any:
        key = key_of(resource, draft)
        hit = cache.get(key) if key is not None else None
        if hit is not None:
            ok, why = hit
            if ok:
                return chart_mod.normalise_resource(resource, draft=draft)
            skipped.append(why)
            return None
        before = len(skipped)
        out = original(resource, skipped, draft=draft)
        if key is not None:
            cache[key] = (out is not None, skipped[before] if out is None and len(skipped) > before else None)
        return out
    with patched(chart_mod, "_validate", validate):
        yield


def by_version(resource: dict, draft: bool) -> Any:
    meta = resource.get("meta") or {}
    if not resource.get("id") or not (meta.get("versionId") or meta.get("lastUpdated")):
        return None
    return (resource.get("resourceType"), resource["id"], meta.get("versionId"), meta.get("lastUpdated"), draft)


def by_content(resource: dict, draft: bool) -> Any:
    raw = json.dumps(resource, sort_keys=True, separators=(",", ":"), default=str).encode()
    return (hashlib.blake2b(raw, digest_size=16).digest(), draft)


@contextmanager
def gc_freeze() -> Iterator[None]:
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _orjson_loads() -> Callable[[bytes], Any] | None:
    try:
        import orjson
    except ImportError:
        return None
    return orjson.loads


def _enter(*factories: Callable[[], Any], use_orjson: bool = False) -> Callable[[ExitStack], bool]:
    """A variant: enter these context managers; True when the request decode is to use orjson."""
    def apply(stack: ExitStack) -> bool:
        for factory in factories:
            stack.enter_context(factory())
        return use_orjson
    return apply


VARIANTS: dict[str, Callable[[ExitStack], bool]] = {
    "baseline": _enter(),
    "no-validation": _enter(lambda: patched(chart_mod, "get_fhir_model_class", lambda t: _NoValidation)),
    "slim-schema": _enter(slim_schema),
    "window-365": _enter(lambda: window(365)),
    "cache-version": _enter(lambda: cached_validation(by_version)),
    "cache-content": _enter(lambda: cached_validation(by_content)),
    "gc-freeze": _enter(gc_freeze),
    "orjson": _enter(use_orjson=True),
    "slim+gc-freeze": _enter(slim_schema, gc_freeze),
    "slim+window+freeze+orjson": _enter(slim_schema, lambda: window(365), gc_freeze, use_orjson=True),
    "window+cache+orjson": _enter(lambda: window(365), lambda: cached_validation(by_version), use_orjson=True),
}


# ------------------------------------------------------------------ runner


def run_variant(name: str, workloads: list, now: datetime, iterations: int, time_limit: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with ExitStack() as st:
        use_orjson = VARIANTS[name](st)
        loads = (_orjson_loads() if use_orjson else None) or json.loads
        if use_orjson and loads is json.loads:
            return {"skipped": "orjson not installed"}
        for w in workloads:
            service = service_by_id(w.service_id)
            samples: list[float] = []
            cpu: list[float] = []
            for _ in range(2):   # warm-up (fills caches: the first call of a patient misses)
                pipeline.evaluate_hook(service, loads(w.body), now=now)
            started = time.monotonic()
            for i in range(iterations):
                if i >= 5 and time.monotonic() - started > time_limit:
                    break
                c0, t0 = time.thread_time(), time.perf_counter()
                response = pipeline.evaluate_hook(service, loads(w.body), now=now).response
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
