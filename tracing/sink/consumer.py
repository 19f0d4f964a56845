"""The stream sink: scan streams -> ClickHouse ``scans``; nothing lost, nothing counted twice.

One consumer of group ``sink`` reads every shard and runs a chain of small steps, top to
bottom:

1. **read** ``XREADGROUP ... >`` (and, every few seconds, reclaim entries idle longer than
   ``CHECKIN_SINK_CLAIM_IDLE_MS`` on a dead consumer with ``XAUTOCLAIM``);
2. **check** the reply's scan lines (:mod:`tracing.sink_rows`); an undecodable entry goes
   to the dead-letter stream ``scans:dead`` (shard, id, reason, fields) and is acked there
   and then, so its shard keeps moving;
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
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import hiredis
import redis.exceptions

from checkin.platform.context import Context
from checkin.platform.metrics import Metrics, Sample
from checkin.platform.redis_conn import async_client
from checkin.platform.redis_keys import RULES_GROUP, SINK_GROUP, RedisKeys
from tracing.sink.rows import INSERT_COLUMNS, INSERT_FORMAT, INSERT_SETTINGS, Rows, rows_for_read
from tracing.storage.store import Store, StoreError
from tracing.streams.retry import Clock, RetryPolicy, SystemClock

log = logging.getLogger("tracing.sink.consumer")

GROUPS = (SINK_GROUP, RULES_GROUP)
DEAD_LETTER_MAXLEN = 100_000
READ_COUNT = 10_000
"""Entries asked per stream per read."""
IDLE_BLOCK_MS = 250
"""Longest blocking read while nothing is batched (how fast a stop is noticed)."""
TRIM_INTERVAL_S = 1.0
ACK_CHUNK = 10_000

Entry = Sequence[Any]
"""``[entry_id, [field, value, ...] | None]`` as the Redis reply gives it."""


def consumer_name() -> str:
    return f"sink-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def parse_id(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _by_stream(reply: Any) -> list[tuple[Any, list[Entry]]]:
    """An XREADGROUP reply (RESP2 list or RESP3 map) as [(stream, entries)]."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return list(reply.items())
    return [(item[0], item[1]) for item in reply]


# --- metrics ---------------------------------------------------------------------------------


def setup_metrics(metrics: Metrics) -> None:
    metrics.counter("sink_rows_inserted_total", "Scan rows the sink inserted into ClickHouse")
    metrics.counter("sink_batches_total", "Batches the sink inserted")
    metrics.counter("sink_retries_total", "Failed ClickHouse writes of the sink (retried with backoff)")
    metrics.counter("sink_dead_letters_total", "Scan entries moved to the dead-letter stream, by reason")
    metrics.counter("sink_reclaimed_total", "Entries reclaimed from idle consumers")
    metrics.histogram("sink_insert_seconds", "Time of one ClickHouse insert of the sink")


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


