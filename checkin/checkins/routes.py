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
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.exceptions import ClientException, HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ASGIApp

from checkin import protection
from checkin.checkins import service as checkins
from checkin.platform import auth
from checkin.platform.auth import Principal
from checkin.platform.context import Context
from checkin.platform.metrics import DEFAULT_BUCKETS, Metrics
from checkin.protection import REJECTIONS, guard_of
from checkin.residents.service import now_ms
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
    return ctx.shared("latency", Latency)


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


VERIFIED_CODES_MAX = 65_536
"""Verified venue codes remembered per worker (a code's claims depend only on the keyring, which
a worker never changes; the code version and venue state are checked by the script every time)."""


def verify_code(ctx: Context, token: str) -> codes.CodeClaims:
    verified: dict[str, codes.CodeClaims] = ctx.shared("verified_codes", dict)
    claims = verified.get(token)
    if claims is not None:
        return claims
    try:
        claims = codes.verify(ctx.keyring, token)
    except codes.InvalidCode:
        ctx.metrics.inc(REJECTIONS, reason="bad_code")
        raise
    if len(verified) >= VERIFIED_CODES_MAX:
        verified.clear()
    verified[token] = claims
    return claims


# --- the two hot routes, answered from raw ASGI ---------------------------------------------------
#
# Litestar's per-request machinery (signature model, data extraction, dependency resolution,
# Request and Response objects) costs more CPU than the whole check-in. A route middleware reads
# the raw body, decodes it with msgspec and sends the encoded answer itself; routing, 405 and the
# OpenAPI documentation stay Litestar's, and errors raised on the way are rendered as
# problem+json by the app's exception handlers (checkin/http.py).

_checkin_decoder = msgspec.json.Decoder(checkins.CheckinIn)
_batch_decoder = msgspec.json.Decoder(checkins.BatchIn)
_JSON_HEADERS = (b"content-type", b"application/json")


async def read_body(scope: Any, receive: Any, limit: int) -> bytes:
    """The whole request body; 413 above ``limit`` bytes (announced or received)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                announced = int(value)
            except ValueError:
                raise ClientException(detail="Content-Length is not a number") from None
            if announced > limit:
                raise HTTPException(status_code=413, detail="Request Entity Too Large")
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientException(detail="the client closed the connection before sending the whole body")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise HTTPException(status_code=413, detail="Request Entity Too Large")
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def decode_body(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    """The request struct; 400 problem+json naming the field, as Litestar's own validation does."""
    if not body.strip():
        raise ValidationException(
            detail="Validation failed", extra=[{"message": "the request body is empty", "key": "data"}]
        )
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        text, sep, where = str(exc).rpartition(" - at `$")
        if sep:
            key = where.rstrip("`").lstrip(".") or "data"
        else:
            text, key = str(exc), "data"
        raise ValidationException(detail="Validation failed", extra=[{"message": text, "key": key}]) from None
    except msgspec.DecodeError as exc:
        raise ClientException(detail=str(exc)) from None


async def answer_checkin(
    ctx: Context, scope: Any, data: checkins.CheckinIn, started: float
) -> tuple[int, bytes]:
    principal = await auth.authenticate(ctx, authorization(scope))
    principal.require("resident")
    guard = guard_of(ctx)
    lite = guard.admit()
    claims = verify_code(ctx, data.code)
    guard.inflight += 1
    try:
        out = await checkins.check_in(
            ctx, principal.person_id or 0, data, claims, protection.client_ip(scope), now_ms(), lite
        )
    finally:
        guard.inflight -= 1
    latency_of(ctx).observe("checkin", time.perf_counter() - started)
    return 200 if out.duplicate else 201, _encoder.encode(out)


async def answer_batch(ctx: Context, scope: Any, data: checkins.BatchIn, started: float) -> tuple[int, bytes]:
    principal = await auth.authenticate(ctx, authorization(scope))
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
            ("ip", protection.client_ip(scope), s.rate_ip_per_min),
        ],
        now,
    )
    guard.inflight += 1
    try:
        out = await checkins.check_in_batch(ctx, owner, data, lambda t: verify_code(ctx, t), now, lite)
    finally:
        guard.inflight -= 1
    latency_of(ctx).observe("batch", time.perf_counter() - started)
    return 200, _encoder.encode(out)


Answer = Callable[[Context, Any, Any, float], Awaitable[tuple[int, bytes]]]


def raw_front(decoder: msgspec.json.Decoder[Any], answer: Answer) -> Callable[..., ASGIApp]:
    """Route middleware that answers the route itself from the raw ASGI messages (never calling
    the Litestar handler behind it): the body decoded by msgspec, the answer sent as bytes."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def front(scope: Any, receive: Any, send: Any) -> None:
            started = time.perf_counter()
            ctx: Context = scope["app"].state["ctx"]
            data = decode_body(decoder, await read_body(scope, receive, ctx.settings.max_body_bytes))
            status, content = await answer(ctx, scope, data, started)
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [_JSON_HEADERS, (b"content-length", str(len(content)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": content})

        return front

    return middleware


# The decorated functions define the routes and their OpenAPI documentation, and answer the same
# way through Litestar's own extraction; in service every request is answered by ``raw_front``.


@post(
    "/v1/checkins",
    status_code=201,
    summary="Check in at a venue by its code (resident); 200 for a repeat of the same check-in",
    tags=TAGS,
    responses={
        201: ResponseSpec(data_container=checkins.CheckinOut, description="Checked in"),
        200: ResponseSpec(data_container=checkins.CheckinOut, description="A repeat of the same check-in"),
    },
    middleware=[raw_front(_checkin_decoder, answer_checkin)],
)
async def post_checkin(data: checkins.CheckinIn, request: Request[Any, Any, Any]) -> Response[bytes]:
    started = time.perf_counter()
    status, content = await answer_checkin(context_of(request), request.scope, data, started)
    return Response(content=content, status_code=status, media_type=JSON)


@post(
    "/v1/checkins/batch",
    status_code=200,
    summary="Upload an offline queue of check-ins (resident); per-item results",
    tags=TAGS,
    responses={200: ResponseSpec(data_container=checkins.BatchOut, description="Per-item results")},
    middleware=[raw_front(_batch_decoder, answer_batch)],
)
async def post_batch(data: checkins.BatchIn, request: Request[Any, Any, Any]) -> Response[bytes]:
    started = time.perf_counter()
    status, content = await answer_batch(context_of(request), request.scope, data, started)
    return Response(content=content, status_code=status, media_type=JSON)


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
