"""The stream sink: scan streams -> ClickHouse ``scans``; nothing lost, nothing counted twice.

Reading, reclaiming, acknowledging, trimming, retries and dead letters are the stream core's
(:mod:`tracing.streams`); this module is the chain of steps that uses them.

One consumer of group ``sink`` reads every shard and runs a chain of small steps, top to
bottom:

1. **read** ``XREADGROUP ... >`` (and, every few seconds, reclaim entries idle longer than
   ``CHECKIN_SINK_CLAIM_IDLE_MS`` on a dead consumer with ``XAUTOCLAIM``);
2. **check** the reply's scan lines (:mod:`tracing.sink.rows`); an undecodable entry goes
   to the dead-letter stream (:mod:`tracing.streams.dead_letters`) and is acked there and
   then, so its shard keeps moving;
3. **batch** until ``CHECKIN_SINK_BATCH_ROWS`` rows or ``CHECKIN_SINK_BATCH_MS`` of age;
4. **write** the lines as one TabSeparatedWithNames insert with an insert deduplication token
   derived from the batch's entry ids, with a timeout; ClickHouse errors retry with backoff
   (:class:`tracing.streams.retry.RetryPolicy`) while the entries stay pending in Redis, and
   the loop stops reading meanwhile (back-pressure: at most one batch being written and
   one being filled);
5. **ack** ``XACK`` only after the write succeeded; then **trim** what every group has
   acknowledged (``XTRIM MINID`` to the lowest first-pending / next-undelivered id over all
   groups, so the rules group's unread entries are kept).

Stays: a check-in is row version 0 of the key (venue_id, at, person_id, checkin_id) with
``end_at = at + dwell``; its check-out is version 1 of the same key with the check-out
instant. ``scans`` is a ReplacingMergeTree(version) read with ``FINAL``, so a query sees
exactly one stay per check-in and person whatever arrived and however often. This is
why the sink can be at-least-once: an entry inserted twice (a crash between write and
ack, a reclaimed batch split differently) collapses to one row under ``FINAL``, and a
retried identical batch is dropped by the deduplication token before it reaches a part.
Resolving check-outs at query time instead would make every trace query join two event
kinds; the versioned row keeps queries simple and the sink stateless.

Recovery: a consumer holding entries longer than a third of the claim idle time (a long
ClickHouse outage) re-claims them to itself (``XCLAIM ... JUSTID``) so another consumer
does not take them; an entry delivered ``CHECKIN_SINK_MAX_TRIES`` times without landing
goes to the dead-letter stream; a batch the engine rejects as data is split until the
offending entry is found, which is dead-lettered. A stop (SIGTERM) flushes the open batch.
Several sink processes may share the group: consumer names are unique per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import redis.exceptions

from checkin.platform.context import Context
from checkin.platform.metrics import Metrics
from checkin.platform.redis_conn import async_client
from checkin.platform.redis_keys import RULES_GROUP, SINK_GROUP
from tracing.sink.rows import INSERT_COLUMNS, INSERT_FORMAT, INSERT_SETTINGS, Rows, rows_for_read
from tracing.storage.store import Store, StoreError, rejects_data
from tracing.streams.dead_letters import DeadItem, DeadLetters
from tracing.streams.group import ByStream, Entry, GroupReader, consumer_name
from tracing.streams.retry import Clock, RetryPolicy, SystemClock, retry_call
from tracing.streams.runner import REDIS_ERRORS, Runner

log = logging.getLogger("tracing.sink")

READ_COUNT = 10_000
"""Entries asked per stream per read."""
IDLE_BLOCK_MS = 250
"""Longest blocking read while nothing is batched (how fast a stop is noticed)."""
TRIM_INTERVAL_S = 1.0
SINK_POLICY = RetryPolicy(permanent=rejects_data)


def setup_metrics(metrics: Metrics) -> None:
    metrics.counter("sink_rows_inserted_total", "Scan rows the sink inserted into ClickHouse")
    metrics.counter("sink_batches_total", "Batches the sink inserted")
    metrics.counter("sink_retries_total", "Failed ClickHouse writes of the sink (retried with backoff)")
    metrics.counter("sink_dead_letters_total", "Scan entries moved to the dead-letter stream, by reason")
    metrics.counter("sink_reclaimed_total", "Entries reclaimed from idle consumers")
    metrics.histogram("sink_insert_seconds", "Time of one ClickHouse insert of the sink")


# --- the consumer ----------------------------------------------------------------------------


@dataclass
class Batch:
    rows: Rows
    opened: float
    touched: float

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class SinkStats:
    """This consumer's own counts (tests, the CLI summary)."""

    rows: int = 0
    batches: int = 0
    retries: int = 0
    dead_letters: int = 0
    reclaimed: int = 0