async def stream_stats(redis: Any, keys: RedisKeys, now_ms: int | None = None) -> list[ShardStats]:
    """Length, and per group lag, pending and oldest pending age, of every shard."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    out: list[ShardStats] = []
    for shard, stream in enumerate(keys.streams()):
        try:
            length = int(await redis.xlen(stream))
            infos = await redis.xinfo_groups(stream) if length or await redis.exists(stream) else []
        except redis.exceptions.ResponseError:
            infos = []
            length = 0
        stats = ShardStats(shard, stream, length)
        for info in infos:
            name = _text(_field(info, "name"))
            pending = int(_field(info, "pending") or 0)
            oldest = 0.0
            if pending:
                summary = await redis.xpending(stream, name)
                first = summary.get("min") if isinstance(summary, dict) else None
                if first:
                    oldest = max(0.0, (now - parse_id(first)[0]) / 1000)
            lag = _field(info, "lag")
            stats.groups[name] = GroupStats(
                group=name,
                pending=pending,
                lag=None if lag is None else int(lag),
                oldest_pending_s=oldest,
                last_delivered=_text(_field(info, "last-delivered-id") or b"0-0"),
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


async def on_startup(ctx: Context) -> None:
    """The tracing service shows the stream gauges whether the sink runs inside it or not."""
    ctx.metrics.add_collector(lambda: collect(ctx))


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
        self.name = name or consumer_name()
        self.clock: Clock = clock or SystemClock()
        self.policy = policy or RetryPolicy()
        self.read_count = read_count
        self.streams = self.keys.streams()
        self._shard_of = {s.encode(): n for n, s in enumerate(self.streams)}
        self._own_redis = redis_client is None
        self.redis = redis_client if redis_client is not None else async_client(ctx.settings)
        for command in ("XREADGROUP", "XAUTOCLAIM", "XCLAIM", "XPENDING", "XRANGE"):
            self.redis.set_response_callback(command, lambda response, **_: response)
        self.stats = SinkStats()
        self.claim_idle_ms = self.settings.sink_claim_idle_ms
        self.touch_after_s = self.claim_idle_ms / 3000
        self._next_claim = 0.0
        self._next_trim = 0.0
        self._cursors = ["0-0"] * len(self.streams)
        self._poison: list[tuple[int, bytes, Any, str]] = []
        self._prefetch: asyncio.Task[list[tuple[int, list[Entry]]]] | None = None
        self._last_count = 1

    async def close(self) -> None:
        if self._own_redis:
            with contextlib.suppress(Exception):
                await self.redis.aclose()

    # --- setup -------------------------------------------------------------------------
    async def setup(self) -> None:
        """Both groups on every shard, from the start of the stream (idempotent)."""
        for stream in self.streams:
            for group in GROUPS:
                try:
                    await self.redis.xgroup_create(stream, group, id="0", mkstream=True)
                except redis.exceptions.ResponseError as exc:
                    if "BUSYGROUP" not in str(exc):
                        raise

    # --- the loop ------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        await self.setup()
        batch = self._new_batch()
        writing: tuple[asyncio.Task[bool], Batch] | None = None
        failures = 0
        try:
            while not stop.is_set():
                try:
                    await self._housekeeping(batch)
                    await self._fill(batch)
                    await self.flush_poison()
                    failures = 0
                except (redis.exceptions.RedisError, OSError) as exc:
                    failures += 1
                    log.warning("sink: Redis error (%s); retrying", exc)
                    await self.clock.sleep(self.policy.delay(failures))
                    continue
                except Exception:
                    # An unexpected fault must not stop the sink for good: held entries stay
                    # pending in Redis and are read again after the pause.
                    failures += 1
                    log.exception("sink: unexpected error; retrying")
                    await self.clock.sleep(self.policy.delay(failures))
                    continue
                if self._due(batch):
                    if writing is not None:
                        await self._wait_for(writing, batch)
                    writing = (asyncio.create_task(self.write_and_ack(batch.rows, stop)), batch)
                    batch = self._new_batch()
        finally:
            await self._drain_prefetch(batch)
            if writing is not None:
                await self._wait_for(writing, batch)
            await self.flush_poison()
            if len(batch):
                await self.write_and_ack(batch.rows, stop)

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
    async def read(self, count: int, block_ms: int) -> list[tuple[int, list[Entry]]]:
        """New entries for this consumer, by shard."""
        if self.keys.cluster:  # one slot per stream: one command per shard
            out: list[tuple[int, list[Entry]]] = []
            for shard, stream in enumerate(self.streams):
                reply = await self.redis.execute_command(
                    "XREADGROUP", "GROUP", SINK_GROUP, self.name, "COUNT", count, "STREAMS", stream, ">"
                )
                out += [(shard, entries) for _, entries in _by_stream(reply) if entries]
            if not out and block_ms:
                await asyncio.sleep(min(block_ms, 50) / 1000)
            return out
        args: list[Any] = ["XREADGROUP", "GROUP", SINK_GROUP, self.name, "COUNT", count]
        if block_ms:
            args += ["BLOCK", block_ms]
        args += ["STREAMS", *self.streams, *([">"] * len(self.streams))]
        reply = await self.redis.execute_command(*args)
        return [(self._shard_of[bytes(stream)], entries) for stream, entries in _by_stream(reply) if entries]

    def _add(self, batch: Batch, shard: int, entries: list[Entry]) -> None:
        rows, poison = rows_for_read(shard, entries)
        if not len(batch):
            batch.opened = batch.touched = self.clock.monotonic()
        batch.rows.extend(rows)
        if poison:
            self._poison.extend((shard, eid, flat, reason) for eid, flat, reason in poison)

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
            found = await self.redis.execute_command("XRANGE", self.streams[shard], entry_id, entry_id)
            flat = found[0][1] if found else None
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
        commands = [
            [b"XACK", self.streams[shard].encode(), SINK_GROUP.encode(), *ids[i : i + ACK_CHUNK]]
            for shard, ids in ids_by_shard.items()
            for i in range(0, len(ids), ACK_CHUNK)
        ]
        for attempt in range(1, 6):
            try:
                await self._send_many(commands)
                return
            except (redis.exceptions.RedisError, OSError) as exc:
                # Unacked entries are reclaimed later and re-inserted: harmless under FINAL.
                log.warning("sink: XACK failed (%s), attempt %d", exc, attempt)
                await self.clock.sleep(self.policy.delay(attempt))

    async def _send_many(self, commands: list[list[bytes]]) -> None:
        """Pipelined commands with many arguments, packed by hiredis (the Python packer costs
        microseconds per argument: more than the whole ack on the server)."""
        if self.keys.cluster:
            pipe = self.redis.pipeline(transaction=False)
            for command in commands:
                # the cluster client routes by a str command name
                pipe.execute_command(command[0].decode(), *command[1:])
            await pipe.execute()
            return
        pool = self.redis.connection_pool
        conn = await pool.get_connection()
        try:
            packed: list[bytes] = [hiredis.pack_command(tuple(c)) for c in commands]  # type: ignore[arg-type]
            await conn.send_packed_command(packed)
            errors = []
            for _ in commands:
                try:
                    await conn.read_response()
                except redis.exceptions.ResponseError as exc:
                    errors.append(exc)
            if errors:
                raise errors[0]
        except BaseException:
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)

    async def flush_poison(self) -> None:
        if self._poison:
            items, self._poison = self._poison, []
            await self.dead_letter(items)

    async def dead_letter(self, items: Sequence[tuple[int, bytes, Any, str]]) -> None:
        """Move entries to the dead-letter stream (shard, id, reason, fields) and ack them."""
        pipe = self.redis.pipeline(transaction=False)
        now_ms = str(int(time.time() * 1000))
        for shard, entry_id, flat, reason in items:
            fields: dict[str, str] = {}
            if flat is not None:
                it = iter(flat)
                fields = {
                    bytes(k).decode("utf-8", "replace"): bytes(v).decode("utf-8", "replace")
                    for k, v in zip(it, it, strict=False)
                }
            pipe.xadd(
                self.keys.dead_letters(),
                {
                    "shard": str(shard),
                    "id": entry_id,
                    "reason": reason[:500],
                    "fields": json.dumps(fields, ensure_ascii=False),
                    "consumer": self.name,
                    "at": now_ms,
                },
                maxlen=DEAD_LETTER_MAXLEN,
                approximate=True,
            )
            pipe.xack(self.streams[shard], SINK_GROUP, entry_id)
        await pipe.execute()
        for _, entry_id, _, reason in items:
            log.warning("sink: entry %s dead-lettered: %s", _text(entry_id), reason)
            self.metrics.inc("sink_dead_letters_total", reason=reason.split(":")[0][:40])
        self.stats.dead_letters += len(items)

    async def trim(self) -> None:
        """XTRIM MINID to the lowest id some group still needs (first pending or next undelivered)."""
        for stream in self.streams:
            infos = await self.redis.xinfo_groups(stream)
            floor: tuple[int, int] | None = None
            for info in infos:
                name = _field(info, "name")
                summary = None
                if int(_field(info, "pending") or 0):
                    # Entries may be acked between XINFO and XPENDING: then nothing is pending.
                    summary = await self.redis.execute_command("XPENDING", stream, name)
                if summary and summary[1] is not None:
                    need = parse_id(summary[1])
                else:
                    ms, seq = parse_id(_field(info, "last-delivered-id") or b"0-0")
                    need = (ms, seq + 1)
                floor = need if floor is None else min(floor, need)
            if floor is not None and floor > (0, 1):
                await self.redis.execute_command("XTRIM", stream, "MINID", f"{floor[0]}-{floor[1]}")

    # --- recovery ---------------------------------------------------------------------------
    async def claim(self) -> list[tuple[int, list[Entry]]]:
        """Dead-letter entries delivered too often, then XAUTOCLAIM idle ones from other consumers."""
        idle = self.claim_idle_ms
        out: list[tuple[int, list[Entry]]] = []
        for shard, stream in enumerate(self.streams):
            rows = await self.redis.execute_command(
                "XPENDING", stream, SINK_GROUP, "IDLE", idle, "-", "+", 1000
            )
            tries = {bytes(r[0]): int(r[3]) for r in rows or () if int(r[3]) >= self.settings.sink_max_tries}
            if tries:
                claimed = await self.redis.execute_command(
                    "XCLAIM", stream, SINK_GROUP, self.name, idle, *tries
                )
                await self.dead_letter(
                    [
                        (
                            shard,
                            bytes(e[0]),
                            e[1],
                            f"delivered {tries.get(bytes(e[0]), 0)} times without landing",
                        )
                        for e in claimed or ()
                        if e is not None
                    ]
                )
            reply = await self.redis.execute_command(
                "XAUTOCLAIM", stream, SINK_GROUP, self.name, idle, self._cursors[shard], "COUNT", 1000
            )
            cursor, entries = reply[0], reply[1]
            self._cursors[shard] = _text(cursor)
            live = [e for e in entries or () if e is not None]
            if live:
                self.stats.reclaimed += len(live)
                self.metrics.inc("sink_reclaimed_total", float(len(live)))
                log.info("sink: reclaimed %d idle entries of shard %d", len(live), shard)
                out.append((shard, live))
        await self.flush_poison()
        return out

    async def _touch_if_due(self, batch: Batch) -> None:
        if len(batch) and self.clock.monotonic() - batch.touched >= self.touch_after_s:
            batch.touched = self.clock.monotonic()
            await self._touch(batch.rows)

    async def _touch(self, rows: Rows) -> None:
        """Reset the idle time of entries this consumer holds, so nobody reclaims them."""
        pipe = self.redis.pipeline(transaction=False)
        for shard, ids in rows.ids_by_shard().items():
            for i in range(0, len(ids), ACK_CHUNK):
                pipe.execute_command(
                    "XCLAIM", self.streams[shard], SINK_GROUP, self.name, 0, *ids[i : i + ACK_CHUNK], "JUSTID"
                )
        await pipe.execute()


async def run_sink(ctx: Context, store: Store, stop: asyncio.Event) -> None:
    """Background worker "sink" of the tracing service (and the ``checkin sink`` process)."""
    setup_metrics(ctx.metrics)
    consumer = SinkConsumer(ctx, store)
    log.info("sink %s reading %d shard(s)", consumer.name, len(consumer.streams))
    try:
        await consumer.run(stop)
    finally:
        await consumer.close()
