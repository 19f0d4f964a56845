"""The tracing service: owns ClickHouse; runs the sink, the rules and the analyst API.

With the embedded engine only this process may open the data path, so the
sink and the rule engine run here as background tasks (``checkin up``); in a
split deployment against a ClickHouse server they can run as their own
processes (``checkin sink``, ``checkin rules``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from typing import Any

from litestar import Litestar

from checkin.platform.context import Context
from checkin.platform.service import build_app
from checkin.platform.settings import Settings, get_settings
from tracing.storage.store import Store

log = logging.getLogger("tracing.app")

TRACING_MODULES: list[str] = [
    "tracing.api.alerts",
    "tracing.api.exposure_sites",
    "tracing.api.trace",
    "tracing.api.audit",
    "tracing.api.stats",
    "tracing.api.console",
    "tracing.sink.consumer",
]

BACKGROUND_WORKERS = {
    "sink": ("tracing.sink.consumer", "run_sink"),
    "rules": ("tracing.rules.engine", "run_rules"),
    "mirror": ("tracing.sink.venue_mirror", "run_venue_mirror"),
}


async def store_check(ctx: Context) -> tuple[bool, str]:
    store: Store = ctx.extras["store"]
    ok = await asyncio.to_thread(store.ping)
    return ok, "ok" if ok else "query failed"


def create_app(
    settings: Settings | None = None,
    redis: Any = None,
    store: Store | None = None,
    workers: tuple[str, ...] | None = None,
) -> Litestar:
    """``workers`` names background loops to run here (default: from CHECKIN_TRACING_WORKERS)."""
    import os

    cfg = settings or get_settings()
    if workers is None:
        env = os.environ.get("CHECKIN_TRACING_WORKERS", "")
        workers = tuple(w for w in env.split(",") if w)
    tasks: list[asyncio.Task[None]] = []
    stop = asyncio.Event()

    async def before_startup(ctx: Context) -> None:
        own: Store = store if store is not None else await asyncio.to_thread(Store.from_settings, cfg)
        ctx.extras["store"] = own
        ctx.extras["owns_store"] = store is None
        await asyncio.to_thread(own.apply_schema, cfg.retention_days)
        ctx.extras["stop"] = stop
        for name in workers or ():
            module_name, func_name = BACKGROUND_WORKERS[name]
            func = getattr(importlib.import_module(module_name), func_name)
            tasks.append(asyncio.create_task(func(ctx, own, stop), name=name))

    async def after_shutdown(ctx: Context) -> None:
        stop.set()
        for task in tasks:
            try:
                await asyncio.wait_for(task, timeout=30)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
            except Exception:
                log.exception("background worker %s failed", task.get_name())
        if ctx.extras.get("owns_store"):
            with contextlib.suppress(Exception):
                ctx.extras["store"].close()

    return build_app(
        service="tracing",
        title="venue-checkin tracing API",
        modules=TRACING_MODULES,
        settings=cfg,
        extra_checks={"clickhouse": store_check},
        before_startup=before_startup,
        after_shutdown=after_shutdown,
        redis=redis,
    )
