"""Helpers of the rule and alert tests: scan events XADDed to real streams, a stepping clock, API keys."""

from __future__ import annotations

import itertools
import time
from typing import Any

from checkin.platform import auth
from checkin.platform.context import Context
from checkin.platform.redis_keys import RULES_GROUP
from checkin.platform.scan_stream import ScanEvent, encode_scan
from checkin.platform.settings import Settings
from tracing.rules.engine import RuleEngine, RulesConsumer
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
