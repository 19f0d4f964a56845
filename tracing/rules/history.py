"""The alert history writer: the alerts stream -> ClickHouse ``alerts``, in batches.

Consumer group ``alerts-history`` on the live alerts stream, built from the stream core: a batch
closes on size (``batch_rows``) or age (``batch_ms``), is inserted with a deduplication token made
from its entry ids, and only then acknowledged; a failed insert keeps the batch and retries with
backoff while the entries stay pending; an alert entry that cannot be decoded goes to the alerts
dead-letter stream. Entries left by a dead writer are reclaimed. A slow ClickHouse therefore never
delays the live feed, and an alert is in the history once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import msgspec
from redis import exceptions as redis_errors

from checkin.platform.context import Context
from checkin.platform.redis_conn import async_client
from checkin.platform.redis_keys import ALERTS_HISTORY_GROUP
from tracing.rules.alerts import Alert, insert_alerts
from tracing.rules.alerts import from_fields as alert_from_fields
from tracing.storage.store import Store, StoreError
from tracing.streams.dead_letters import DeadItem, DeadLetters
from tracing.streams.group import GroupReader, consumer_name, fields_of
from tracing.streams.retry import Backoff, Clock, RetryPolicy, SystemClock

log = logging.getLogger("tracing.rules.history")

HISTORY_POLICY = RetryPolicy(first_delay_s=0.2)
CLAIM_EVERY_S = 5.0
READ_BLOCK_MS = 500


class HistoryWriter:
    def __init__(
        self,
        ctx: Context,
        store: Store,
        *,
        batch_rows: int = 5000,
        batch_ms: int = 1000,
        retry: RetryPolicy | None = None,
        consumer: str | None = None,
        clock: Clock | None = None,
        redis_client: Any = None,
    ) -> None:
        self.ctx = ctx
        self.store = store
        self.batch_rows = batch_rows
        self.batch_ms = batch_ms
        self.reader = GroupReader(
            redis_client if redis_client is not None else async_client(ctx.settings),
            [ctx.keys.alerts_stream()],
            ALERTS_HISTORY_GROUP,
            consumer or consumer_name("history"),
            cluster=ctx.keys.cluster,
        )
        self.dead = DeadLetters(
            self.reader, ctx.keys.alerts_dead_letters(), ctx.metrics, "alerts_history_dead_letters_total"
        )
        self.backoff = Backoff(retry or HISTORY_POLICY, clock or SystemClock())
        self.ids: list[bytes] = []
        self.alerts: list[Alert] = []
        self.opened = 0.0
        self._last_claim = -CLAIM_EVERY_S

    async def close(self) -> None:
        await self.reader.close()

    async def flush(self) -> bool:
        """Insert the open batch, then acknowledge it; False (batch kept) when the insert failed."""
        if not self.ids:
            return True
        token = f"alerts:{self.ids[0].decode()}:{self.ids[-1].decode()}:{len(self.ids)}"
        try:
            await asyncio.to_thread(insert_alerts, self.store, self.alerts, token)
        except StoreError as exc:
            self.ctx.metrics.inc("alerts_history_failures_total")
            log.warning("alerts history insert failed (%s), retry %d", exc, self.backoff.failures + 1)
            return False
        await self.reader.ack({0: self.ids})
        self.ctx.metrics.inc("alerts_history_rows_total", float(len(self.alerts)))
        self.ids, self.alerts = [], []
        return True

    def _take(self, entries: Sequence[Any]) -> list[DeadItem]:
        dead: list[DeadItem] = []
        for entry in entries:
            try:
                alert = alert_from_fields(fields_of(entry[1]))
            except (KeyError, msgspec.DecodeError, msgspec.ValidationError) as exc:
                dead.append(self.dead.item(0, entry, f"undecodable alert: {type(exc).__name__}"))
                continue
            if not self.ids:
                self.opened = self.backoff.clock.monotonic()
            self.ids.append(bytes(entry[0]))
            self.alerts.append(alert)
        return dead

    async def step(self, stop: asyncio.Event) -> None:
        clock = self.backoff.clock
        now = clock.monotonic()
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
        age_ms = (clock.monotonic() - self.opened) * 1000
        if self.ids and (len(self.ids) >= self.batch_rows or age_ms >= self.batch_ms):
            if not await self.flush():
                await self.backoff.failed(stop)
                return
        self.backoff.succeeded()

    async def run(self, stop: asyncio.Event) -> None:
        await self.reader.ensure()
        while not stop.is_set():
            try:
                if self.backoff.failures and not await self.flush():
                    await self.backoff.failed(stop)
                    continue
                await self.step(stop)
            except (redis_errors.RedisError, OSError) as exc:
                log.warning("alerts history: Redis unavailable (%s)", exc)
                await self.backoff.failed(stop)
        for attempt in range(1, 4):
            if await self.flush():
                break
            await self.backoff.clock.sleep(self.backoff.policy.delay(attempt))


async def run_history_writer(
    ctx: Context,
    store: Store,
    stop: asyncio.Event,
    *,
    batch_rows: int = 5000,
    batch_ms: int = 1000,
    retry: RetryPolicy | None = None,
    consumer: str | None = None,
) -> None:
    """Copy the alerts stream into ClickHouse until ``stop`` is set (runs beside the rule engine)."""
    writer = HistoryWriter(
        ctx, store, batch_rows=batch_rows, batch_ms=batch_ms, retry=retry, consumer=consumer
    )
    try:
        await writer.run(stop)
    finally:
        await writer.close()
