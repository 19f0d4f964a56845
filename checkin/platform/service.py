"""Building a Litestar service from route modules that share one Context.

A route module exports ``route_handlers`` and may define ``async def
on_startup(ctx)`` / ``async def on_shutdown(ctx)`` and ``setup_metrics(metrics)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import ModuleType
from typing import Any

from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from checkin.platform import auth
from checkin.platform.context import Context, get_ctx
from checkin.platform.ops import HealthCheck, health_route, metrics_route, redis_check
from checkin.platform.problems import EXCEPTION_HANDLERS
from checkin.platform.redis_conn import connect
from checkin.platform.settings import Settings, get_settings

log = logging.getLogger("checkin.platform.service")


def load_modules(names: Sequence[str]) -> list[ModuleType]:
    return [importlib.import_module(name) for name in names]


def build_app(
    *,
    service: str,
    title: str,
    modules: Sequence[str],
    settings: Settings | None = None,
    extra_checks: dict[str, HealthCheck] | None = None,
    before_startup: Callable[[Context], Awaitable[None]] | None = None,
    after_shutdown: Callable[[Context], Awaitable[None]] | None = None,
    redis: Any = None,
) -> Litestar:
    """One service app. ``redis`` lets tests pass their own client."""
    cfg = settings or get_settings()
    mods = load_modules(modules)
    handlers: list[Any] = []
    for mod in mods:
        handlers.extend(getattr(mod, "route_handlers", []))
    checks: dict[str, HealthCheck] = {"redis": redis_check, **(extra_checks or {})}

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        client = redis if redis is not None else await connect(cfg)
        ctx = Context.build(cfg, client, service)
        app.state["ctx"] = ctx
        for mod in mods:
            setup = getattr(mod, "setup_metrics", None)
            if setup is not None:
                setup(ctx.metrics)
        if before_startup is not None:
            await before_startup(ctx)
        for mod in mods:
            hook = getattr(mod, "on_startup", None)
            if hook is not None:
                await hook(ctx)
        flusher = asyncio.create_task(ctx.metrics.run_flusher(client, ctx.keys.metrics(service)))
        try:
            yield
        finally:
            flusher.cancel()
            with contextlib.suppress(BaseException):
                await flusher
            for mod in reversed(mods):
                hook = getattr(mod, "on_shutdown", None)
                if hook is not None:
                    try:
                        await hook(ctx)
                    except Exception:
                        log.exception("shutdown hook of %s failed", mod.__name__)
            if after_shutdown is not None:
                await after_shutdown(ctx)
            with contextlib.suppress(Exception):
                await ctx.metrics.flush(client, ctx.keys.metrics(service))
            if redis is None:
                await client.aclose()

    return Litestar(
        route_handlers=[health_route(checks), metrics_route, *handlers],
        lifespan=[lifespan],
        dependencies={
            "ctx": Provide(get_ctx, sync_to_thread=False),
            "principal": Provide(auth.provide_principal),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(
            title=title,
            version="1.0.0",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
        request_max_body_size=cfg.max_body_bytes,
        debug=False,
    )
