"""Command-centre escalation: an alert nobody acknowledged moves up a level (docs/ARCHITECTURE.md).

Each alert starts at ``community``. Unacknowledged for ``CHECKIN_ESCALATION_S`` at its level, it moves to
``street``, then ``district``, then ``city`` (the last). A periodic step beside the rule engine does it
(worker ``escalation``), so the rule path does no extra work per scan.

The state lives with the alert history in ClickHouse: the step reads the open alerts that are due and
writes each one's next state as a new row version. The version encodes the state (see
:func:`tracing.rules.alerts.state_version`), so an ack racing an escalation is never undone, and the
step is restart-safe: ``escalated_at`` is the instant the alert became due (its level's start + the
delay), not the instant the step ran, so a step repeated after a crash writes the very same row, and a
step that finds an alert read at ``street`` moves it from ``street`` only. After downtime an overdue alert
climbs every level it missed in one step, each counted once. Escalations then go on the alerts stream as
``escalated`` events (the SSE feed shows them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from redis.exceptions import RedisError

from checkin.platform.context import Context
from checkin.platform.instants import DAY_MS, format_ms
from tracing.rules import alerts as al
from tracing.storage.store import Store, StoreError
from tracing.streams.retry import Clock, RetryPolicy, SystemClock
from tracing.streams.runner import Runner

log = logging.getLogger("tracing.rules.escalation")

BATCH = 5000


def declare_metrics(ctx: Context) -> None:
    ctx.metrics.counter("checkin_alerts_escalated_total", "Alerts moved up a command-centre level, by level")


def step_interval_s(escalation_s: float) -> float:
    """How often the step runs: a tenth of the delay, between 0.2 s and 15 s."""
    return min(15.0, max(0.2, escalation_s / 10))


class Escalator:
    def __init__(self, ctx: Context, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.ctx = ctx
        self.store = store
        self.clock = clock
        self.delay_ms = int(ctx.settings.escalation_s * 1000)
        declare_metrics(ctx)

    def due(self, now_ms: int) -> list[al.Alert]:
        """Blocking: open, unacknowledged alerts below the city level whose time at their level is up."""
        sql = (
            f"SELECT * FROM {self.store.table('alerts')} FINAL "
            "WHERE at >= fromUnixTimestamp64Milli({lo:Int64}, 'UTC') "
            "AND at <= fromUnixTimestamp64Milli({hi:Int64}, 'UTC') "
            "AND acked = 0 AND resolved = 0 AND level != 'city' "
            "AND ifNull(escalated_at, at) <= fromUnixTimestamp64Milli({hi:Int64}, 'UTC') "
            "ORDER BY at, alert_id LIMIT {limit:UInt32}"
        )
        lo = now_ms - self.ctx.settings.retention_days * DAY_MS
        params = {"lo": lo, "hi": now_ms - self.delay_ms, "limit": BATCH}
        return [al.from_row(row) for row in self.store.dicts(sql, params)]

    def climb(self, alert: al.Alert, now_ms: int) -> list[str]:
        """Move ``alert`` up every level it is due for (in place); returns the levels reached."""
        rank = al.LEVELS.index(alert.level)
        since = alert.level_since_ms()
        reached: list[str] = []
        while rank < len(al.LEVELS) - 1 and since + self.delay_ms <= now_ms:
            rank += 1
            since += self.delay_ms
            reached.append(al.LEVELS[rank])
        if reached:
            alert.level, alert.escalated_at = al.LEVELS[rank], format_ms(since)
        return reached

    async def step(self) -> list[al.Alert]:
        """One pass: escalate what is due; returns the alerts escalated (in their new state)."""
        now_ms = int(self.clock() * 1000)
        found = await asyncio.to_thread(self.due, now_ms)
        moved: list[tuple[al.Alert, list[str]]] = []
        for alert in found:
            reached = self.climb(alert, now_ms)
            if reached:
                moved.append((alert, reached))
        if not moved:
            return []
        await asyncio.to_thread(al.insert_alerts, self.store, [a for a, _ in moved])
        for _alert, reached in moved:
            for level in reached:
                self.ctx.metrics.inc("checkin_alerts_escalated_total", level=level)
        await publish_events(self.ctx, [(a, "escalated") for a, _ in moved])
        return [a for a, _ in moved]


async def publish_events(ctx: Context, events: list[tuple[al.Alert, str]]) -> None:
    """XADD state changes to the alerts stream (live feed; the history writer re-inserts the same row)."""
    stream, cap = ctx.keys.alerts_stream(), ctx.settings.alerts_stream_maxlen
    pipe = ctx.redis.pipeline(transaction=False)
    for alert, event in events:
        pipe.xadd(stream, al.to_fields(alert, event), maxlen=cap, approximate=True)
    await pipe.execute()


class EscalationStep:
    """The escalator as a step of :class:`~tracing.streams.runner.Runner`: one pass per round."""

    name = "escalation"

    def __init__(self, escalator: Escalator) -> None:
        self.escalator = escalator

    async def setup(self) -> None:
        pass

    async def poll(self, stop: asyncio.Event) -> bool:
        moved = await self.escalator.step()
        if moved:
            log.info("escalated %d alert(s)", len(moved))
        return False  # the next pass after the interval, whatever this one found

    async def join(self, stop: asyncio.Event) -> bool:
        return True

    async def close(self) -> None:
        pass


def escalation(
    ctx: Context, store: Store, clock: Callable[[], float] = time.time, wait: Clock | None = None
) -> Runner:
    """The factory of worker ``escalation``: the step every :func:`step_interval_s` until ``stop``;
    a failed pass (any error) is logged and the next one comes after the same interval."""
    interval = step_interval_s(ctx.settings.escalation_s)
    return Runner(
        EscalationStep(Escalator(ctx, store, clock)),
        RetryPolicy(first_delay_s=interval, max_delay_s=interval, multiplier=1.0),
        wait or SystemClock(),
        retry_on=(StoreError, RedisError, OSError),
        any_error=True,
        idle_s=interval,
    )
