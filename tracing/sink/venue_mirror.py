"""Mirror of the venue registry into the ClickHouse ``venues`` table.

The ingest service never touches ClickHouse: its venue routes (and the CSV
import) put changed venue ids into ``RedisKeys.venue_mirror_queue()``, a sorted
set scored by change time. This loop, run inside the tracing service, takes the
oldest ids in batches, reads their current hashes, inserts them (the table is a
ReplacingMergeTree by ``updated_at``, so re-inserting is harmless) and only then
removes each id whose score has not moved meanwhile; an id changed again during
the insert stays queued for the next round. A failed insert leaves the queue as
it was and is retried with back-off.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from redis.exceptions import RedisError

from checkin.platform.context import Context
from checkin.platform.errors import BadInput
from checkin.platform.instants import from_ms, now_ms, parse_instant
from tracing.storage.store import Store, StoreError
from tracing.streams.retry import Clock, RetryPolicy, SystemClock
from tracing.streams.runner import Runner
from venues.model import RECORD_COLUMNS, Venue

log = logging.getLogger("tracing.sink.venue_mirror")

BATCH = 5000
IDLE_S = 1.0
MAX_BACKOFF_S = 30.0
MIRRORED = "checkin_venue_mirror_rows_total"

COLUMNS = RECORD_COLUMNS

# KEYS[1] queue; ARGV id, score pairs: remove an id only if its score is unchanged.
_ACK_LUA = """
local n = 0
for i = 1, #ARGV, 2 do
  local s = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if s and tonumber(s) == tonumber(ARGV[i + 1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
"""


def _parse_time(text: str) -> dt.datetime:
    """A venue's ``updated_at``; now when it is missing or unreadable (the mirror never stops on one)."""
    try:
        return from_ms(parse_instant("updated_at", text)) if text else from_ms(now_ms())
    except BadInput:
        return from_ms(now_ms())


def columns_of(venues: list[Venue]) -> list[list[Any]]:
    """Column-oriented data for the ``venues`` table."""
    return [
        [v.venue_id for v in venues],
        [v.name for v in venues],
        [v.address for v in venues],
        [v.type for v in venues],
        [v.district for v in venues],
        [v.street for v in venues],
        [v.community for v in venues],
        [v.lat for v in venues],
        [v.lon for v in venues],
        [v.capacity for v in venues],
        [v.dwell_minutes for v in venues],
        [v.requires_negative_test_hours for v in venues],
        [1 if v.active else 0 for v in venues],
        [v.code_version for v in venues],
        [_parse_time(v.updated_at) for v in venues],
    ]


async def mirror_once(ctx: Context, store: Store, batch: int = BATCH) -> int:
    """Mirror up to ``batch`` queued venues; returns how many ids were taken off the queue."""
    queue = ctx.keys.venue_mirror_queue()
    entries: list[tuple[bytes, float]] = await ctx.redis.zrange(queue, 0, batch - 1, withscores=True)
    if not entries:
        return 0
    ids = [int(member) for member, _ in entries]
    pipe = ctx.redis.pipeline(transaction=False)
    for vid in ids:
        pipe.hgetall(ctx.keys.venue(vid))
    raws = await pipe.execute()
    venues = [Venue.from_hash(vid, raw) for vid, raw in zip(ids, raws, strict=True) if raw]
    if venues:
        await asyncio.to_thread(store.insert, "venues", COLUMNS, columns_of(venues))
        ctx.metrics.inc(MIRRORED, len(venues))
    args: list[Any] = []
    for member, score in entries:
        args.extend((member, repr(score)))
    removed = await ctx.redis.eval(_ACK_LUA, 1, queue, *args)
    return int(removed)


MIRROR_POLICY = RetryPolicy(first_delay_s=1.0, max_delay_s=MAX_BACKOFF_S)


class VenueMirror:
    """The mirror as a step of :class:`~tracing.streams.runner.Runner`: one batch per round."""

    name = "venue mirror"

    def __init__(self, ctx: Context, store: Store) -> None:
        self.ctx = ctx
        self.store = store

    async def setup(self) -> None:
        self.ctx.metrics.counter(MIRRORED, "Venue registry rows mirrored into ClickHouse")

    async def poll(self, stop: asyncio.Event) -> bool:
        return await mirror_once(self.ctx, self.store) > 0

    async def join(self, stop: asyncio.Event) -> bool:
        return True  # what is not mirrored yet stays queued

    async def close(self) -> None:
        pass


def venue_mirror(ctx: Context, store: Store, clock: Clock | None = None) -> Runner:
    """The factory of worker ``mirror``: a failed round (an unexpected fault too: the mirror must
    never stop for good) leaves the queue as it was and is retried with back-off; an empty queue
    is looked at again after :data:`IDLE_S`."""
    return Runner(
        VenueMirror(ctx, store),
        MIRROR_POLICY,
        clock or SystemClock(),
        retry_on=(StoreError, OSError, ConnectionError, RedisError),
        any_error=True,
        idle_s=IDLE_S,
    )
