"""Helpers of the rule and alert tests: scan events XADDed to real streams, a stepping clock, API keys."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

from checkin.platform import auth
from checkin.platform.context import Context
from checkin.platform.redis_keys import RULES_GROUP
from checkin.platform.scan_stream import ScanEvent, encode_scan
from checkin.platform.settings import Settings
from tracing.rules.engine import RuleEngine, RulesConsumer
from tracing.rules.history import alerts_history
from tracing.storage.store import Store
from tracing.streams.retry import RetryPolicy
from tracing.streams.runner import served
from venues.model import Venue

DAY_MS = 86_400_000
BASE_MS = (int(time.time() * 1000) // DAY_MS - 1) * DAY_MS + 73_600_000
"""Yesterday 20:26:40 UTC (04:26:40 today in Asia/Shanghai): recent enough for the ClickHouse TTL."""
DISTRICT_A, DISTRICT_B = "310101", "310104"
_cids = itertools.count(1)


async def key_for(settings: Settings, redis: Any, role: str, scope: str = "") -> dict[str, str]:
    """Bearer headers of a new API key of ``role`` (and ``scope``), created straight in Redis."""
    ctx = Context.build(settings, redis, "test")
    key, _ = await auth.create_api_key(ctx, role, f"{role}-{scope}", scope, None, "test")
    return {"Authorization": f"Bearer {key}"}


class Clock:
    def __init__(self, ms: int = BASE_MS) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000


def venue(
    venue_id: int, district: str = DISTRICT_A, lat: float = 31.2, lon: float = 121.4, **kw: Any
) -> Venue:
    street = district + "001"
    return Venue(
        venue_id=venue_id,
        name=f"venue {venue_id}",
        district=district,
        street=street,
        community=street + "001",
        lat=lat,
        lon=lon,
        **kw,
    )


def scan(
    v: Venue,
    person_id: int,
    at_ms: int = BASE_MS,
    *,
    kind: str = "in",
    checkin_id: str | None = None,
    **kw: Any,
) -> ScanEvent:
    fields: dict[str, Any] = {
        "entry_id": "",
        "kind": kind,
        "checkin_id": checkin_id or f"c{next(_cids):08d}",
        "person_id": person_id,
        "venue_id": v.venue_id,
        "at_ms": at_ms,
        "dwell_s": v.dwell_minutes * 60,
        "district": v.district,
        "street": v.street,
        "community": v.community,
        "venue_lat": v.lat,
        "venue_lon": v.lon,
        "received_ms": at_ms,
    }
    fields.update(kw)
    return ScanEvent(**fields)


class Harness:
    """A rule engine + consumer on the test's own key prefix, fed through the real scan streams."""

    def __init__(self, settings: Settings, redis: Any, clock: Clock | None = None, name: str = "c1") -> None:
        self.ctx = Context.build(settings, redis, "tracing")
        self.clock = clock or Clock()
        self.engine = RuleEngine(self.ctx, clock=self.clock, capacity_cache_s=0)
        self.consumer = RulesConsumer(self.ctx, self.engine, name=name, block_ms=10)

    async def add_venues(self, *venues: Venue) -> None:
        for v in venues:
            await self.ctx.redis.hset(self.ctx.keys.venue(v.venue_id), mapping=v.to_hash())

    async def xadd(self, *events: ScanEvent) -> list[str]:
        ids = []
        for ev in events:
            stream = self.ctx.keys.stream(self.ctx.keys.shard_of(ev.venue_id))
            ids.append((await self.ctx.redis.xadd(stream, encode_scan(ev))).decode())
        return ids

    async def run(self, *events: ScanEvent) -> list[Any]:
        """XADD the events, then process everything readable; returns the alerts published."""
        await self.consumer.setup()
        await self.xadd(*events)
        alerts: list[Any] = []
        while True:
            entries = await self.consumer._read()
            if not entries:
                return alerts
            alerts += await self.consumer.handle(entries)

    async def pending(self) -> int:
        total = 0
        for stream in self.ctx.keys.streams():
            info = await self.ctx.redis.xpending(stream, RULES_GROUP)
            total += int(info["pending"])
        return total

    async def stream_alerts(self) -> list[tuple[str, Any]]:
        from tracing.rules.alerts import from_fields

        entries = await self.ctx.redis.xrange(self.ctx.keys.alerts_stream())
        return [(eid.decode(), from_fields(f)) for eid, f in entries]


async def write_history(h: Harness, store: Store, expect: int, **kw: Any) -> None:
    """Run the history writer until ClickHouse holds ``expect`` alerts."""
    stop = asyncio.Event()
    run = served(alerts_history(batch_ms=20, retry=RetryPolicy(0.01, 0.05), **kw))
    task = asyncio.create_task(run(h.ctx, store, stop))
    try:
        for _ in range(500):
            if store._fail_next:  # injected failures are for the writer, not for this poll
                await asyncio.sleep(0.02)
                continue
            n = store.scalar(f"SELECT count() FROM {store.table('alerts')} FINAL")
            if n >= expect:
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def collect_events(
    gen: AsyncIterator[bytes], count: int, timeout: float = 5.0
) -> list[tuple[str, str, str]]:
    """(event, id, data) of the next ``count`` events, skipping the retry line and heartbeats."""
    out: list[tuple[str, str, str]] = []

    async def run() -> None:
        while len(out) < count:
            chunk = (await gen.__anext__()).decode()
            for block in chunk.split("\n\n"):  # a chunk may carry several events
                fields = dict(line.split(": ", 1) for line in block.strip().split("\n") if ": " in line)
                if "event" in fields:
                    out.append((fields["event"], fields.get("id", ""), fields.get("data", "")))

    await asyncio.wait_for(run(), timeout)
    return out
