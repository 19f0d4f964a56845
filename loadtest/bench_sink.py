"""Sink benchmark: drain a backlog into the embedded engine, then latency at a steady rate.

Run: ``.venv/bin/python -m loadtest.bench_sink [--backlog 1000000] [--rate 5000] [--seconds 30]``

1. Backlog: XADD ``--backlog`` scans (pipelined, own key prefix) to the 4 shards, then one
   sink drains them into a fresh embedded ClickHouse path; figure = scans / second from the
   sink's start until every entry is acked and counted in ``scans``.
2. Steady: a producer XADDs ``--rate`` scans/s for ``--seconds`` while the sink runs with the
   default batching (``CHECKIN_SINK_BATCH_MS``); a poller queries ``scans`` every 50 ms; figure
   = p50/p99 from XADD to the row being returned by a query.

Uses the Redis at CHECKIN_REDIS_URL (default 127.0.0.1:6379) under its own prefix, deleted after.
Redis's own time per entry (XREADGROUP + XACK, from INFO commandstats) is recorded too: on one
Redis core it bounds what any single sink can drain.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from typing import Any

import redis

from checkin.platform.context import Context
from checkin.platform.keyring import Keyring
from checkin.platform.progress import Progress
from checkin.platform.redis_conn import async_client
from checkin.platform.redis_keys import RedisKeys
from checkin.platform.scan_stream import ScanEvent, encode_scan
from checkin.platform.settings import Settings, load_settings
from loadtest.results import Figure, record
from tracing.sink.consumer import SinkConsumer, setup_metrics
from tracing.storage.store import Store


def _event(i: int, now_ms: int, prefix: str = "bk", checkin_only: bool = False) -> ScanEvent:
    venue = random.randrange(1, 239_001)
    person = random.randrange(1, 3_850_001)
    located = i % 3 == 0
    return ScanEvent(
        entry_id="",
        kind="out" if not checkin_only and i % 10 == 9 else "in",
        checkin_id=f"{prefix}-{i}",
        person_id=person,
        venue_id=venue,
        at_ms=now_ms - 3_600_000 + i % 1_000_000,
        dwell_s=3600,
        district="620102",
        street="620102013",
        community="620102013101",
        source="phone",
        lat=36.06 + venue % 100 / 1e4 if located else None,
        lon=103.83 + venue % 77 / 1e4 if located else None,
        accuracy_m=25.0 if located else None,
        venue_lat=36.06,
        venue_lon=103.83,
        received_ms=now_ms,
    )


def _keys(settings: Settings) -> RedisKeys:
    return RedisKeys(settings.key_prefix, settings.stream_shards, settings.is_redis_cluster)


def fill_backlog(client: redis.Redis, settings: Settings, count: int) -> float:
    keys = _keys(settings)
    now_ms = int(time.time() * 1000)
    start = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    bar = Progress("backlog", count, "scans")
    for i in range(count):
        event = _event(i, now_ms)
        pipe.xadd(keys.stream(event.venue_id % settings.stream_shards), encode_scan(event))  # type: ignore[arg-type]
        if i % 5000 == 4999:
            pipe.execute()
            bar.update(i + 1)
    pipe.execute()
    bar.update(count)
    bar.finish()
    return time.perf_counter() - start


def _redis_usec(client: redis.Redis) -> dict[str, float]:
    stats: dict[str, Any] = client.info("commandstats")
    return {
        name: float(stats.get(f"cmdstat_{name}", {}).get("usec", 0.0))
        for name in ("xreadgroup", "xack", "xadd")
    }


async def drain(settings: Settings, store: Store, expected: int) -> tuple[float, SinkConsumer]:
    aredis = async_client(settings)
    ctx = Context.build(settings, aredis, "tracing")
    setup_metrics(ctx.metrics)
    consumer = SinkConsumer(ctx, store)
    stop = asyncio.Event()
    start = time.perf_counter()
    task = asyncio.create_task(consumer.run(stop))
    table = store.table("scans")
    while True:
        await asyncio.sleep(0.2)
        if consumer.stats.rows >= expected:
            pending = 0
            for stream in ctx.keys.streams():
                for group in await aredis.xinfo_groups(stream):
                    if group["name"] in (b"sink", "sink"):
                        pending += int(group["pending"])
            if pending == 0:
                break
        if task.done():
            task.result()
    elapsed = time.perf_counter() - start
    stop.set()
    await task
    landed = int(await asyncio.to_thread(store.scalar, f"SELECT count() FROM {table}"))
    print(f"drained {consumer.stats.rows:,} rows, {landed:,} in scans, {elapsed:.1f} s", file=sys.stderr)
    await aredis.aclose()
    return elapsed, consumer


async def steady(settings: Settings, store: Store, rate: int, seconds: float) -> list[float]:
    aredis = async_client(settings)
    ctx = Context.build(settings, aredis, "tracing")
    setup_metrics(ctx.metrics)
    consumer = SinkConsumer(ctx, store)
    stop = asyncio.Event()
    sink_task = asyncio.create_task(consumer.run(stop))
    sent: dict[str, tuple[float, int]] = {}
    latencies: list[float] = []
    table = store.table("scans")
    producing = True

    async def produce() -> None:
        nonlocal producing
        tick = 0.01
        per_tick = max(1, int(rate * tick))
        i = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            now_ms = int(time.time() * 1000)
            pipe = aredis.pipeline(transaction=False)
            stamp = time.perf_counter()
            for _ in range(per_tick):
                event = _event(i, now_ms, prefix="st", checkin_only=True)
                pipe.xadd(ctx.keys.stream(event.venue_id % settings.stream_shards), encode_scan(event))
                sent[event.checkin_id] = (stamp, now_ms)
                i += 1
            await pipe.execute()
            due = t0 + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        producing = False

    async def poll() -> None:
        seen: set[str] = set()
        order = iter(list[str]())
        oldest_unseen = ""
        cursor_ms = int(time.time() * 1000) - 1000
        while producing or len(seen) < len(sent):
            await asyncio.sleep(0.05)
            rows = await asyncio.to_thread(
                store.rows,
                f"SELECT checkin_id FROM {table} WHERE startsWith(checkin_id, 'st-')"
                " AND received_at >= fromUnixTimestamp64Milli({since:Int64})",
                {"since": cursor_ms},
            )
            now = time.perf_counter()
            for (cid,) in rows:
                if cid not in seen and cid in sent:
                    seen.add(cid)
                    latencies.append(now - sent[cid][0])
            # move the query window past the entries already seen
            if not oldest_unseen or oldest_unseen in seen:
                order = iter([c for c in sent if c not in seen])
                oldest_unseen = next(order, "")
                if oldest_unseen:
                    cursor_ms = sent[oldest_unseen][1] - 1000

    await asyncio.gather(produce(), poll())
    stop.set()
    await sink_task
    await aredis.aclose()
    return latencies


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=5_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    prefix = f"bench:sink:{uuid.uuid4().hex[:8]}:"
    data_dir = tempfile.mkdtemp(prefix="bench-sink-")
    env = {
        "CHECKIN_REDIS_URL": os.environ.get("CHECKIN_REDIS_URL", "redis://127.0.0.1:6379/0"),
        "CHECKIN_KEY_PREFIX": prefix,
        "CHECKIN_DATA_DIR": data_dir,
        "CHECKIN_CLICKHOUSE_DSN": f"chdb://{data_dir}/clickhouse",
        "CHECKIN_KEYRING": Keyring.generate(1),
    }
    settings = load_settings(env)
    client = redis.Redis.from_url(settings.redis_url)
    store = Store(settings.effective_clickhouse_dsn, settings.clickhouse_database)
    store.apply_schema(settings.retention_days)
    figures: list[Figure] = []
    try:
        fill_s = fill_backlog(client, settings, args.backlog)
        before = _redis_usec(client)
        cpu_before = time.process_time()
        elapsed, _ = asyncio.run(drain(settings, store, args.backlog))
        cpu_us = (time.process_time() - cpu_before) / args.backlog * 1e6
        after = _redis_usec(client)
        rate = args.backlog / elapsed
        redis_us = (
            after["xreadgroup"] - before["xreadgroup"] + after["xack"] - before["xack"]
        ) / args.backlog
        figures.append(
            Figure(
                figure="sink backlog drain, 1 sink, embedded ClickHouse",
                value=rate,
                unit="scans/s",
                target=">= 250000",
                met=rate >= 250_000,
                note=f"{args.backlog:,} scans in {elapsed:.1f} s; XADD {args.backlog / fill_s:,.0f}/s",
            )
        )
        figures.append(
            Figure(
                figure="Redis server time per drained scan (XREADGROUP + XACK)",
                value=redis_us,
                unit="us",
                note=f"one Redis core caps a single consumer group at ~{1e6 / redis_us:,.0f} scans/s",
            )
        )
        cores = os.cpu_count() or 1
        figures.append(
            Figure(
                figure="sink process CPU per drained scan (all threads: read, check, the engine insert)",
                value=cpu_us,
                unit="us",
                note=(
                    f"with Redis's {redis_us:.2f} us, {cores} cores cap one sink at "
                    f"~{cores * 1e6 / (cpu_us + redis_us):,.0f} scans/s on this machine"
                ),
            )
        )
        for stream in _keys(settings).streams():
            client.delete(stream)
        latencies = asyncio.run(steady(settings, store, args.rate, args.seconds))
        p50, p99 = _pct(latencies, 0.5), _pct(latencies, 0.99)
        figures.append(
            Figure(
                figure=f"sink XADD -> visible in a query at {args.rate:,} scans/s, p99",
                value=p99 * 1000,
                unit="ms",
                target="<= 2000",
                met=p99 <= 2.0,
                note=f"p50 {p50 * 1000:.0f} ms, {len(latencies):,} scans over {args.seconds:.0f} s, "
                f"batch {settings.sink_batch_ms} ms",
            )
        )
    finally:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
        client.close()
        with contextlib.suppress(Exception):
            store.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    command = "python -m loadtest.bench_sink " + " ".join(argv if argv is not None else sys.argv[1:])
    record("sink", command.strip(), figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
