"""Admission of hot-path requests (check-in, batch, sentinel upload), written once for all three.

:func:`admitted` decides shedding (:class:`checkin.protection.Guard`: back-pressure and load
shedding raise 503, an overloaded worker runs the request *lite*), counts the request in flight
while it runs and records its latency. Latency is aggregated per worker in a small histogram
(cheap to record) and folded into the shared metrics twice a second.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time

from checkin.platform.context import Context
from checkin.platform.metrics import DEFAULT_BUCKETS, Metrics
from checkin.protection import guard_of

LATENCY = "checkin_request_seconds"
FOLD_EVERY_S = 0.5


def setup_metrics(metrics: Metrics) -> None:
    metrics.histogram(LATENCY, "Time to answer a check-in request, by route")


class Latency:
    """Per-worker latency histogram, folded into :class:`Metrics` periodically."""

    def __init__(self, buckets: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        self.buckets = buckets
        self.counts: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}

    def observe(self, route: str, seconds: float) -> None:
        counts = self.counts.get(route)
        if counts is None:
            counts = self.counts[route] = [0] * (len(self.buckets) + 1)
            self.sums[route] = 0.0
        counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self.sums[route] += seconds

    def fold(self, metrics: Metrics) -> None:
        counts, sums = self.counts, self.sums
        self.counts, self.sums = {}, {}
        for route, row in counts.items():
            total = 0
            for bound, n in zip((*self.buckets, float("inf")), row, strict=True):
                total += n
                if total:
                    le = "+Inf" if bound == float("inf") else repr(bound)
                    metrics.inc(LATENCY + "_bucket", total, route=route, le=le)
            metrics.inc(LATENCY + "_count", total, route=route)
            metrics.inc(LATENCY + "_sum", sums[route], route=route)


def latency_of(ctx: Context) -> Latency:
    return ctx.shared("latency", Latency)


class admitted:
    """Admit one request (503 when it must be shed); ``as`` gives True when it should run lite.
    (A class, not ``contextlib.contextmanager``: it runs on every hot request and costs a third.)"""

    __slots__ = ("ctx", "guard", "route", "started")

    def __init__(self, ctx: Context, route: str) -> None:
        self.ctx = ctx
        self.route = route
        self.guard = guard_of(ctx)

    def __enter__(self) -> bool:
        self.started = time.perf_counter()
        lite = self.guard.admit()
        self.guard.inflight += 1
        return lite

    def __exit__(self, *exc: object) -> None:
        self.guard.inflight -= 1
        latency_of(self.ctx).observe(self.route, time.perf_counter() - self.started)


class LatencyFolder:
    """The task that folds each worker's latency histogram into the shared metrics."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        latency = latency_of(self.ctx)
        while True:
            await asyncio.sleep(FOLD_EVERY_S)
            latency.fold(self.ctx.metrics)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task
        latency_of(self.ctx).fold(self.ctx.metrics)


def folder_of(ctx: Context) -> LatencyFolder:
    return ctx.shared("latency_folder", lambda: LatencyFolder(ctx))
