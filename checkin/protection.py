"""Protection of the ingest hot path: rate limits, back-pressure and load shedding.

* **Rate limits** (429 + Retry-After): fixed one-minute windows per resident and per
  client address. The check-in script bumps them in the same Redis call as the check-in
  (keys ``rate_tagged``); registrations and batches use :func:`hit` (one pipelined call).
* **Back-pressure** (503 + Retry-After): each worker samples the un-acked backlog of the
  scan streams every ``BACKLOG_SAMPLE_S`` (one pipelined ``XLEN`` per shard: the sink trims
  what every group has acknowledged, so a stream's length is its un-acked backlog). Above
  ``CHECKIN_BACKLOG_LIMIT`` check-ins are refused before they reach Redis.
* **Load shedding** (fast 503 + Retry-After instead of a timeout): per worker, when more than
  ``CHECKIN_SHED_INFLIGHT`` check-ins are in progress or the event loop lags more than
  ``CHECKIN_SHED_LOOP_LAG_MS``. Before that, above ``CHECKIN_DEGRADE_INFLIGHT`` (or half the
  lag limit) check-ins run *lite*: the test-result lookup is skipped (a venue that requires
  a test answers ``restricted`` / ``test_unchecked`` so staff check the test by hand), but
  the scan is still recorded.

Every refusal is counted in ``checkin_rejections_total{reason=...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from checkin.platform.client_address import client_address
from checkin.platform.context import Context
from checkin.platform.errors import TooManyRequests, Unavailable
from checkin.platform.metrics import Metrics

log = logging.getLogger("checkin.protection")

REJECTIONS = "checkin_rejections_total"
BACKLOG_SAMPLE_S = 0.5
LAG_SAMPLE_S = 0.05
WINDOW_MS = 60_000
SHED_RETRY_AFTER_S = 1
BACKLOG_RETRY_AFTER_S = 5


def setup_metrics(metrics: Metrics) -> None:
    metrics.counter(
        REJECTIONS,
        "Requests refused on the ingest hot path, by reason (rate_limited, backlog, shed, bad_code, "
        "old_code, inactive, unknown_venue, foreign_companion, bad_time, ...)",
    )


def window_now(now_ms: int) -> tuple[int, int]:
    """(window number, seconds until it ends) of the one-minute rate window at ``now_ms``."""
    window = now_ms // WINDOW_MS
    return window, max(1, -(-((window + 1) * WINDOW_MS - now_ms) // 1000))


class Guard:
    """Per-worker load state: in-flight check-ins, event-loop lag, sampled stream backlog."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.inflight = 0
        self.lag_s = 0.0
        self.backlog = 0
        self.backlog_at = 0.0
        self._tasks: list[asyncio.Task[None]] = []

    # --- the per-request decision ------------------------------------------------------------
    def admit(self) -> bool:
        """Raise Unavailable when this request must be shed; return True to run it lite."""
        s = self.ctx.settings
        if self.backlog > s.backlog_limit:
            self.ctx.metrics.inc(REJECTIONS, reason="backlog")
            raise Unavailable(
                "check-ins are paused while the scan backlog is written to the tracing store; retry shortly",
                retry_after=BACKLOG_RETRY_AFTER_S,
            )
        lag_ms = self.lag_s * 1000
        if self.inflight >= s.shed_inflight or lag_ms > s.shed_loop_lag_ms:
            self.ctx.metrics.inc(REJECTIONS, reason="shed")
            raise Unavailable(
                "the check-in service is at capacity; retry shortly", retry_after=SHED_RETRY_AFTER_S
            )
        return self.inflight >= s.degrade_inflight or lag_ms > s.shed_loop_lag_ms / 2

    # --- background sampling ----------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._sample_backlog()), asyncio.create_task(self._watch_lag())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks = []

    async def sample_backlog_once(self) -> int:
        pipe = self.ctx.redis.pipeline(transaction=False)
        for stream in self.ctx.keys.streams():
            pipe.xlen(stream)
        self.backlog = sum(int(n) for n in await pipe.execute())
        self.backlog_at = time.monotonic()
        return self.backlog

    async def _sample_backlog(self) -> None:
        while True:
            try:
                await self.sample_backlog_once()
            except Exception as exc:  # Redis down: the check-in itself will fail and say so
                log.debug("backlog sample failed: %s", exc)
            await asyncio.sleep(BACKLOG_SAMPLE_S)

    async def _watch_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(LAG_SAMPLE_S)
            lag = max(0.0, loop.time() - start - LAG_SAMPLE_S)
            # smoothed: one long pause (a GC, a slow import) does not shed, a sustained stall does
            self.lag_s = 0.7 * self.lag_s + 0.3 * lag


def guard_of(ctx: Context) -> Guard:
    return ctx.shared("guard", lambda: Guard(ctx))


async def hit(ctx: Context, checks: list[tuple[str, str, int]], now_ms: int, shard: int = 0) -> None:
    """Count one request against each (kind, ident, limit per minute); 429 when one is over."""
    window, retry = window_now(now_ms)
    pipe = ctx.redis.pipeline(transaction=False)
    names = []
    for kind, ident, _limit in checks:
        key = ctx.keys.rate_tagged(shard, kind, ident, window)
        names.append(key)
        pipe.incr(key)
        pipe.pexpire(key, WINDOW_MS + 1000)
    replies: list[Any] = await pipe.execute()
    for i, (kind, _ident, limit) in enumerate(checks):
        if int(replies[2 * i]) > limit:
            ctx.metrics.inc(REJECTIONS, reason="rate_limited")
            raise TooManyRequests(
                f"too many requests from this {'resident' if kind == 'resident' else 'address'}; "
                f"at most {limit} a minute",
                retry_after=retry,
            )


async def spend(
    ctx: Context, kind: str, ident: str, cost: int, limit: int, now_ms: int, shard: int = 0
) -> bool:
    """Spend ``cost`` of a per-minute budget the check-in script also counts (the same key); False
    when the budget is exceeded."""
    key = ctx.keys.rate_tagged(shard, kind, ident, window_now(now_ms)[0])
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.incrby(key, cost)
    pipe.pexpire(key, WINDOW_MS + 1000)
    used, _ = await pipe.execute()
    return int(used) <= limit


def client_ip(ctx: Context, scope: Any) -> str:
    """The request's client address (the peer, or behind a trusted proxy the forwarded client)."""
    return client_address(scope, ctx.settings.trusted_proxies)
