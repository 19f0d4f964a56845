"""A stream copied into a ClickHouse table, in batches: the alert history and the audit rows of
services without ClickHouse.

One consumer group on one stream, built from the stream core: a batch closes on size
(``batch_rows``) or age (``batch_ms``), is inserted with a deduplication token made from its entry
ids, and only then acknowledged; a failed insert keeps the batch and retries with backoff while the
entries stay pending; an entry that cannot be decoded goes to the stream's dead-letter stream.
Entries left by a dead writer are reclaimed. A slow ClickHouse therefore never delays the stream's
writers, and a row lands in the table once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from checkin.platform.context import Context
from checkin.platform.redis_conn import async_client
from tracing.storage.store import Store, StoreError
from tracing.streams.dead_letters import DeadItem, DeadLetters
from tracing.streams.group import GroupReader, consumer_name, fields_of
from tracing.streams.retry import Clock, RetryPolicy, SystemClock
from tracing.streams.runner import REDIS_ERRORS, Factory, Runner

log = logging.getLogger("tracing.streams.table_writer")

HISTORY_POLICY = RetryPolicy(first_delay_s=0.2)


@dataclass(frozen=True)
class Table:
    """What one writer copies: from which stream and group, how an entry decodes (raising
    ``ValueError`` or ``KeyError`` for one that cannot), and how a batch is inserted."""

    name: str
    stream: Callable[[Context], str]
    dead_letters: Callable[[Context], str]
    group: str
    decode: Callable[[dict[bytes, bytes]], Any]
    insert: Callable[[Store, list[Any], str], None]
    """Blocking insert of decoded rows with a deduplication token."""


CLAIM_EVERY_S = 5.0
READ_BLOCK_MS = 500


class TableWriter:
    """The step of one table copier: read, decode (dead-lettering what cannot be), batch, insert,
    acknowledge. :class:`tracing.streams.runner.Runner` drives it (:func:`table_writer`)."""

    def __init__(
        self,
        ctx: Context,
        store: Store,
        table: Table,
        *,
        batch_rows: int = 5000,
        batch_ms: int = 1000,
        consumer: str | None = None,
        clock: Clock | None = None,
        redis_client: Any = None,
    ) -> None:
        self.ctx = ctx
        self.store = store
        self.table = table
        self.batch_rows = batch_rows
        self.batch_ms = batch_ms
        self.reader = GroupReader(
            redis_client if redis_client is not None else async_client(ctx.settings),
            [table.stream(ctx)],
            table.group,
            consumer or consumer_name(table.name),
            cluster=ctx.keys.cluster,
        )
        self.dead = DeadLetters(
            self.reader, table.dead_letters(ctx), ctx.metrics, f"{table.name}_dead_letters_total"
        )
        self.clock: Clock = clock or SystemClock()
        self.ids: list[bytes] = []
        self.rows: list[Any] = []
        self.opened = 0.0
        self.failed_inserts = 0
        self.unfinished = False
        """A flush of the open batch failed (insert or ack): it is retried before reading more."""
        self._last_claim = -CLAIM_EVERY_S

    @property
    def name(self) -> str:
        return self.table.name

    async def setup(self) -> None:
        await self.reader.ensure()

    async def close(self) -> None:
        await self.reader.close()

    async def flush(self) -> None:
        """Insert the open batch, then acknowledge it; a failed insert keeps the batch and raises."""
        if not self.ids:
            return
        name = self.table.name
        token = f"{name}:{self.ids[0].decode()}:{self.ids[-1].decode()}:{len(self.ids)}"
        self.unfinished = True
        try:
            await asyncio.to_thread(self.table.insert, self.store, self.rows, token)
        except StoreError as exc:
            self.failed_inserts += 1
            self.ctx.metrics.inc(f"{name}_failures_total")
            log.warning("%s insert failed (%s), retry %d", name, exc, self.failed_inserts)
            raise
        self.failed_inserts = 0
        await self.reader.ack({0: self.ids})
        self.ctx.metrics.inc(f"{name}_rows_total", float(len(self.rows)))
        self.ids, self.rows = [], []
        self.unfinished = False

    def _take(self, entries: Sequence[Any]) -> list[DeadItem]:
        dead: list[DeadItem] = []
        for entry in entries:
            try:
                row = self.table.decode(fields_of(entry[1]))
            except (KeyError, ValueError) as exc:  # msgspec's decode errors are ValueErrors
                dead.append(self.dead.item(0, entry, f"undecodable entry: {type(exc).__name__}"))
                continue
            if not self.ids:
                self.opened = self.clock.monotonic()
            self.ids.append(bytes(entry[0]))
            self.rows.append(row)
        return dead

    async def poll(self, stop: asyncio.Event) -> bool:
        if self.unfinished:
            await self.flush()  # the held batch first; raises again while ClickHouse refuses
        now = self.clock.monotonic()
        entries: list[Any] = []
        if now - self._last_claim > CLAIM_EVERY_S:
            self._last_claim = now
            for _, claimed in await self.reader.claim_idle(
                self.ctx.settings.sink_claim_idle_ms, self.batch_rows
            ):
                entries.extend(claimed)
        if not entries:
            left_ms = self.batch_ms - int((now - self.opened) * 1000) if self.ids else self.batch_ms
            room = max(1, self.batch_rows - len(self.ids))
            for _, got in await self.reader.read(room, max(1, min(left_ms, READ_BLOCK_MS))):
                entries.extend(got)
        await self.dead.send(self._take(entries))
        age_ms = (self.clock.monotonic() - self.opened) * 1000
        if self.ids and (len(self.ids) >= self.batch_rows or age_ms >= self.batch_ms):
            await self.flush()
        return True

    async def join(self, stop: asyncio.Event) -> bool:
        await self.flush()
        return True


def table_writer(
    table: Table,
    *,
    batch_rows: int = 5000,
    batch_ms: int = 1000,
    retry: RetryPolicy | None = None,
    consumer: str | None = None,
    clock: Clock | None = None,
) -> Factory:
    """The factory of one table copier: its step, the retry policy (inserts refused by ClickHouse
    and Redis errors are retried) and the table's dead-letter stream."""

    def build(ctx: Context, store: Store) -> Runner:
        step = TableWriter(
            ctx, store, table, batch_rows=batch_rows, batch_ms=batch_ms, consumer=consumer, clock=clock
        )
        return Runner(step, retry or HISTORY_POLICY, step.clock, retry_on=(*REDIS_ERRORS, StoreError))

    return build
