"""Several sink consumers in one consumer group share the shards: every entry lands once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis
import redis.asyncio as aioredis

from checkin.platform.context import Context
from tests.support.sink import count, scan, sink_pending, xadd
from tracing.sink.consumer import SinkConsumer, setup_metrics
from tracing.storage.store import Store


async def test_three_consumers_in_one_group_land_each_entry_once(
    make_settings: Any, store: Store, sync_redis: redis.Redis
) -> None:
    settings = make_settings(sink_batch_rows=100, sink_batch_ms=100)
    total = 3000
    consumers: list[SinkConsumer] = []
    contexts: list[Context] = []
    for n in range(3):
        ctx = Context.build(settings, aioredis.Redis.from_url(settings.redis_url), "tracing")
        setup_metrics(ctx.metrics)
        contexts.append(ctx)
        consumers.append(SinkConsumer(ctx, store, name=f"sink-test-{n}", read_count=40))
    await consumers[0].setup()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(c.run(stop)) for c in consumers]
    try:
        # entries arrive while the consumers run, as they do from the ingest API
        for start in range(0, total, 250):
            xadd(sync_redis, settings, [scan(i, venue=i % 37) for i in range(start, start + 250)])
            await asyncio.sleep(0.02)
        deadline = time.monotonic() + 30
        while sum(c.stats.rows for c in consumers) < total or sink_pending(sync_redis, settings) != (0, 0):
            assert time.monotonic() < deadline, [c.stats for c in consumers]
            assert not any(t.done() for t in tasks), "a consumer stopped early"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for c in consumers:
            await c.close()
        for ctx in contexts:
            await ctx.redis.aclose()

    rows = [c.stats.rows for c in consumers]
    assert sum(rows) == total, rows  # each entry written by exactly one consumer
    assert sum(1 for r in rows if r) >= 2, rows  # the group spread the work
    assert all(c.stats.reclaimed == 0 and c.stats.dead_letters == 0 for c in consumers)
    assert count(store) == total
    assert count(store, final=False) == total  # no row written twice, even before merges
    ids = store.scalar(f"SELECT uniqExact(checkin_id) FROM {store.table('scans')}")
    assert ids == total
    # every entry acknowledged by group sink: nothing pending on any consumer
    for stream in (s for s in consumers[0].streams if sync_redis.exists(s)):
        for info in sync_redis.xinfo_consumers(stream, "sink"):
            assert int(info["pending"]) == 0
