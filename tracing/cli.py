"""``checkin serve-tracing | sink | rules | schema | status | backfill | report``: the tracing side's
processes and tools. Commands import what they run when they run, so ``checkin`` starts fast."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from checkin.platform.settings import Settings

log = logging.getLogger("tracing.cli")


def _check_choices(settings: Settings, workers: str) -> None:
    """The rule kinds and worker names the settings pick, checked before any process starts (a
    :class:`SettingsError`, which ``checkin`` prints as one line)."""
    from tracing.rules.kinds import enabled_kinds
    from tracing.workers import worker_names

    enabled_kinds(settings)
    worker_names(workers)


def cmd_serve_tracing(args: argparse.Namespace, settings: Settings) -> int:
    from checkin.platform.secrets import get_settings
    from checkin.platform.serve import serve

    _check_choices(settings, args.workers or settings.tracing_workers)

    if args.workers:
        # the app reads its settings in granian's worker process: hand the choice over there
        os.environ["CHECKIN_TRACING_WORKERS"] = args.workers
        get_settings.cache_clear()
        settings = get_settings()
    return serve("tracing.app:create_app", settings, settings.tracing_port, 1)


def _run_workers(settings: Settings, names: list[str]) -> int:
    from tracing.workers import run_standalone

    _check_choices(settings, ",".join(names))

    return asyncio.run(run_standalone(settings, names))


def cmd_sink(args: argparse.Namespace, settings: Settings) -> int:
    if settings.embedded_clickhouse:
        log.info(
            "sink on the embedded engine: no other process may open %s", settings.effective_clickhouse_dsn
        )
    return _run_workers(settings, ["sink"])


def cmd_rules(args: argparse.Namespace, settings: Settings) -> int:
    return _run_workers(settings, ["rules", "escalation"])


async def _status(settings: Settings) -> int:
    from checkin.platform.redis_conn import connect, redacted
    from checkin.platform.redis_keys import RedisKeys
    from tracing.streams.gauges import stream_stats

    where = redacted(settings.redis_url)
    try:
        client = await connect(settings, attempts=2)
    except ConnectionError:
        print(f"nothing is running: no Redis answers at {where} (start the system with `checkin up`)")
        return 1
    keys = RedisKeys(settings.key_prefix, settings.stream_shards, settings.is_redis_cluster)
    try:
        ours = False
        async for _ in client.scan_iter(match=f"{settings.key_prefix}*", count=1000):
            ours = True
            break
        if not ours:
            print(
                f"Redis at {where} holds none of this project's keys (prefix {settings.key_prefix!r}):"
                " nothing has run against it yet, or CHECKIN_REDIS_URL / CHECKIN_KEY_PREFIX point elsewhere"
            )
            return 0
        stats = await stream_stats(client, keys)
        dead = int(await client.xlen(keys.dead_letters()))
    finally:
        await client.aclose()
    print(f"{'shard':>5}  {'length':>10}  {'group':<8} {'lag':>10}  {'pending':>9}  {'oldest pending':>14}")
    for s in stats:
        if not s.groups:
            print(f"{s.shard:>5}  {s.length:>10,}  {'-':<8} {'-':>10}  {'-':>9}  {'-':>14}")
        for g in s.groups.values():
            lag = "?" if g.lag is None else f"{g.lag:,}"
            print(
                f"{s.shard:>5}  {s.length:>10,}  {g.group:<8} {lag:>10}  {g.pending:>9,}"
                f"  {g.oldest_pending_s:>13.1f}s"
            )
    print(f"dead letters: {dead:,}")
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_status(settings))


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    from tracing.storage.backfill import BackfillSpec, backfill, print_progress
    from tracing.storage.store import Store, StoreError

    spec = BackfillSpec(
        days=args.days,
        scans_per_day=args.scans_per_day,
        venues=args.venues,
        residents=args.residents,
        seed=args.seed,
        tz=settings.tz,
    )
    try:
        spec.validate()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if spec.days > settings.retention_days:
        print(
            f"note: days older than CHECKIN_RETENTION_DAYS={settings.retention_days} are dropped by the TTL",
            file=sys.stderr,
        )
    try:
        store = Store.from_settings(settings)
        store.apply_schema(settings.retention_days)
        results = backfill(store, spec, print_progress(spec.days))
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rows = sum(r.rows for r in results)
    seconds = sum(r.seconds for r in results)
    total = int(store.scalar(f"SELECT count() FROM {store.table('scans')}") or 0)
    rate = rows / seconds if seconds else 0.0
    print(
        f"backfill: {rows:,} check-ins over {spec.days} day(s) in {seconds:.1f} s ({rate:,.0f}/s); "
        f"{total:,} rows in scans"
    )
    store.close()
    return 0


def cmd_schema(args: argparse.Namespace, settings: Settings) -> int:
    from tracing.storage.schema import statements
    from tracing.storage.store import Store, StoreError

    if args.print:
        for stmt in statements(
            settings.clickhouse_database, settings.retention_days, settings.clickhouse_cluster
        ):
            print(stmt + ";\n")
        return 0
    try:
        store = Store.from_settings(settings)
        store.apply_schema(settings.retention_days)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"schema applied to {store.safe_dsn} database {settings.clickhouse_database}: "
        f"{', '.join(sorted(store.existing_tables()))}"
    )
    store.close()
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def register(sub: Any) -> None:
    p = sub.add_parser("serve-tracing", help="run the tracing API (owns ClickHouse)")
    p.add_argument(
        "--workers",
        default="",
        help="background workers to run inside: sink,rules,mirror (default: settings)",
    )
    p.set_defaults(handler=cmd_serve_tracing)
    p = sub.add_parser("schema", help="apply the ClickHouse schema (idempotent)")
    p.add_argument("--print", action="store_true", help="print the DDL instead of applying it")
    p.set_defaults(handler=cmd_schema)
    p = sub.add_parser(
        "sink", help="run the stream sink (Redis scan streams -> ClickHouse) as its own process"
    )
    p.set_defaults(handler=cmd_sink)
    p = sub.add_parser(
        "rules", help="run the rule engine (scan streams -> alerts) and alert escalation as their own process"
    )
    p.set_defaults(handler=cmd_rules)
    p = sub.add_parser("status", help="scan stream lag per shard: length, lag, pending, oldest pending")
    p.set_defaults(handler=cmd_status, creates_secrets=False)
    p = sub.add_parser("backfill", help="write N days of synthetic check-in history into ClickHouse")
    p.add_argument("--days", type=_positive, required=True, help="days of history, ending yesterday")
    p.add_argument("--scans-per-day", type=_positive, default=1_700_000)
    p.add_argument("--venues", type=_positive, default=239_000, help="venue ids 1..N (when no venues table)")
    p.add_argument("--residents", type=_positive, default=3_850_000, help="person ids 1..N")
    p.add_argument("--seed", type=int, default=1, help="same seed, same rows")
    p.set_defaults(handler=cmd_backfill)
    register_report(sub)


class ReportUnavailable(RuntimeError):
    """The running tracing service refused the report (the message says why)."""


def report_via_service(settings: Settings, period: str, date: str, scope: str, top: int) -> Any:
    """The report from the running tracing service (it holds the embedded engine), or None when no
    service answers at ``CHECKIN_TRACING_URL``. Authenticates with the admin key of the data dir."""
    import httpx
    import msgspec

    from checkin.platform.secrets import SECRETS_FILE, resolve_secrets
    from tracing.queries.report import Report

    base = settings.effective_tracing_url
    try:
        httpx.get(f"{base}/healthz", timeout=2.0)
    except httpx.TransportError:
        return None
    if not settings.admin_key and not (settings.data_path / SECRETS_FILE).exists():
        raise ReportUnavailable(
            f"a tracing service answers at {base} but {settings.data_path} holds no admin key"
        )
    key = resolve_secrets(settings).admin_key
    params: dict[str, Any] = {"period": period, "date": date, "scope": scope, "top": top}
    try:
        r = httpx.get(
            f"{base}/v1/report", params=params, headers={"Authorization": f"Bearer {key}"}, timeout=900.0
        )
    except httpx.HTTPError as exc:
        raise ReportUnavailable(f"the tracing service at {base} did not answer the report: {exc}") from None
    if r.status_code != 200:
        try:
            detail = str(r.json().get("detail", r.text))
        except ValueError:
            detail = r.text[:200]
        raise ReportUnavailable(
            f"the tracing service at {base} refused the report ({r.status_code}): {detail}"
        )
    return msgspec.json.decode(r.content, type=Report)


def report_from_engine(settings: Settings, period: str, day: dt.date, scope: str, top: int) -> Any:
    """The report read straight from ClickHouse (no tracing service holds the embedded engine)."""
    from tracing.queries.report import build_report
    from tracing.storage.store import Store, StoreError

    try:
        store = Store.from_settings(settings)
    except StoreError as exc:
        hint = (
            " (the embedded engine's data path may be open in a tracing service that does not answer at "
            f"{settings.effective_tracing_url}: set CHECKIN_TRACING_URL, or stop it)"
            if settings.embedded_clickhouse
            else ""
        )
        raise ReportUnavailable(f"{exc}{hint}") from None
    try:
        if settings.clickhouse_database not in {
            str(r[0]) for r in store.rows("SELECT name FROM system.databases")
        }:
            raise ReportUnavailable(f"no database {settings.clickhouse_database} at {store.safe_dsn}")
        return build_report(store, period, day, settings.tz, top=top, scope=scope)  # type: ignore[arg-type]
    except StoreError as exc:
        raise ReportUnavailable(f"reading ClickHouse failed: {exc}") from None
    finally:
        store.close()


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from tracing.queries.report import report_day
    from tracing.queries.report_files import write_report
    from tracing.rules.alerts import SCOPE_RE

    try:
        day = report_day(args.date, args.period)
    except ValueError as exc:
        print(f"error: --date: {exc}", file=sys.stderr)
        return 2
    if args.top < 1 or args.top > 10_000:
        print(f"error: --top: expected 1..10000, got {args.top}", file=sys.stderr)
        return 2
    if not SCOPE_RE.fullmatch(args.scope):
        print(
            f"error: --scope: expected a hierarchy code (up to 12 digits), got {args.scope!r}",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"error: --out: {out} exists and is not a directory", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        report = None
        source = "ClickHouse"
        if settings.embedded_clickhouse:
            report = report_via_service(settings, args.period, day.isoformat(), args.scope, args.top)
            source = f"the tracing service at {settings.effective_tracing_url}"
        if report is None:
            source = "ClickHouse"
            report = report_from_engine(settings, args.period, day, args.scope, args.top)
    except ReportUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    written = write_report(report, out)
    print(
        f"{args.period} report {report.label} of the {report.level} centre {report.scope or '(whole city)'} "
        f"from {source}: {report.total_scans:,} scans, {report.total_alerts:,} alerts, "
        f"{len(report.districts)} districts -> {out} ({', '.join(p.name for p in written)}) "
        f"in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )
    return 0


def register_report(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report",
        help="command-centre report: scans, alerts by kind and their dispositions, top venues (CSV + HTML)",
    )
    p.add_argument("--period", choices=["day", "month"], required=True, help="a local day or month")
    p.add_argument("--date", required=True, help="YYYY-MM-DD (a month report takes the month of this date)")
    p.add_argument("--out", required=True, help="directory to write the CSV files and report.html into")
    p.add_argument("--top", type=int, default=20, help="how many top venues (default 20)")
    p.add_argument(
        "--scope",
        default="",
        help="command centre: a community (12 digits), street (9) or district (6) code; default the city",
    )
    p.set_defaults(handler=cmd_report)
