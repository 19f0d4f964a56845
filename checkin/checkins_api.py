"""Check-in routes (resident token): single, offline batch, check-out.

The handlers stay thin: decide shedding (:mod:`checkin.protection`), verify the venue
code in process, run :mod:`checkin.checkins`, answer with msgspec-encoded bytes.
Latency is aggregated per worker and folded into the shared metrics twice a second.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.openapi.datastructures import ResponseSpec

from checkin import auth, checkins, protection
from checkin.auth import Principal
from checkin.context import Context
from checkin.metrics import DEFAULT_BUCKETS, Metrics
from checkin.protection import REJECTIONS, guard_of
from checkin.residents import now_ms
from venues import codes

TAGS = ["check-ins"]
JSON = "application/json"
_encoder = msgspec.json.Encoder()


class Latency:
    """Per-worker latency histogram, folded into :class:`Metrics` periodically (cheap to record)."""

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
                    metrics.inc(checkins.LATENCY + "_bucket", total, route=route, le=le)
            metrics.inc(checkins.LATENCY + "_count", total, route=route)
            metrics.inc(checkins.LATENCY + "_sum", sums[route], route=route)


def latency_of(ctx: Context) -> Latency:
    found = ctx.extras.get("latency")
    if found is None:
        found = ctx.extras["latency"] = Latency()
    return found  # type: ignore[no-any-return]


async def _fold_loop(ctx: Context) -> None:
    latency = latency_of(ctx)
    while True:
        await asyncio.sleep(0.5)
        latency.fold(ctx.metrics)


def setup_metrics(metrics: Metrics) -> None:
    checkins.setup_metrics(metrics)
    protection.setup_metrics(metrics)


async def on_startup(ctx: Context) -> None:
    await checkins.load_scripts(ctx)
    guard_of(ctx).start()
    ctx.extras["latency_task"] = asyncio.create_task(_fold_loop(ctx))


async def on_shutdown(ctx: Context) -> None:
    await guard_of(ctx).stop()
    checkins.scripts(ctx).close()
    task = ctx.extras.pop("latency_task", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
    latency_of(ctx).fold(ctx.metrics)


def context_of(request: Request[Any, Any, Any]) -> Context:
    ctx: Context = request.app.state["ctx"]
    return ctx


def authorization(scope: Any) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return bytes(value).decode("latin-1")
    return None


async def caller(request: Request[Any, Any, Any]) -> tuple[Context, Principal]:
    """Context and caller of a hot route, resolved inline: Litestar runs several async
    dependencies through a task group, which costs more than the whole check-in."""
    ctx = context_of(request)
    return ctx, await auth.authenticate(ctx, authorization(request.scope))


def verify_code(ctx: Context, token: str) -> codes.CodeClaims:
    try:
        return codes.verify(ctx.keyring, token)
    except codes.InvalidCode:
        ctx.metrics.inc(REJECTIONS, reason="bad_code")
        raise


@post(
    "/v1/checkins",
    status_code=201,
    summary="Check in at a venue by its code (resident); 200 for a repeat of the same check-in",
    tags=TAGS,
    responses={
        201: ResponseSpec(data_container=checkins.CheckinOut, description="Checked in"),
        200: ResponseSpec(data_container=checkins.CheckinOut, description="A repeat of the same check-in"),
    },
)
async def post_checkin(data: checkins.CheckinIn, request: Request[Any, Any, Any]) -> Response[bytes]:
    started = time.perf_counter()
    ctx, principal = await caller(request)
    principal.require("resident")
    guard = guard_of(ctx)
    lite = guard.admit()
    claims = verify_code(ctx, data.code)
    guard.inflight += 1
    try:
        out = await checkins.check_in(
            ctx, principal.person_id or 0, data, claims, protection.client_ip(request.scope), now_ms(), lite
        )
    finally:
        guard.inflight -= 1
    latency_of(ctx).observe("checkin", time.perf_counter() - started)
    return Response(content=_encoder.encode(out), status_code=200 if out.duplicate else 201, media_type=JSON)


@post(
    "/v1/checkins/batch",
    status_code=200,
    summary="Upload an offline queue of check-ins (resident); per-item results",
    tags=TAGS,
    responses={200: ResponseSpec(data_container=checkins.BatchOut, description="Per-item results")},
)
async def post_batch(data: checkins.BatchIn, request: Request[Any, Any, Any]) -> Response[bytes]:
    started = time.perf_counter()
    ctx, principal = await caller(request)
    principal.require("resident")
    guard = guard_of(ctx)
    lite = guard.admit()
    owner = principal.person_id or 0
    now = now_ms()
    s = ctx.settings
    await protection.hit(
        ctx,
        [
            ("res", str(owner), s.rate_resident_per_min),
            ("ip", protection.client_ip(request.scope), s.rate_ip_per_min),
        ],
        now,
    )
    guard.inflight += 1
    try:
        out = await checkins.check_in_batch(ctx, owner, data, lambda t: verify_code(ctx, t), now, lite)
    finally:
        guard.inflight -= 1
    latency_of(ctx).observe("batch", time.perf_counter() - started)
    return Response(content=_encoder.encode(out), status_code=200, media_type=JSON)


@post(
    "/v1/checkins/{checkin_id:str}/checkout",
    status_code=200,
    summary="End the stay of one of your check-ins (within 12 h of its start)",
    tags=TAGS,
)
async def post_checkout(checkin_id: str, ctx: Context, principal: Principal) -> checkins.CheckoutOut:
    principal.require("resident")
    return await checkins.check_out(ctx, principal.person_id or 0, checkin_id, now_ms())


route_handlers: list[Any] = [post_checkin, post_batch, post_checkout]
