"""The tracing side's background workers and the one runner that starts and stops them.

A worker is ``async def run(ctx, store, stop)`` that returns once ``stop`` is set. The stream
workers are registered here the same way: by the factories of their steps
(:mod:`tracing.streams.runner`), each building a step with its retry and dead-letter policies; a
worker serves its factories' runners side by side (``rules``: the rule consumer and the alerts
history writer). The same :class:`WorkerSet` runs them inside the tracing service
(``CHECKIN_TRACING_WORKERS``, what ``checkin up`` uses with the embedded engine) and as their own
processes (``checkin sink``, ``checkin rules``) against a ClickHouse server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from checkin.platform.context import Context
from checkin.platform.redis_conn import connect
from checkin.platform.settings import Settings, chosen_names
from tracing.notices.worker import notice_worker
from tracing.rules.engine import rules_consumer
from tracing.rules.escalation import escalation
from tracing.rules.history import alerts_history
from tracing.sink.audit_trail import audit_copier
from tracing.sink.consumer import sink_consumer
from tracing.sink.venue_mirror import venue_mirror
from tracing.storage.store import Store, StoreError
from tracing.streams.runner import Factory, Worker, served

log = logging.getLogger("tracing.workers")

STEPS: dict[str, tuple[Factory, ...]] = {
    "sink": (sink_consumer,),
    "rules": (rules_consumer, alerts_history()),
    "mirror": (venue_mirror,),
    "audit": (audit_copier,),
    "notices": (notice_worker,),
    "escalation": (escalation,),
}
"""Every worker: name -> the factories of the steps it runs."""

WORKERS: dict[str, Worker] = {name: served(*factories) for name, factories in STEPS.items()}


def worker_names(value: str) -> tuple[str, ...]:
    """The workers ``CHECKIN_TRACING_WORKERS`` names (comma-separated, or ``all``); an unknown one is a
    :class:`SettingsError`."""
    return chosen_names("CHECKIN_TRACING_WORKERS", value, tuple(WORKERS), "worker")


STOP_TIMEOUT_S = 30.0


class WorkerSet:
    def __init__(self, ctx: Context, store: Store, names: Sequence[str]) -> None:
        unknown = [n for n in names if n not in WORKERS]
        if unknown:
            raise ValueError(f"unknown worker(s) {', '.join(unknown)}; known: {', '.join(WORKERS)}")
        self.ctx = ctx
        self.store = store
        self.names = tuple(names)
        self.stop_event = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for name in self.names:
            self.tasks.append(
                asyncio.create_task(WORKERS[name](self.ctx, self.store, self.stop_event), name=name)
            )

    async def wait(self) -> None:
        """Until every worker has returned (they return once stopped)."""
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Ask every worker to stop (each flushes what it holds), cancel what outlives the timeout."""
        self.stop_event.set()
        for task in self.tasks:
            try:
                await asyncio.wait_for(task, timeout=timeout_s)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
            except Exception:
                log.exception("background worker %s failed", task.get_name())


async def run_standalone(settings: Settings, names: Sequence[str]) -> int:
    """``checkin sink`` / ``checkin rules``: the workers as a process of their own, until SIGTERM."""
    try:
        store = await asyncio.to_thread(Store.from_settings, settings)
        await asyncio.to_thread(store.apply_schema, settings.retention_days)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        client = await connect(settings)
    except ConnectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        store.close()
        return 1
    ctx = Context.build(settings, client, "tracing")
    workers = WorkerSet(ctx, store, names)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, workers.stop_event.set)
    metrics_key = ctx.keys.metrics("tracing")
    flusher = asyncio.create_task(ctx.metrics.run_flusher(client, metrics_key))
    try:
        workers.start()
        await workers.wait()
    finally:
        await workers.stop()
        flusher.cancel()
        with contextlib.suppress(BaseException):
            await flusher
        with contextlib.suppress(Exception):
            await ctx.metrics.flush(client, metrics_key)
        await client.aclose()
        store.close()
    return 0
