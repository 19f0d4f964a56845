"""The stream sink against real Redis and the real embedded engine."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import redis

from checkin.platform.redis_keys import RULES_GROUP, SINK_GROUP
from checkin.platform.scan_stream import pack, scan_values
from tests.support.failing_store import FailingStore
from tests.support.sink import (
    FastClock,
    checkout,
    count,
    keys_of,
    make_consumer,
    run_until,
    scan,
    sink_pending,
    xadd,
    xadd_raw,
)
from tracing.storage.store import Store
from tracing.streams.gauges import collect, stream_stats
from tracing.streams.retry import RetryPolicy


async def test_sink_lands_stays_and_trims_what_every_group_acked(
    make_settings: Any, store: Store, sync_redis: redis.Redis
) -> None:
    settings = make_settings(sink_batch_rows=100, sink_batch_ms=200)
    events = [scan(i) for i in range(300)]
    outs = [checkout(ev, ev.at_ms + 600_000) for ev in events[:30]]
    xadd(sync_redis, settings, events + outs)
    consumer, ctx = await make_consumer(settings, store)
    await run_until(
        consumer, lambda: sink_pending(sync_redis, settings) == (0, 0) and consumer.stats.rows == 330
    )

    assert count(store) == 300  # one stay per check-in under FINAL
    assert count(store, final=False) == 330  # no row written twice
    assert consumer.stats.batches >= 3
    ended = store.rows(
        f"SELECT toUnixTimestamp64Milli(end_at), version FROM {store.table('scans')} FINAL "
        "WHERE checkin_id = 'ci-0'"
    )
    assert ended == [(outs[0].end_ms, 1)]
    assert count(store, where="lat > 36") == 150 and count(store, where="lat = 0") == 150
    by_person = store.scalar(f"SELECT count() FROM {store.table('scans_by_person')} FINAL")
    assert by_person == 300
    # the rules group has read nothing: nothing may be trimmed yet
    keys = keys_of(settings)
    assert sum(sync_redis.xlen(s) for s in keys.streams()) == 330
    for stream in keys.streams():
        got = sync_redis.xreadgroup(RULES_GROUP, "r1", {stream: ">"}, count=1000)
        ids = [eid for _, entries in got for eid, _ in entries] if got else []
        if ids:
            sync_redis.xack(stream, RULES_GROUP, *ids)
    await consumer.trim()
    await consumer.close()
    assert sum(sync_redis.xlen(s) for s in keys.streams()) == 0
    assert ctx.metrics.value("sink_rows_inserted_total") == 330
    await ctx.redis.aclose()


async def test_failing_inserts_keep_entries_pending_then_land_once(
    make_settings: Any, store: FailingStore, sync_redis: redis.Redis
) -> None:
    settings = make_settings(sink_batch_rows=1000, sink_batch_ms=100)
    events = [scan(i) for i in range(200)]
    xadd(sync_redis, settings, events)
    seen: list[tuple[int, int]] = []
    reader = Store(settings.effective_clickhouse_dsn, settings.clickhouse_database)  # not failing

    def observe(_: float) -> None:
        seen.append((sink_pending(sync_redis, settings)[0], count(reader, final=False)))

    store.fail_next(4)
    clock = FastClock(observe)
    consumer, ctx = await make_consumer(settings, store, clock=clock, policy=RetryPolicy(first_delay_s=0.5))
    await run_until(
        consumer, lambda: sink_pending(sync_redis, settings) == (0, 0) and consumer.stats.rows == 200
    )

    assert consumer.stats.retries == 4
    assert clock.sleeps[:4] == [0.5, 1.0, 2.0, 4.0]  # backoff, without real sleeping
    assert seen[0] == (200, 0)  # while ClickHouse fails, the entries stay pending and nothing landed
    assert count(store, final=False) == 200  # retried batch written exactly once
    assert ctx.metrics.value("sink_retries_total") == 4
    reader.close()
    await ctx.redis.aclose()


async def test_poison_entry_goes_to_dead_letters_and_does_not_block_its_shard(
    make_settings: Any, store: Store, sync_redis: redis.Redis
) -> None:
    settings = make_settings(sink_batch_rows=1000, sink_batch_ms=100, stream_shards=1)
    good = [scan(i, venue=7) for i in range(3)]
    xadd(sync_redis, settings, good[:1])
    bad_kind = pack({**scan_values(good[1]), "version": "sideways"})
    bad_id = xadd_raw(sync_redis, settings, 0, bad_kind)
    xadd(sync_redis, settings, good[1:2])
    bad_time_id = xadd_raw(sync_redis, settings, 0, pack({**scan_values(good[2]), "at": "soon"}))
    xadd(sync_redis, settings, good[2:])
    consumer, ctx = await make_consumer(settings, store)
    await run_until(
        consumer, lambda: sink_pending(sync_redis, settings) == (0, 0) and consumer.stats.rows == 3
    )

    assert count(store) == 3
    dead = sync_redis.xrange(keys_of(settings).dead_letters())
    assert [d[1][b"id"].decode() for d in dead] == [bad_id, bad_time_id]
    first = dead[0][1]
    assert first[b"shard"] == b"0"
    assert b"unknown kind" in first[b"reason"]
    assert json.loads(first[b"fields"])["scan"].startswith("sideways\t")
    assert consumer.stats.dead_letters == 2
    await ctx.redis.aclose()


async def test_entries_of_a_dead_consumer_are_reclaimed(
    make_settings: Any, store: Store, sync_redis: redis.Redis
) -> None:
    settings = make_settings(sink_batch_rows=1000, sink_batch_ms=100, sink_claim_idle_ms=300)
    events = [scan(i) for i in range(40)]
    xadd(sync_redis, settings, events)
    consumer, ctx = await make_consumer(settings, store)
    await consumer.setup()
    keys = keys_of(settings)
    # a consumer that read everything and died
    got = sync_redis.xreadgroup(SINK_GROUP, "ghost", {s: ">" for s in keys.streams()}, count=1000)
    assert sum(len(entries) for _, entries in got) == 40
    await run_until(
        consumer, lambda: sink_pending(sync_redis, settings) == (0, 0) and consumer.stats.rows == 40
    )
    assert consumer.stats.reclaimed == 40
    assert count(store, final=False) == 40
    await ctx.redis.aclose()


async def test_entry_delivered_too_often_goes_to_dead_letters(
    make_settings: Any, store: Store, sync_redis: redis.Redis
) -> None:
    settings = make_settings(sink_batch_ms=100, sink_claim_idle_ms=200, sink_max_tries=3, stream_shards=1)
    consumer, ctx = await make_consumer(settings, store)
    await consumer.setup()
    stream = keys_of(settings).stream(0)
    xadd(sync_redis, settings, [scan(1, venue=3)])
    got = sync_redis.xreadgroup(SINK_GROUP, "ghost", {stream: ">"})
    entry_id = got[0][1][0][0]
    sync_redis.xclaim(stream, SINK_GROUP, "ghost", 0, [entry_id], retrycount=3)
    await run_until(
        consumer, lambda: consumer.stats.dead_letters == 1 and sink_pending(sync_redis, settings) == (0, 0)
    )
    dead = sync_redis.xrange(keys_of(settings).dead_letters())
    assert len(dead) == 1 and dead[0][1][b"id"] == entry_id
    assert b"delivered 3 times" in dead[0][1][b"reason"]
    assert count(store, final=False) == 0
    await ctx.redis.aclose()


async def test_stop_flushes_the_open_batch(make_settings: Any, store: Store, sync_redis: redis.Redis) -> None:
    settings = make_settings(sink_batch_rows=10_000, sink_batch_ms=600_000)
    xadd(sync_redis, settings, [scan(i) for i in range(25)])
    consumer, ctx = await make_consumer(settings, store)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    for _ in range(100):
        await asyncio.sleep(0.05)
        if sink_pending(sync_redis, settings) == (25, 0):
            break
    assert count(store, final=False) == 0  # still batching
    stop.set()
    await asyncio.wait_for(task, 10)
    await consumer.close()
    assert count(store, final=False) == 25
    assert sink_pending(sync_redis, settings) == (0, 0)
    await ctx.redis.aclose()


async def test_stream_stats_metrics_and_status(
    make_settings: Any, store: Store, sync_redis: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    import redis.asyncio as aioredis

    from tracing.cli import _status

    settings = make_settings(stream_shards=2)
    consumer, ctx = await make_consumer(settings, store)
    await consumer.setup()
    await consumer.close()
    xadd(sync_redis, settings, [scan(i, venue=2 * i) for i in range(5)])  # all on shard 0
    stream0 = keys_of(settings).stream(0)
    sync_redis.xreadgroup(SINK_GROUP, "ghost", {stream0: ">"}, count=2)
    client = aioredis.Redis.from_url(settings.redis_url)
    stats = await stream_stats(client, keys_of(settings))
    assert stats[0].length == 5 and stats[1].length == 0
    sink = stats[0].groups[SINK_GROUP]
    assert (sink.pending, sink.lag) == (2, 3)
    assert 0 <= sink.oldest_pending_s < 60  # the two entries read by "ghost" were added moments ago
    oldest_ms = int(sync_redis.xpending(stream0, SINK_GROUP)["min"].decode().split("-")[0])
    later = await stream_stats(client, keys_of(settings), now_ms=oldest_ms + 7_500)
    assert later[0].groups[SINK_GROUP].oldest_pending_s == 7.5  # the age of the oldest pending entry
    assert stats[0].groups[RULES_GROUP].lag == 5
    assert stats[0].groups[RULES_GROUP].oldest_pending_s == 0.0  # nothing delivered to rules yet
    families = {name: samples for name, _, _, samples in await collect(ctx)}
    assert ("scan_stream_pending", {"shard": "0", "group": "sink"}, 2.0) in families["scan_stream_pending"]
    assert ("scan_stream_length", {"shard": "1"}, 0.0) in families["scan_stream_length"]
    assert await _status(settings) == 0
    out = capsys.readouterr().out
    assert "sink" in out and "rules" in out and "dead letters: 0" in out
    await client.aclose()
    await ctx.redis.aclose()


async def test_sink_runs_inside_the_tracing_service_with_metrics(
    make_settings: Any, store: Store, sync_redis: redis.Redis
) -> None:
    from litestar.testing import AsyncTestClient

    from tracing.app import create_app

    settings = make_settings(sink_batch_ms=100)
    xadd(sync_redis, settings, [scan(i) for i in range(50)])
    app = create_app(settings, store=store, workers=("sink",))
    async with AsyncTestClient(app=app) as client:
        deadline = time.monotonic() + 20
        while count(store, final=False) < 50:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        while sink_pending(sync_redis, settings) != (0, 0):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        text = (await client.get("/metrics")).text
    assert "sink_rows_inserted_total 50" in text
    assert 'scan_stream_pending{group="sink",shard="0"} 0' in text
    assert 'scan_stream_lag{group="rules",shard="0"}' in text
    assert "sink_insert_seconds_count" in text
    assert "scan_dead_letters 0" in text


async def test_rows_the_engine_rejects_are_isolated_and_dead_lettered(
    make_settings: Any, store: FailingStore, sync_redis: redis.Redis
) -> None:
    from tracing.storage.store import StoreError

    settings = make_settings(sink_batch_rows=2, sink_batch_ms=60_000, stream_shards=1)
    xadd(sync_redis, settings, [scan(1, venue=5), scan(2, venue=5)])
    # the batch of two fails as data, then its first half alone: that entry is the culprit
    store.fail_next(2, lambda: StoreError("Code: 27. Cannot parse input", 27))
    consumer, ctx = await make_consumer(settings, store)
    await run_until(
        consumer, lambda: consumer.stats.rows == 1 and sink_pending(sync_redis, settings) == (0, 0)
    )
    dead = sync_redis.xrange(keys_of(settings).dead_letters())
    assert len(dead) == 1 and b"rejected by ClickHouse" in dead[0][1][b"reason"]
    assert json.loads(dead[0][1][b"fields"])["scan"].split("\t")[1] == "ci-1"
    assert store.rows(f"SELECT checkin_id FROM {store.table('scans')}") == [("ci-2",)]
    assert consumer.stats.retries == 0
    await ctx.redis.aclose()
