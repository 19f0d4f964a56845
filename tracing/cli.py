"""``checkin sink | rules | status | backfill``: the tracing side's own processes and tools."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from checkin.platform.settings import Settings

log = logging.getLogger("tracing.cli")

Worker = Callable[[Any, Any, asyncio.Event], Awaitable[None]]


async def _run_worker(settings: Settings, module_name: str, func_name: str) -> int:
    from checkin.platform.context import Context
    from checkin.platform.redis_conn import connect
    from tracing.storage.store import Store, StoreError

    module = importlib.import_module(module_name)
    worker: Worker = getattr(module, func_name)
    try:
        store = await asyncio.to_thread(Store.from_settings, settings)
        await asyncio.to_thread(store.apply_schema, settings.retention_days)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        client = await connect(settings)
    except ConnectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        store.close()
        return 1
    ctx = Context.build(settings, client, "tracing")
    ctx.extras["store"] = store
    setup = getattr(module, "setup_metrics", None)
    if setup is not None:
        setup(ctx.metrics)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    metrics_key = ctx.keys.metrics("tracing")
    flusher = asyncio.create_task(ctx.metrics.run_flusher(client, metrics_key))
    try:
        await worker(ctx, store, stop)
    finally:
        flusher.cancel()
        with contextlib.suppress(BaseException):
            await flusher
        with contextlib.suppress(Exception):
            await ctx.metrics.flush(client, metrics_key)
        await client.aclose()
        store.close()
    return 0


def cmd_sink(args: argparse.Namespace, settings: Settings) -> int:
    if settings.embedded_clickhouse:
        log.info(
            "sink on the embedded engine: no other process may open %s", settings.effective_clickhouse_dsn
        )
    return asyncio.run(_run_worker(settings, "tracing.sink.consumer", "run_sink"))


def cmd_rules(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_run_worker(settings, "tracing.rules.engine", "run_rules"))


async def _status(settings: Settings) -> int:
    from checkin.platform.redis_conn import connect
    from checkin.platform.redis_keys import RedisKeys
    from tracing.sink.consumer import stream_stats

    try:
        client = await connect(settings, attempts=2)
    except ConnectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    keys = RedisKeys(settings.key_prefix, settings.stream_shards, settings.is_redis_cluster)
    try:
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
    print(f"backfill: {rows:,} check-ins over {spec.days} day(s) in {seconds:.1f} s ({rate:,.0f}/s)")
    store.close()
    if args.record:
        from loadtest.results import Figure, record

        command = "checkin backfill " + " ".join(sys.argv[2:])
        record(
            "backfill",
            command,
            [
                Figure(
                    figure=f"backfill {spec.days} days x {spec.scans_per_day:,} check-ins (server-side)",
                    value=seconds,
                    unit="s",
                    target="minutes",
                    met=seconds < 600,
                    note=f"{rate:,.0f} check-ins/s; {total:,} rows in scans with check-outs; "
                    f"{settings.effective_clickhouse_dsn.split(':')[0]} engine",
                )
            ],
        )
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
    p = sub.add_parser(
        "sink", help="run the stream sink (Redis scan streams -> ClickHouse) as its own process"
    )
    p.set_defaults(handler=cmd_sink)
    p = sub.add_parser("rules", help="run the rule engine (scan streams -> alerts) as its own process")
    p.set_defaults(handler=cmd_rules)
    p = sub.add_parser("status", help="scan stream lag per shard: length, lag, pending, oldest pending")
    p.set_defaults(handler=cmd_status)
    p = sub.add_parser("backfill", help="write N days of synthetic check-in history into ClickHouse")
    p.add_argument("--days", type=_positive, required=True, help="days of history, ending yesterday")
    p.add_argument("--scans-per-day", type=_positive, default=1_700_000)
    p.add_argument("--venues", type=_positive, default=239_000, help="venue ids 1..N (when no venues table)")
    p.add_argument("--residents", type=_positive, default=3_850_000, help="person ids 1..N")
    p.add_argument("--seed", type=int, default=1, help="same seed, same rows")
    p.add_argument("--record", action="store_true", help="record the timing in docs/bench/backfill.json")
    p.set_defaults(handler=cmd_backfill)
