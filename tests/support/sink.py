"""Sink helpers: scan events and check-outs XADDed to the real streams, a sink consumer on the test's
settings run until a condition holds, the sink group's backlog and the rows that landed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import redis

from checkin.platform.context import Context
from checkin.platform.redis_keys import SINK_GROUP, RedisKeys
from checkin.platform.scan_stream import ScanEvent, encode_scan
from checkin.platform.settings import Settings
from tracing.sink.consumer import SinkConsumer, setup_metrics
from tracing.storage.store import Store

NOW_MS = int(time.time() * 1000)


def scan(i: int, kind: str = "in", venue: int | None = None, **over: Any) -> ScanEvent:
    venue_id = venue if venue is not None else 1000 + i
    fields: dict[str, Any] = dict(
        entry_id="",
        kind=kind,
        checkin_id=f"ci-{i}",
        person_id=10_000 + i,
        venue_id=venue_id,
        at_ms=NOW_MS - 3_600_000 + i * 10,
        dwell_s=3600,
        district="620102",
        street="620102013",
        community="620102013101",
        received_ms=NOW_MS,
        lat=36.05 if i % 2 else None,
        lon=103.8 if i % 2 else None,
    )
    fields.update(over)
    return ScanEvent(**fields)


def checkout(event: ScanEvent, end_ms: int) -> ScanEvent:
    return ScanEvent(
        **{**{f: getattr(event, f) for f in event.__struct_fields__}, "kind": "out", "end_ms": end_ms}
    )


def keys_of(settings: Settings) -> RedisKeys:
    return RedisKeys(settings.key_prefix, settings.stream_shards)


def xadd(sync_redis: redis.Redis, settings: Settings, events: list[ScanEvent]) -> None:
    keys = keys_of(settings)
    pipe = sync_redis.pipeline(transaction=False)
    for ev in events:
        pipe.xadd(keys.stream(keys.shard_of(ev.venue_id)), encode_scan(ev))  # type: ignore[arg-type]
    pipe.execute()


def xadd_raw(sync_redis: redis.Redis, settings: Settings, shard: int, fields: dict[str, str]) -> str:
    return sync_redis.xadd(keys_of(settings).stream(shard), fields).decode()  # type: ignore[arg-type,union-attr]


class FastClock:
    """Real time plus the sleeps it skipped; records what the sink sees at each sleep."""

    def __init__(self, on_sleep: Callable[[float], Any] | None = None) -> None:
        self.offset = 0.0
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.on_sleep is not None:
            self.on_sleep(seconds)
        self.offset += seconds
        await asyncio.sleep(0)

    async def wait(self, stop: asyncio.Event, seconds: float) -> None:
        await self.sleep(seconds)


def sink_pending(sync_redis: redis.Redis, settings: Settings) -> tuple[int, int]:
    """(pending, undelivered) of group sink over every shard."""
    pending = lag = 0
    for stream in keys_of(settings).streams():
        if not sync_redis.exists(stream):
            continue
        for g in sync_redis.xinfo_groups(stream):
            if g["name"] in (SINK_GROUP, SINK_GROUP.encode()):
                pending += int(g["pending"])
                lag += int(g.get("lag") or 0)
    return pending, lag


async def run_until(consumer: SinkConsumer, done: Callable[[], bool], timeout: float = 20.0) -> asyncio.Event:
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    deadline = time.monotonic() + timeout
    try:
        while not done():
            if task.done():
                task.result()
                raise AssertionError("sink stopped early")
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for the sink")
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
        await consumer.close()
    return stop


async def make_consumer(settings: Settings, store: Store, **kw: Any) -> tuple[SinkConsumer, Context]:
    import redis.asyncio as aioredis

    ctx = Context.build(settings, aioredis.Redis.from_url(settings.redis_url), "tracing")
    setup_metrics(ctx.metrics)
    return SinkConsumer(ctx, store, **kw), ctx


def count(store: Store, final: bool = True, where: str = "1") -> int:
    return int(
        store.scalar(f"SELECT count() FROM {store.table('scans')} {'FINAL' if final else ''} WHERE {where}")
    )
