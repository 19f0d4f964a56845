"""Operational routes both services share: ``/healthz`` and ``/metrics``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import MediaType, Response, get
from litestar.datastructures import State

from checkin.platform.context import Context

HealthCheck = Callable[[Context], Awaitable[tuple[bool, str]]]


async def redis_check(ctx: Context) -> tuple[bool, str]:
    try:
        await asyncio.wait_for(ctx.redis.ping(), timeout=2.0)
        return True, "ok"
    except Exception as exc:
        return False, f"unreachable: {type(exc).__name__}"


def health_route(checks: dict[str, HealthCheck]) -> Any:
    @get(
        "/healthz",
        media_type=MediaType.JSON,
        summary="Liveness: fails when a dependency is down",
        tags=["ops"],
    )
    async def healthz(state: State) -> Response[dict[str, Any]]:
        ctx: Context = state["ctx"]
        results = {name: await check(ctx) for name, check in checks.items()}
        ok = all(r[0] for r in results.values())
        body = {"status": "ok" if ok else "degraded", "checks": {k: v[1] for k, v in results.items()}}
        return Response(body, status_code=200 if ok else 503)

    return healthz


@get("/metrics", media_type="text/plain; version=0.0.4", summary="Prometheus metrics", tags=["ops"])
async def metrics_route(state: State) -> str:
    ctx: Context = state["ctx"]
    return await ctx.metrics.render(ctx.redis, ctx.keys.metrics(ctx.metrics.service))
