"""Building a Litestar service from the parts of its rooms, sharing one :class:`Context`.

Each room exposes one :class:`Part`: its routes, its metric declarations and its start and stop
hooks. A service names the parts it serves by importing them (``checkin.app``, ``tracing.app``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from litestar import Litestar, Request
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.handlers import BaseRouteHandler
from litestar.openapi import OpenAPIConfig

from checkin.platform import auth, json_depth, openapi_doc, strict_body
from checkin.platform.context import Context, get_ctx
from checkin.platform.metrics import Metrics
from checkin.platform.openapi_structs import MsgspecStructSchemaPlugin
from checkin.platform.openapi_ui import render_plugin, swagger_asset
from checkin.platform.ops import HealthCheck, health_route, metrics_route, redis_check
from checkin.platform.problems import EXCEPTION_HANDLERS, PROBLEMS
from checkin.platform.redis_conn import connect
from checkin.platform.secrets import get_settings
from checkin.platform.serve import SERVED_WORKER_ENV, exit_with_parent
from checkin.platform.settings import Settings

log = logging.getLogger("checkin.platform.service")

Hook = Callable[[Context], Awaitable[None]]
SHUTDOWN_STEP_S = 10.0
"""How long one shutdown step may take before the service stops without it (and logs which)."""
AFTER_SHUTDOWN_S = 60.0
"""The service's own last step: it stops its workers, which get 30 s each to flush what they hold."""
AppHook = Callable[[Litestar, Context], Awaitable[None]]


async def _bounded(step: str, work: Awaitable[None], timeout_s: float | None = None) -> None:
    """One shutdown step: a failed or stuck step is logged and the next one still runs, so a
    service always stops (a Redis that stops answering must not hold the process forever)."""
    timeout_s = SHUTDOWN_STEP_S if timeout_s is None else timeout_s
    try:
        await asyncio.wait_for(work, timeout=timeout_s)
    except TimeoutError:
        log.warning("%s did not finish in %.0f s; stopping without it", step, timeout_s)
    except Exception:
        log.exception("%s failed", step)


@dataclass(frozen=True)
class Part:
    """What one room adds to a service."""

    name: str
    routes: Sequence[Any] = ()
    metrics: Callable[[Metrics], None] | None = None
    """Declares the room's counters and histograms (help text and type on /metrics)."""
    on_startup: Hook | None = None
    on_shutdown: Hook | None = None


async def _measure_body(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """The app's guard, run before every route's own (role) guards: a body nested too deep is a 400
    on every route whoever sends it (:mod:`~checkin.platform.json_depth`)."""
    if isinstance(connection, Request):
        await json_depth.guard(connection)


async def _before_request(request: Request[Any, Any, Any]) -> None:
    """Every body (measured by :func:`_measure_body`) is decoded as strictly as the documents
    describe it (:mod:`~checkin.platform.strict_body`) before the route reads it."""
    await strict_body.check(request)


def build_app(
    *,
    service: str,
    title: str,
    parts: Sequence[Part],
    settings: Settings | None = None,
    extra_checks: dict[str, HealthCheck] | None = None,
    dependencies: Mapping[str, Provide] | None = None,
    before_startup: AppHook | None = None,
    after_shutdown: AppHook | None = None,
    redis: Any = None,
) -> Litestar:
    """One service app. ``redis`` lets tests pass their own client."""
    cfg = settings or get_settings()
    checks: dict[str, HealthCheck] = {"redis": redis_check, **(extra_checks or {})}
    declared: list[Any] = [health_route(checks), metrics_route, *(h for part in parts for h in part.routes)]
    handlers = [openapi_doc.document(h, {"ctx", "principal", *(dependencies or {})}) for h in declared]

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if os.environ.get(SERVED_WORKER_ENV):
            exit_with_parent()
        client = redis if redis is not None else await connect(cfg)
        ctx = Context.build(cfg, client, service)
        app.state["ctx"] = ctx
        ctx.metrics.counter(PROBLEMS, "Requests refused with a problem+json answer, by status and reason")
        for part in parts:
            if part.metrics is not None:
                part.metrics(ctx.metrics)
        if before_startup is not None:
            await before_startup(app, ctx)
        for part in parts:
            if part.on_startup is not None:
                await part.on_startup(ctx)
        flusher = asyncio.create_task(ctx.metrics.run_flusher(client, ctx.keys.metrics(service)))
        ctx.stop_signal.install(asyncio.get_running_loop())
        try:
            yield
        finally:
            ctx.stop_signal.restore()
            ctx.stop_signal.fire()
            flusher.cancel()
            with contextlib.suppress(BaseException):
                await flusher
            for part in reversed(parts):
                if part.on_shutdown is not None:
                    await _bounded(f"shutdown hook of {part.name}", part.on_shutdown(ctx))
            if after_shutdown is not None:
                await _bounded(f"{service} shutdown", after_shutdown(app, ctx), AFTER_SHUTDOWN_S)
            await _bounded("last metrics flush", ctx.metrics.flush(client, ctx.keys.metrics(service)))
            if redis is None:
                await _bounded("closing Redis", client.aclose())

    return Litestar(
        route_handlers=[*openapi_doc.options_answers(handlers), swagger_asset, *handlers],
        lifespan=[lifespan],
        dependencies={
            "ctx": Provide(get_ctx, sync_to_thread=False),
            "principal": Provide(auth.provide_principal),
            **(dependencies or {}),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        guards=[_measure_body],
        before_request=_before_request,
        openapi_config=OpenAPIConfig(
            title=title,
            version="1.0.0",
            path="/schema",
            render_plugins=[render_plugin()],
            components=openapi_doc.components(),
        ),
        plugins=[MsgspecStructSchemaPlugin()],
        request_max_body_size=cfg.max_body_bytes,
        debug=False,
    )
