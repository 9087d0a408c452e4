"""Where the in-process time goes: ``python -m bench.profiling [--patient heavy] [--hook order-sign]``.

Runs one workload ``--iterations`` times under cProfile (after a warm-up call) and prints the top
functions by cumulative and by own time, then a split of the time into buckets: pydantic /
fhir.resources validation, our chart code, JSON, the rules. With ``--pyinstrument`` (if installed)
prints a pyinstrument call tree instead.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import time
from datetime import date, datetime, time as dtime, timezone
from typing import Sequence

from cds_service import jsonio
from cds_service.chart.verdicts import VerdictCache
from hooks.services import service_by_id

from .workload import DEFAULT_SEED, HOOKS, build_workloads

#: (bucket, substring of the profiled function's file path), first match wins
BUCKETS = (
    ("pydantic / pydantic-core", "/pydantic"),
    ("fhir.resources / fhir_core (models, validators)", "/fhir"),
    ("json", "/json/"),
    ("our chart (cds_service/chart)", "/cds_service/chart/"),
    ("our pipeline/prefetch/request", "/cds_service/"),
    ("rules and cards", "/cards/"),
)


def buckets(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Own (tottime) seconds per bucket; built-ins are charged to their caller's bucket."""
    totals: dict[str, float] = {}
    raw = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, func), (_cc, _nc, tt, _ct, callers) in raw.items():
        name = _bucket(filename)
        if name is None and callers:      # a built-in (e.g. model_validate's Rust core): charge the callers
            share = {}
            for (cfile, _cl, _cf), cstat in callers.items():
                share[_bucket(cfile) or "other"] = share.get(_bucket(cfile) or "other", 0.0) + cstat[2]
            whole = sum(share.values()) or 1.0
            for b, t in share.items():
                totals[b] = totals.get(b, 0.0) + tt * t / whole
            continue
        totals[name or "other"] = totals.get(name or "other", 0.0) + tt
    return sorted(totals.items(), key=lambda kv: -kv[1])


def _bucket(filename: str) -> str | None:
    if filename.startswith("~") or filename.startswith("<"):
        return None
    for name, needle in BUCKETS:
        if needle in filename:
            return name
    return "other"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profiling", description=__doc__)
    p.add_argument("--patient", default="heavy", choices=("typical", "heavy"))
    p.add_argument("--hook", default="order-sign", choices=HOOKS)
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--anchor", default=None)
    p.add_argument("--pyinstrument", action="store_true")
    p.add_argument("--variant", default="baseline",
                   help="profile under a what-if variant of bench.whatif (e.g. no-validation)")
    args = p.parse_args(argv)
    anchor = date.fromisoformat(args.anchor) if args.anchor else datetime.now(timezone.utc).date()
    now = datetime.combine(anchor, dtime(12), tzinfo=timezone.utc)
    (w,) = build_workloads(args.seed, anchor, patients=[args.patient], hooks=[args.hook])
    service = service_by_id(w.service_id)
    n = max(1, min(args.iterations, 10_000))

    from contextlib import ExitStack

    from . import whatif
    if args.variant not in whatif.VARIANTS:
        p.error(f"--variant: one of {', '.join(whatif.VARIANTS)}")
    with ExitStack() as stack:
        _stdlib_json, cache = whatif.VARIANTS[args.variant](stack)
        return _profile(args, w, service, now, n, VerdictCache() if cache else None)


def _profile(args: argparse.Namespace, w, service, now: datetime, n: int,  # noqa: ANN001
             verdicts: VerdictCache | None = None) -> int:
    import cds_service.pipeline as pipeline

    def work() -> None:
        for _ in range(n):
            body = jsonio.loads(w.body)
            json.dumps(pipeline.evaluate_hook(service, body, now=now, verdicts=verdicts).response)

    pipeline.evaluate_hook(service, jsonio.loads(w.body), now=now, verdicts=verdicts)   # warm-up (imports, model classes)
    if args.pyinstrument:
        from pyinstrument import Profiler
        prof = Profiler(interval=0.0005)
        prof.start()
        work()
        prof.stop()
        print(prof.output_text(unicode=True, color=False, show_all=False))
        return 0
    t0 = time.perf_counter()
    work()
    plain = (time.perf_counter() - t0) / n
    profiler = cProfile.Profile()
    profiler.enable()
    work()
    profiler.disable()
    s = io.StringIO()
    stats = pstats.Stats(profiler, stream=s)
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    print(f"{w.name} ({args.variant}): {n} iterations, {plain * 1000:.1f} ms per call unprofiled, "
          f"{total / n * 1000:.1f} ms per call under cProfile\n")
    print("Own time by bucket (built-ins charged to their callers):")
    for name, t in buckets(stats):
        print(f"  {t / total * 100:5.1f}%  {t / n * 1000:7.2f} ms/call  {name}")
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)
    print(s.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
