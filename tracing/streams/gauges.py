"""Stream gauges: length of every scan shard and, per consumer group, lag, pending entries and the
age of the oldest pending one; the size of the dead-letter stream. Read at scrape time
(``/metrics`` of the tracing service) and by ``checkin status``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ResponseError

from checkin.platform.context import Context
from checkin.platform.metrics import Sample
from checkin.platform.redis_keys import RedisKeys
from tracing.streams.group import parse_id, text


@dataclass
class GroupStats:
    group: str
    pending: int
    lag: int | None
    """Entries not yet delivered to the group (None when Redis cannot tell)."""
    oldest_pending_s: float
    last_delivered: str


@dataclass
class ShardStats:
    shard: int
    stream: str
    length: int
    groups: dict[str, GroupStats] = field(default_factory=dict)


def _field(info: dict[Any, Any], name: str) -> Any:
    return info.get(name, info.get(name.encode()))


def _lag(reported: Any, length: int, all_delivered: bool) -> int | None:
    """Redis's lag of a group, bounded by what it can be: 0 once the group was delivered the newest
    entry, never more than the entries the stream holds. A redis-server restarted from its AOF was
    seen reporting a lag of thousands for groups that had read and acknowledged everything."""
    if all_delivered:
        return 0
    return None if reported is None else min(int(reported), length)


async def stream_stats(redis: Any, keys: RedisKeys, now_ms: int | None = None) -> list[ShardStats]:
    """Length, and per group lag, pending and oldest pending age, of every shard."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    out: list[ShardStats] = []
    for shard, stream in enumerate(keys.streams()):
        try:
            length = int(await redis.xlen(stream))
            exists = bool(length or await redis.exists(stream))
            infos = await redis.xinfo_groups(stream) if exists else []
            newest = text(_field(await redis.xinfo_stream(stream), "last-generated-id")) if exists else ""
        except ResponseError:
            infos = []
            length = 0
            newest = ""
        stats = ShardStats(shard, stream, length)
        for info in infos:
            name = text(_field(info, "name"))
            pending = int(_field(info, "pending") or 0)
            oldest = 0.0
            if pending:
                summary = await redis.xpending(stream, name)
                first = summary.get("min") if isinstance(summary, dict) else None
                if first:
                    oldest = max(0.0, (now - parse_id(first)[0]) / 1000)
            last_delivered = text(_field(info, "last-delivered-id") or b"0-0")
            stats.groups[name] = GroupStats(
                group=name,
                pending=pending,
                lag=_lag(_field(info, "lag"), length, last_delivered == newest),
                oldest_pending_s=oldest,
                last_delivered=last_delivered,
            )
        out.append(stats)
    return out


async def collect(ctx: Context) -> list[tuple[str, str, str, list[Sample]]]:
    stats = await stream_stats(ctx.redis, ctx.keys)
    length: list[Sample] = []
    pending: list[Sample] = []
    lag: list[Sample] = []
    oldest: list[Sample] = []
    for s in stats:
        length.append(("scan_stream_length", {"shard": str(s.shard)}, float(s.length)))
        for g in s.groups.values():
            labels = {"shard": str(s.shard), "group": g.group}
            pending.append(("scan_stream_pending", labels, float(g.pending)))
            if g.lag is not None:
                lag.append(("scan_stream_lag", labels, float(g.lag)))
            oldest.append(("scan_stream_oldest_pending_seconds", labels, g.oldest_pending_s))
    dead = float(await ctx.redis.xlen(ctx.keys.dead_letters()))
    return [
        ("scan_stream_length", "gauge", "Entries in each scan stream shard", length),
        ("scan_stream_pending", "gauge", "Entries delivered to a group and not yet acked", pending),
        ("scan_stream_lag", "gauge", "Entries not yet delivered to a group", lag),
        (
            "scan_stream_oldest_pending_seconds",
            "gauge",
            "Age of the oldest pending entry of a group (0 when none)",
            oldest,
        ),
        (
            "scan_dead_letters",
            "gauge",
            "Entries in the dead-letter stream",
            [("scan_dead_letters", {}, dead)],
        ),
    ]


async def register(ctx: Context) -> None:
    """The tracing service shows the stream gauges whether the sink runs inside it or not."""
    ctx.metrics.add_collector(lambda: collect(ctx))
