"""The tracing service: owns ClickHouse; runs the analyst API and, when asked, the background workers.

With the embedded engine only this process may open the data path, so the sink, the rules and the
venue mirror run here (``CHECKIN_TRACING_WORKERS=sink,rules,mirror``, what ``checkin up`` does); in a
split deployment against a ClickHouse server they run as their own processes (``checkin sink``,
``checkin rules``). Handlers receive the store as the ``store`` dependency.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from litestar import Litestar, Request, Response
from litestar.di import Provide

from checkin.platform.context import Context
from checkin.platform.errors import DomainError, Unavailable
from checkin.platform.problems import EXCEPTION_HANDLERS
from checkin.platform.secrets import get_settings
from checkin.platform.service import Part, build_app
from checkin.platform.settings import Settings
from tracing.answers.calls import StoreUnavailable
from tracing.api import (
    alert_queue,
    alerts,
    audit,
    console,
    exposure_sites,
    own_visits,
    person_lookup,
    regions,
    report,
    sources,
    stats,
    trace,
)
from tracing.storage.store import Store, StoreError
from tracing.streams import gauges
from tracing.workers import WorkerSet, worker_names

TRACING_PARTS: list[Part] = [
    alerts.PART,
    alert_queue.PART,
    exposure_sites.PART,
    trace.PART,
    sources.PART,
    person_lookup.PART,
    audit.PART,
    stats.PART,
    report.PART,
    regions.PART,
    console.PART,
    own_visits.PART,
    Part("stream-gauges", on_startup=gauges.register),
]


def store_failed(request: Request[Any, Any, Any], exc: StoreError) -> Response[Any]:
    """A failed ClickHouse read answers 503 with Retry-After, as a problem naming the store (the trace
    store unless the answer said otherwise); no route turns a store error into HTTP by hand."""
    store = exc.store if isinstance(exc, StoreUnavailable) else "trace"
    answer: Response[Any] = EXCEPTION_HANDLERS[DomainError](
        request, Unavailable(f"the {store} store failed: {exc}", retry_after=5)
    )
    return answer


class _Running:
    """What the service holds while it runs: the store and its background workers."""

    store: Store | None = None
    owns_store: bool = False
    workers: WorkerSet | None = None

    def the_store(self) -> Store:
        if self.store is None:
            raise RuntimeError("the tracing service has not started")
        return self.store


def create_app(
    settings: Settings | None = None,
    redis: Any = None,
    store: Store | None = None,
    workers: Sequence[str] | None = None,
) -> Litestar:
    """``workers`` names background workers to run here (default: ``CHECKIN_TRACING_WORKERS``)."""
    cfg = settings or get_settings()
    names = tuple(workers) if workers is not None else worker_names(cfg.tracing_workers)
    running = _Running()

    async def store_check(ctx: Context) -> tuple[bool, str]:
        ok = await asyncio.to_thread(running.the_store().ping)
        return ok, "ok" if ok else "query failed"

    async def before_startup(app: Litestar, ctx: Context) -> None:
        own = store if store is not None else await asyncio.to_thread(Store.from_settings, cfg)
        running.store, running.owns_store = own, store is None
        app.state["store"] = own
        await asyncio.to_thread(own.apply_schema, cfg.retention_days)
        running.workers = WorkerSet(ctx, own, names)
        running.workers.start()

    async def after_shutdown(app: Litestar, ctx: Context) -> None:
        if running.workers is not None:
            await running.workers.stop()
        if running.owns_store and running.store is not None:
            with contextlib.suppress(Exception):
                running.store.close()

    app = build_app(
        service="tracing",
        title="venue-checkin tracing API",
        parts=TRACING_PARTS,
        settings=cfg,
        extra_checks={"clickhouse": store_check},
        dependencies={"store": Provide(running.the_store, sync_to_thread=False)},
        before_startup=before_startup,
        after_shutdown=after_shutdown,
        redis=redis,
    )
    # The app's exception map, besides the platform's: typed store errors answer 503 in one place.
    app.exception_handlers = {**app.exception_handlers, StoreError: store_failed}
    return app
