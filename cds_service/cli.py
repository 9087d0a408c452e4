"""``bone-cds``: ``serve`` (gunicorn), ``evaluate`` (one request offline), ``sweep`` (a population
worklist from a FHIR Bulk Data export), ``feedback-report``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from .config import ConfigError, Settings
from .errors import ApiError


def _now(value: str | None) -> datetime:
    if not value:
        return datetime.now(timezone.utc)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SystemExit(f"bone-cds: --now must be an ISO date or date-time, got {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(hour=parsed.hour or 12, tzinfo=timezone.utc)
    return parsed


def gunicorn_server(app: Any, *, host: str, port: int, workers: int, threads: int,
                    max_body_bytes: int = 10 * 1024 * 1024, request_read_timeout: float | None = None,
                    child_exit: Any = None) -> Any:
    """A gunicorn application serving the WSGI ``app`` on uvicorn workers (an event loop per
    worker: slow or idle clients hold no thread, :mod:`cds_service.asgi`); ``threads`` evaluate
    complete requests; ``request_read_timeout``: seconds a client has to send a whole request
    (default :data:`cds_service.asgi.DEFAULT_REQUEST_READ_TIMEOUT`); ``child_exit``: gunicorn's
    hook when a worker exits. ``.run()`` blocks until stopped."""
    from gunicorn.app.base import BaseApplication

    from .asgi import DEFAULT_REQUEST_READ_TIMEOUT, BufferedWsgi, service_worker
    child = app.config.get("FEEDBACK_PROCESS") if hasattr(app, "config") else None
    # each worker starts its feedback child (issue 12) as it starts, and ends it as it stops
    asgi_app = BufferedWsgi(app, max_body_bytes=max_body_bytes, threads=threads,
                            on_startup=child.start if child is not None else None,
                            on_shutdown=child.shutdown if child is not None else None)
    worker_class = service_worker(request_read_timeout or DEFAULT_REQUEST_READ_TIMEOUT)

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("worker_class", worker_class)
            self.cfg.set("timeout", 30)
            self.cfg.set("graceful_timeout", 10)
            self.cfg.set("accesslog", None)
            self.cfg.set("errorlog", "-")
            # gunicorn's control socket defaults to one path per user (~/.gunicorn/gunicorn.ctl):
            # two instances would share it and stopping one removes the other's (issue 12)
            if "control_socket_disable" in self.cfg.settings:
                self.cfg.set("control_socket_disable", True)
            if child_exit is not None:
                self.cfg.set("child_exit", child_exit)

        def load(self) -> Any:
            return asgi_app

    return _Server()


def _prepare_metrics_dir(env: dict[str, str]) -> None:
    """``PROMETHEUS_MULTIPROC_DIR`` for ``/metrics`` under several workers (issue 16): the one
    set, else ``<data dir>/prometheus``; emptied of an earlier run's files. Must run before
    prometheus-client is imported: it picks its multiprocess mode at import."""
    path = Path(env.get("PROMETHEUS_MULTIPROC_DIR") or Path(env.get("BONE_CDS_DATA_DIR") or "data") / "prometheus")
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    env["PROMETHEUS_MULTIPROC_DIR"] = os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the app under gunicorn (production WSGI server) with ``create_app`` as the factory."""
    env = dict(os.environ)
    _prepare_metrics_dir(env)   # before prometheus-client is imported (by the app)
    from .app import create_app
    from .metrics import mark_worker_dead

    if args.workers > 1 and not (env.get("BONE_CDS_REPLAY_DB") or "").strip():
        # SEC-10: with several workers the jti replay store must be shared, so it is by default:
        # a SQLite file in the data folder (issue 12: Docker's 2 workers accepted a jti twice)
        data_dir = Path(env.get("BONE_CDS_DATA_DIR") or "data")
        data_dir.mkdir(parents=True, exist_ok=True)
        env["BONE_CDS_REPLAY_DB"] = str(data_dir / "replay.sqlite3")
        logging.getLogger("cds_service.auth").info(
            "%d workers: the JWT replay store is shared by them (BONE_CDS_REPLAY_DB=%s)",
            args.workers, env["BONE_CDS_REPLAY_DB"])
    settings = Settings.from_env(env)
    app = create_app(settings, served=True)
    from .warmup import warm_up
    warm_up()  # before the workers fork: they inherit loaded models and a frozen GC
    auth = settings.auth
    if args.workers > 1 and auth is not None and getattr(auth, "enabled", False) and not auth.replay_db:
        # SEC-10: each worker would keep its own seen-jti set, so a token replayed to another
        # worker would be accepted once more.
        logging.getLogger("cds_service.auth").warning(
            "BONE_CDS_AUTH=jwt with %d workers but no BONE_CDS_REPLAY_DB: each worker remembers "
            "only its own JWT ids, so a replayed token can be accepted once per worker; set "
            "BONE_CDS_REPLAY_DB to a file path shared by the workers (or use --workers 1)",
            args.workers, extra={"event": {"workers": args.workers, "check": "jti-replay"}})

    print(f"bone-cds {args.host}:{args.port}: discovery at http://{args.host}:{args.port}/cds-services",
          file=sys.stderr)
    gunicorn_server(app, host=args.host, port=args.port, workers=args.workers, threads=args.threads,
                    max_body_bytes=settings.max_body_bytes, request_read_timeout=settings.request_read_timeout,
                    child_exit=lambda _server, worker: mark_worker_dead(worker.pid)).run()
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Run one hook request file offline and print the response JSON (no server, no network
    unless the file names an allowed fhirServer)."""
    from hooks.services import services

    from .pipeline import run_hook

    try:
        body = json.loads(Path(args.request).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"bone-cds: cannot read {args.request}: {exc}", file=sys.stderr)
        return 2
    hook = body.get("hook") if isinstance(body, dict) else None
    service = next((s for s in services() if s.hook == hook), None)
    if args.service:
        service = next((s for s in services() if s.id == args.service), None)
    if service is None:
        print(f"bone-cds: no service for hook {hook!r}", file=sys.stderr)
        return 2
    now_text = args.now
    scenario = body.get("extension", {}).get("org.bone-safety-cds.scenario", {}) \
        if isinstance(body.get("extension"), dict) else {}
    if not now_text and isinstance(scenario, dict) and isinstance(scenario.get("now"), str):
        now_text = scenario["now"]
        print(f"bone-cds: evaluating at the fixture's date {now_text} (--now to change)", file=sys.stderr)
    settings = Settings.from_env()
    try:
        response = run_hook(service, body, now=_now(now_text), settings=settings)
    except ApiError as exc:
        print(json.dumps({"status": exc.status, **exc.body()}, indent=2))
        return 1
    response = settings.profile.shape(response)   # BONE_CDS_EHR_PROFILE=epic shows Epic's wire form
    print(json.dumps(response, indent=2, ensure_ascii=False))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """The patient-view rules over every patient of a Bulk Data export, as of a date (issue 15)."""
    from datetime import date, time as dtime

    from sweep import local, progress

    try:
        as_of = date.fromisoformat(args.as_of)
    except ValueError:
        print(f"bone-cds: --as-of must be a date YYYY-MM-DD, got {args.as_of!r}", file=sys.stderr)
        return 2
    if args.workers is not None and args.workers < 1:
        print("bone-cds: --workers must be at least 1", file=sys.stderr)
        return 2
    if (args.input is None) == (args.export is None):
        print("bone-cds: give either INPUT (a folder of NDJSON files) or --export FHIR_BASE", file=sys.stderr)
        return 2
    thresholds = Settings.from_env().thresholds
    # A37: the as-of date is "today"; the whole day counts (its last second in the clock zone)
    now = datetime.combine(as_of, dtime(23, 59, 59), tzinfo=thresholds.zone)
    shown = progress.for_stream(sys.stderr, args.quiet)
    exported = None
    if args.export is not None:
        exported = _export(args, as_of.isoformat())
        if isinstance(exported, int):
            return exported
        args.input = str(exported.folder)
    try:
        if args.engine == "spark":
            try:
                from sweep import spark
            except ImportError:
                print("bone-cds: --engine spark needs PySpark: pip install '.[spark]' (and a Java runtime)",
                      file=sys.stderr)
                return 2
            s = spark.run(Path(args.input), Path(args.out), now=now, thresholds=thresholds,
                          master=args.master, progress=shown)
        else:
            s = local.run(Path(args.input), Path(args.out), now=now, thresholds=thresholds,
                          workers=args.workers, progress=shown)
    except FileNotFoundError as exc:
        print(f"bone-cds: {exc}", file=sys.stderr)
        return 2
    if exported is not None:
        from sweep.output import write_summary
        s["export"] = exported.summary
        write_summary(s, Path(args.out))
        errors = sum(exported.summary["errors"]["issues"].values())
        if errors:
            print(f"bone-cds sweep: the server reported {errors:,} export issue(s) "
                  f"({', '.join(f'{k}: {v}' for k, v in exported.summary['errors']['issues'].items())}); "
                  "see export.errors in summary.json", file=sys.stderr)
    print(f"bone-cds sweep: {s['resources_read']:,} resources from {len(s['files'])} file(s) in "
          f"{s['seconds']:.1f}s ({s['resources_per_second'] or 0:,}/s); {s['patients_seen']:,} patients, "
          f"{s['patients_evaluated']:,} evaluated, {s['patients_deceased_not_evaluated']:,} deceased not "
          f"evaluated; {s['findings']:,} findings; {s['rejected']['count']:,} lines rejected; "
          f"worklist: {s['worklist']['csv']}", file=sys.stderr)
    if args.tasks:
        from sweep.output import write_tasks
        print(f"bone-cds sweep: FHIR Tasks: {write_tasks(Path(args.out), s['as_of'])}", file=sys.stderr)
    if s["patients_failed"]["count"]:
        print(f"bone-cds sweep: the evaluation of {s['patients_failed']['count']:,} patient(s) failed "
              "(a bug: they have no rows); see patients_failed in summary.json", file=sys.stderr)
        return 1
    return 0


def _export(args: argparse.Namespace, as_of: str) -> Any:
    """``--export``: the Bulk Data export downloaded into OUT/export (:mod:`sweep.bulk_export`);
    an exit code when it could not be had."""
    from sweep.bulk_export import ExportCancelled, ExportError, ExportSettings, export

    missing = [name for name, value in (("--client-id", args.client_id), ("--key", args.key)) if not value]
    if missing:
        print(f"bone-cds: --export needs {' and '.join(missing)}", file=sys.stderr)
        return 2
    if args.download_workers < 1 or args.export_timeout <= 0 or args.max_file_mb <= 0:
        print("bone-cds: --download-workers, --export-timeout and --max-file-mb must be positive", file=sys.stderr)
        return 2
    settings = ExportSettings(workers=min(args.download_workers, 16), timeout=args.export_timeout,
                              max_file_bytes=int(args.max_file_mb * 1024 * 1024),
                              allow_origins=tuple(args.allow_origin or ()))

    def say(text: str) -> None:
        if not args.quiet:
            print(f"sweep: {text}", file=sys.stderr, flush=True)
    try:
        return export(args.export, Path(args.out), client_id=args.client_id, key_path=Path(args.key),
                      token_url=args.token_url, kid=args.kid, scope=args.scope, group=args.group,
                      patients=args.patients, type_filter=not args.no_type_filter, restart=args.restart,
                      as_of=as_of, settings=settings, say=say)
    except ExportCancelled:
        print("bone-cds: export cancelled (the server was asked to delete it); the next run starts a new one",
              file=sys.stderr)
        return 130
    except ExportError as exc:
        tail = "" if exc.resumable else " (not resumable: the next run starts a new export)"
        print(f"bone-cds: export: {exc}{tail}", file=sys.stderr)
        return 1


def cmd_jwks(args: argparse.Namespace) -> int:
    """The public JWK Set of a private key: what is registered with the FHIR server's
    authorisation server for ``sweep --export`` (SMART Backend Services)."""
    from sweep.smart_backend import AuthError, ClientKey

    try:
        key = ClientKey.load(Path(args.key), args.kid)
    except AuthError as exc:
        print(f"bone-cds: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(key.jwks(), indent=2))
    return 0


def cmd_feedback_report(args: argparse.Namespace) -> int:
    """Per rule: cards shown, accepted, overridden, top override reasons; then the feedback for
    cards this service never issued (per tenant when tenants sent it)."""
    from .feedback import NO_TENANT, FeedbackStore, FeedbackStoreError

    settings = Settings.from_env()
    try:
        store = FeedbackStore(settings.feedback_path)
    except FeedbackStoreError as exc:
        print(f"bone-cds: {exc}", file=sys.stderr)
        return 2
    if args.html:
        from .governance.page import render_page
        from .governance.report import build_report
        try:
            report = build_report(store, now=datetime.now(timezone.utc), days=args.days,
                                  codes_path=settings.value_sets_path)
            Path(args.html).write_text(render_page(report, links=False), encoding="utf-8")
        except OSError as exc:
            print(f"bone-cds: cannot write {args.html}: {exc}", file=sys.stderr)
            return 2
        finally:
            store.close()
        print(f"bone-cds: governance report ({args.days} days) written to {args.html}", file=sys.stderr)
        return 0
    try:
        report = store.report(args.since)
    except ValueError as exc:
        print(f"bone-cds: --since: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{'rule':34} {'shown':>6} {'accepted':>9} {'overridden':>11}  top override reasons")
    for r in report["rules"]:
        reasons = ", ".join(f"{x['code']} ({x['count']})" for x in r["top_override_reasons"])
        print(f"{r['rule']:34} {r['shown']:>6} {r['accepted']:>9} {r['overridden']:>11}  {reasons}")
    unknown = report["unknown_cards"]
    print(f"feedback for unknown cards: {unknown['feedback']} (on {unknown['cards']} card ids this service never issued)")
    if len(unknown["by_tenant"]) > 1 or set(unknown["by_tenant"]) - {NO_TENANT}:
        for tenant, u in unknown["by_tenant"].items():
            print(f"  {tenant}: {u['feedback']} ({u['cards']} cards)")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    """Validate a tenants file without starting the service (exit 2 with file, key and reason)."""
    from .auth import ConfigError as AuthConfigError
    from .tenants import load_tenants

    try:
        tenants = load_tenants(args.file)
    except AuthConfigError as exc:
        print(f"bone-cds: {exc}", file=sys.stderr)
        return 2
    print(f"{args.file}: {len(tenants.by_issuer)} tenants, valid")
    for t in tenants.by_issuer.values():
        print(f"  {t.name}: iss {t.issuer}, profile {t.profile.name}, {len(t.fhir_servers)} FHIR server(s), "
              f"time zone {t.thresholds.clock_time_zone}, sub {'checked' if t.expected_sub else 'not checked'}")
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    """The rule reference: a table, or docs/rules.md with --markdown."""
    from .rules_doc import markdown, rule_docs

    if args.markdown:
        sys.stdout.write(markdown())
        return 0
    for d in rule_docs():
        print(f"{d.id:34} {','.join(d.hooks):38} {','.join(d.indicators)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bone-cds", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the CDS Hooks service (gunicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=2)
    serve.add_argument("--threads", type=int, default=4)
    serve.set_defaults(func=cmd_serve)
    ev = sub.add_parser("evaluate", help="run one hook request offline and print the response")
    ev.add_argument("request", help="a CDS Hooks request JSON file")
    ev.add_argument("--now", help="evaluation date or date-time (ISO 8601); default: the fixture's "
                    "date when the request carries one (its scenario extension), else now (UTC)")
    ev.add_argument("--service", help="service id (default: the service of the request's hook)")
    ev.set_defaults(func=cmd_evaluate)
    sw = sub.add_parser(
        "sweep", help="run the patient-view rules over a FHIR Bulk Data export and write a worklist",
        description="Run the patient-view rules over every patient of a FHIR Bulk Data export (a folder "
                    "of NDJSON files, gzip accepted) as of a date; write OUT/worklist.csv, "
                    "OUT/worklist.ndjson, OUT/summary.json and OUT/rejected.ndjson. Example: "
                    "bone-cds sweep fixtures/bulk --as-of 2026-11-23 --out build/sweep")
    sw.add_argument("input", nargs="?", help="folder of Bulk Data NDJSON files (Type.ndjson, Type.2.ndjson, "
                    "Type.1.ndjson.gz), or one NDJSON file (or --export)")
    sw.add_argument("--as-of", required=True, help="the date the worklist is for (YYYY-MM-DD): today")
    sw.add_argument("--out", required=True, help="folder for the worklist and the summary")
    sw.add_argument("--engine", choices=["local", "spark"], default="local",
                    help="local: partitions on disk, a process pool (default); spark: Apache Spark "
                    "(PySpark, the 'spark' extra)")
    sw.add_argument("--master", default="local[*]",
                    help="Spark master URL with --engine spark (default: local[*], embedded)")
    sw.add_argument("--workers", type=int, help="processes evaluating patients (default: the CPU count)")
    sw.add_argument("--tasks", action="store_true",
                    help="also write OUT/tasks.ndjson: one FHIR R4 Task per row, to load into an EHR worklist")
    sw.add_argument("--quiet", action="store_true", help="no progress output (the final line is kept)")
    ex = sw.add_argument_group(
        "--export", "run a FHIR Bulk Data export first (SMART Backend Services), into OUT/export; the same "
        "command run again resumes it (OUT/export-state.json); Ctrl-C cancels it (DELETE on the server)")
    ex.add_argument("--export", metavar="FHIR_BASE", help="the FHIR server's base URL (https; http on loopback)")
    ex.add_argument("--client-id", help="the backend-services client id registered with the server")
    ex.add_argument("--key", metavar="KEY.pem", help="the client's private key (PEM; RSA → RS384, EC P-384 → ES384)")
    ex.add_argument("--kid", help="the key's id in the registered JWK Set (default: its RFC 7638 thumbprint, "
                    "as 'bone-cds jwks' prints it)")
    ex.add_argument("--token-url", help="the token endpoint (default: from FHIR_BASE/.well-known/smart-configuration)")
    ex.add_argument("--scope", default="system/*.read",
                    help="scopes asked for (default system/*.read; 'per-type': system/{Type}.read per type read; "
                         "add a delete scope where the server wants one to cancel a job, e.g. "
                         "\"system/*.read system/*.d\" for sekmet-fhir)")
    level = ex.add_mutually_exclusive_group()
    level.add_argument("--group", metavar="ID", help="export the members of Group/ID (Group/ID/$export)")
    level.add_argument("--patients", action="store_true", help="export every patient (Patient/$export) "
                       "instead of the whole system ($export)")
    ex.add_argument("--no-type-filter", action="store_true",
                    help="never send _typeFilter (by default only the Observation codes the rules read are asked "
                    "for; a server that refuses it is asked again without)")
    ex.add_argument("--allow-origin", action="append", metavar="URL",
                    help="another origin the manifest's files may be fetched from (repeatable); the token goes "
                    "there only when the manifest says requiresAccessToken")
    ex.add_argument("--download-workers", type=int, default=4, help="files downloaded in parallel (default 4, at most 16)")
    ex.add_argument("--export-timeout", type=float, default=24 * 3600.0,
                    help="seconds this run waits for the export and its files (default 86400); a rerun resumes")
    ex.add_argument("--max-file-mb", type=float, default=64 * 1024.0,
                    help="largest file accepted, in MiB (default 65536)")
    ex.add_argument("--restart", action="store_true",
                    help="discard the export OUT holds (deleting it on the server) and start a new one")
    sw.set_defaults(func=cmd_sweep)
    jw = sub.add_parser("jwks", help="print the public JWK Set of a private key (to register for sweep --export)")
    jw.add_argument("key", metavar="KEY.pem")
    jw.add_argument("--kid", help="the kid to give it (default: its RFC 7638 thumbprint)")
    jw.set_defaults(func=cmd_jwks)
    fr = sub.add_parser("feedback-report", help="feedback per rule (alert-fatigue review)")
    fr.add_argument("--since", help="only feedback received on or after this ISO date")
    fr.add_argument("--json", action="store_true")
    fr.add_argument("--html", metavar="FILE", help="write the governance report page (GET /admin/report) "
                    "as a static HTML file instead")
    fr.add_argument("--days", type=int, choices=(7, 30, 90), default=30, help="window of --html (default 30)")
    fr.set_defaults(func=cmd_feedback_report)
    cfg = sub.add_parser("config", help="configuration tools")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    check = cfg_sub.add_parser("check", help="validate a tenants file (BONE_CDS_TENANTS) without starting")
    check.add_argument("file", help="a tenants TOML file")
    check.set_defaults(func=cmd_config_check)
    rules = sub.add_parser("rules", help="list the rules (--markdown: docs/rules.md)")
    rules.add_argument("--markdown", action="store_true")
    rules.set_defaults(func=cmd_rules)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"bone-cds: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