class SinkConsumer:
    def __init__(
        self,
        ctx: Context,
        store: Store,
        *,
        name: str | None = None,
        clock: Clock | None = None,
        policy: RetryPolicy | None = None,
        redis_client: Any = None,
        read_count: int = READ_COUNT,
    ) -> None:
        self.settings = ctx.settings
        self.keys = ctx.keys
        self.metrics = ctx.metrics
        self.store = store
        self.name = name or consumer_name("sink")
        self.clock: Clock = clock or SystemClock()
        self.policy = policy or SINK_POLICY
        self.read_count = read_count
        self.streams = self.keys.streams()
        self.reader = GroupReader(
            redis_client if redis_client is not None else async_client(ctx.settings),
            self.streams,
            SINK_GROUP,
            self.name,
            cluster=self.keys.cluster,
            also_create=(RULES_GROUP,),
        )
        self._own_redis = redis_client is None
        self.dead = DeadLetters(
            self.reader,
            self.keys.dead_letters(),
            ctx.metrics,
            "sink_dead_letters_total",
            max_tries=self.settings.sink_max_tries,
        )
        self.stats = SinkStats()
        self.claim_idle_ms = self.settings.sink_claim_idle_ms
        self.touch_after_s = self.claim_idle_ms / 3000
        self._next_claim = 0.0
        self._next_trim = 0.0
        self._poison: list[DeadItem] = []
        self._prefetch: asyncio.Task[ByStream] | None = None
        self._last_count = 1
        self._batch = self._new_batch()
        self._writing: tuple[asyncio.Task[bool], Batch] | None = None

    async def close(self) -> None:
        if self._own_redis:
            await self.reader.close()

    async def setup(self) -> None:
        """Both groups (sink and rules) on every shard, from the start of the stream (idempotent)."""
        await self.reader.ensure()

    # --- the loop: a step of tracing.streams.runner.Runner ------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``, then the last flush (what :func:`sink_consumer` builds, with this consumer)."""
        await self.runner().run(stop)

    def runner(self) -> Runner:
        # An unexpected fault must not stop the sink for good: held entries stay pending in Redis
        # and are read again after the pause.
        return Runner(self, self.policy, self.clock, any_error=True)

    async def poll(self, stop: asyncio.Event) -> bool:
        batch = self._batch
        await self._housekeeping(batch)
        await self._fill(batch)
        await self.flush_poison()
        if self._due(batch):
            if self._writing is not None:
                await self._wait_for(self._writing, batch)
            self._writing = (asyncio.create_task(self.write_and_ack(batch.rows, stop)), batch)
            self._batch = self._new_batch()
        return True

    async def join(self, stop: asyncio.Event) -> bool:
        """Stopping: the batch being written, then the open one."""
        batch = self._batch
        await self._drain_prefetch(batch)
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await self._wait_for(writing, batch)
        await self.flush_poison()
        if len(batch):
            await self.write_and_ack(batch.rows, stop)
            self._batch = self._new_batch()
        return True

    def _new_batch(self) -> Batch:
        now = self.clock.monotonic()
        return Batch(Rows(), now, now)

    def _due(self, batch: Batch) -> bool:
        if not len(batch):
            return False
        age_ms = (self.clock.monotonic() - batch.opened) * 1000
        return len(batch) >= self.settings.sink_batch_rows or age_ms >= self.settings.sink_batch_ms

    async def _wait_for(self, writing: tuple[asyncio.Task[bool], Batch], filling: Batch) -> None:
        """Back-pressure: wait for the batch being written, keeping held entries ours."""
        task, written = writing
        while not task.done():
            await asyncio.wait({task}, timeout=max(0.05, self.touch_after_s))
            for held in (written, filling):
                with contextlib.suppress(redis.exceptions.RedisError, OSError):
                    await self._touch_if_due(held)
        try:
            await task
        except (redis.exceptions.RedisError, OSError) as exc:
            log.warning("sink: a batch was not acked (%s); its entries stay pending", exc)

    async def _housekeeping(self, batch: Batch) -> None:
        now = self.clock.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + max(0.1, min(self.claim_idle_ms / 2000, 5.0))
            for shard, entries in await self.claim():
                self._add(batch, shard, entries)
        if now >= self._next_trim:
            self._next_trim = now + TRIM_INTERVAL_S
            await self.trim()
        await self._touch_if_due(batch)

    async def _fill(self, batch: Batch) -> None:
        limit = self.settings.sink_batch_rows
        room = limit - len(batch)
        if room <= 0:
            return
        if self._prefetch is not None:
            task, self._prefetch = self._prefetch, None
            got = await task
        else:
            if len(batch):
                left_ms = self.settings.sink_batch_ms - (self.clock.monotonic() - batch.opened) * 1000
                block_ms = int(max(0, min(left_ms, IDLE_BLOCK_MS)))
            else:
                block_ms = min(IDLE_BLOCK_MS, self.settings.sink_batch_ms)
            got = await self.read(self._count(room), block_ms)
        received = sum(len(entries) for _, entries in got)
        if got and max(len(entries) for _, entries in got) >= self._last_count:
            # a backlog: ask for the next chunk now, so Redis serves it while this one is decoded
            after = room - received
            self._prefetch = asyncio.create_task(self.read(self._count(after if after > 0 else limit), 0))
        for shard, entries in got:
            self._add(batch, shard, entries)

    def _count(self, room: int) -> int:
        self._last_count = max(1, min(self.read_count, -(-room // len(self.streams))))
        return self._last_count

    async def _drain_prefetch(self, batch: Batch) -> None:
        if self._prefetch is None:
            return
        task, self._prefetch = self._prefetch, None
        try:
            for shard, entries in await task:
                self._add(batch, shard, entries)
        except (redis.exceptions.RedisError, OSError) as exc:
            log.warning("sink: read failed while stopping (%s)", exc)

    # --- read ----------------------------------------------------------------------------
    async def read(self, count: int, block_ms: int) -> ByStream:
        """New entries for this consumer, by shard."""
        return await self.reader.read(count, block_ms)

    def _add(self, batch: Batch, shard: int, entries: list[Entry]) -> None:
        rows, poison = rows_for_read(shard, entries)
        if not len(batch):
            batch.opened = batch.touched = self.clock.monotonic()
        batch.rows.extend(rows)
        if poison:
            self._poison.extend((shard, bytes(eid), flat, reason) for eid, flat, reason in poison)

    # --- write ---------------------------------------------------------------------------
    def _insert(self, rows: Rows, token: str) -> float:
        return self.store.insert_raw(
            "scans",
            INSERT_COLUMNS,
            rows.body(),
            fmt=INSERT_FORMAT,
            dedup_token=token,
            settings=INSERT_SETTINGS,
        )

    async def write(self, rows: Rows, stop: asyncio.Event) -> bool:
        """Insert with retries; True once the rows are in ClickHouse (or dead-lettered)."""
        token = rows.dedup_token()
        attempt = 0
        touched = self.clock.monotonic()
        while True:
            try:
                seconds = await asyncio.wait_for(
                    asyncio.to_thread(self._insert, rows, token),
                    timeout=self.settings.clickhouse_timeout_s,
                )
            except (StoreError, TimeoutError) as exc:
                if self.policy.is_permanent(exc):
                    return await self._split(rows, exc, stop)
                attempt += 1
                self.stats.retries += 1
                self.metrics.inc("sink_retries_total")
                if stop.is_set() and attempt >= self.policy.attempts_after_stop:
                    log.error(
                        "sink: giving up on %d rows while stopping (%s); they stay pending", len(rows), exc
                    )
                    return False
                log.warning("sink: insert of %d rows failed (%s); retry %d", len(rows), exc, attempt)
                await self.clock.sleep(self.policy.delay(attempt))
                if self.clock.monotonic() - touched >= self.touch_after_s:
                    touched = self.clock.monotonic()
                    with contextlib.suppress(redis.exceptions.RedisError, OSError):
                        await self._touch(rows)
                continue
            self.stats.rows += len(rows)
            self.stats.batches += 1
            self.metrics.inc("sink_rows_inserted_total", float(len(rows)))
            self.metrics.inc("sink_batches_total")
            self.metrics.observe("sink_insert_seconds", seconds)
            return True

    async def _split(self, rows: Rows, exc: BaseException, stop: asyncio.Event) -> bool:
        """The engine rejected the data: halve until the offending entry is alone, dead-letter it."""
        if len(rows) == 1:
            shard, entry_id = rows.shard[0], rows.stream_id[0]
            found = await self.reader.fetch(shard, entry_id)
            flat = found[1] if found else None
            await self.dead_letter([(shard, entry_id, flat, f"rejected by ClickHouse: {exc}")])
            return True
        half = len(rows) // 2
        first = await self.write(rows.slice(0, half), stop)
        second = await self.write(rows.slice(half, len(rows)), stop)
        return first and second

    async def write_and_ack(self, rows: Rows, stop: asyncio.Event) -> bool:
        if not len(rows):
            return True
        if not await self.write(rows, stop):
            return False
        await self.ack(rows.ids_by_shard())
        return True

    # --- ack, dead letters, trim ------------------------------------------------------------
    async def ack(self, ids_by_shard: dict[int, list[bytes]]) -> None:
        # Entries left unacked are reclaimed later and re-inserted: harmless under FINAL.
        await retry_call(
            lambda: self.reader.ack(ids_by_shard),
            self.policy,
            self.clock,
            attempts=self.policy.call_attempts,
            retry_on=REDIS_ERRORS,
            what="sink: XACK",
        )

    async def flush_poison(self) -> None:
        if self._poison:
            items, self._poison = self._poison, []
            await self.dead_letter(items)

    async def dead_letter(self, items: list[DeadItem]) -> None:
        await self.dead.send(items)
        self.stats.dead_letters += len(items)

    async def trim(self) -> None:
        await self.reader.trim_acknowledged()

    # --- recovery ---------------------------------------------------------------------------
    async def claim(self) -> ByStream:
        """Dead-letter entries delivered too often, then take over idle ones from other consumers."""
        before = self.dead.sent
        await self.dead.sweep(self.claim_idle_ms)
        self.stats.dead_letters += self.dead.sent - before
        out = await self.reader.claim_idle(self.claim_idle_ms)
        for shard, live in out:
            self.stats.reclaimed += len(live)
            self.metrics.inc("sink_reclaimed_total", float(len(live)))
            log.info("sink: reclaimed %d idle entries of shard %d", len(live), shard)
        await self.flush_poison()
        return out

    async def _touch_if_due(self, batch: Batch) -> None:
        if len(batch) and self.clock.monotonic() - batch.touched >= self.touch_after_s:
            batch.touched = self.clock.monotonic()
            await self._touch(batch.rows)

    async def _touch(self, rows: Rows) -> None:
        await self.reader.touch(rows.ids_by_shard())


def sink_consumer(ctx: Context, store: Store) -> Runner:
    """The factory of worker "sink" of the tracing service (and the ``checkin sink`` process)."""
    setup_metrics(ctx.metrics)
    consumer = SinkConsumer(ctx, store)
    log.info("sink %s reading %d shard(s)", consumer.name, len(consumer.streams))
    return consumer.runner()
