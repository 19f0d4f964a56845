"""Resident routes: registration (rate-limited per address), NDJSON bulk import (admin),
companions of the calling resident."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from typing import IO, Any

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import Stream

from checkin import protection
from checkin.platform.auth import Principal
from checkin.platform.context import Context
from checkin.platform.errors import BadInput, PayloadTooLarge
from checkin.platform.instants import now_ms
from checkin.platform.metrics import Metrics
from checkin.platform.service import Part
from checkin.residents import service as residents

TAGS = ["residents"]
REGISTRATIONS = "checkin_registrations_total"
IMPORT_LINES = "checkin_resident_import_lines_total"
IMPORT_CHUNK_LINES = 5_000
MAX_LINE_BYTES = 4_096
SPOOL_MEMORY_BYTES = 8 * 1024 * 1024
_encoder = msgspec.json.Encoder()


def setup_metrics(metrics: Metrics) -> None:
    metrics.counter(REGISTRATIONS, "Resident registrations, by outcome (created, existing)")
    metrics.counter(IMPORT_LINES, "Resident import lines, by outcome (created, updated, rejected)")


@post(
    "/v1/residents",
    status_code=201,
    summary="Register a resident (anyone; rate-limited per address); same id_number -> same person",
    tags=TAGS,
    responses={
        201: ResponseSpec(data_container=residents.Registered, description="Registered"),
        200: ResponseSpec(data_container=residents.Registered, description="Already registered"),
    },
)
async def register(
    data: residents.RegisterIn, ctx: Context, request: Request[Any, Any, Any]
) -> Response[bytes]:
    await protection.hit(
        ctx,
        [("registration", protection.client_ip(request.scope), ctx.settings.rate_register_per_min)],
        now_ms(),
    )
    out = await residents.register(ctx, data)
    ctx.metrics.inc(REGISTRATIONS, outcome="created" if out.created else "existing")
    return Response(
        content=_encoder.encode(out), status_code=201 if out.created else 200, media_type="application/json"
    )


async def _lines(request: Request[Any, Any, Any], limit: int) -> AsyncIterator[tuple[int, bytes]]:
    """(line number, bytes) of an NDJSON body read as a stream; an over-long line is yielded cut short
    (it then fails to decode and is reported) and the rest of it is skipped."""
    size = 0
    number = 0
    rest = b""
    skipping = False
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the import is larger than the limit of {limit} bytes")
        if skipping:
            pos = chunk.find(b"\n")
            if pos < 0:
                continue
            chunk = chunk[pos + 1 :]
            skipping = False
        data = rest + chunk if rest else chunk
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            number += 1
            yield number, data[start:end]
            start = end + 1
        rest = data[start:]
        if len(rest) > MAX_LINE_BYTES:
            number += 1
            yield number, rest[:MAX_LINE_BYTES]
            rest = b""
            skipping = True
    if rest.strip() and not skipping:
        yield number + 1, rest


def _spool_reader(spool: IO[bytes]) -> Any:
    def chunks() -> Any:
        try:
            spool.seek(0)
            while block := spool.read(256 * 1024):
                yield block
        finally:
            spool.close()

    return chunks()


@post(
    "/v1/residents/import",
    status_code=200,
    summary="Bulk registration from NDJSON (admin, streamed); one result line per input line",
    description=(
        'Body: one {"name", "phone", "id_number"} object a line. Good lines are imported (an id number '
        "seen before updates that person), bad lines are reported by line number. The answer is NDJSON: "
        '{"line", "person_id", "created", "token"} or {"line", "error"} per non-blank input line. '
        "?tokens=false leaves out the resident tokens."
    ),
    tags=TAGS,
    request_max_body_size=None,
)
async def import_residents(
    request: Request[Any, Any, Any], ctx: Context, principal: Principal, tokens: bool = True
) -> Stream:
    principal.require("admin")
    limit = ctx.settings.max_import_bytes
    announced = request.headers.get("content-length")
    if announced is not None and announced.isdigit() and int(announced) > limit:
        raise PayloadTooLarge(f"the import is larger than the limit of {limit} bytes")
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)
    counts = {"created": 0, "updated": 0, "rejected": 0}
    seen = 0
    try:
        batch: list[tuple[int, bytes]] = []

        async def flush() -> None:
            results = await residents.import_chunk(ctx, batch, with_tokens=tokens)
            for r in results:
                if r.error is not None:
                    counts["rejected"] += 1
                else:
                    counts["created" if r.created else "updated"] += 1
                spool.write(_encoder.encode(r))
                spool.write(b"\n")
            batch.clear()

        async for number, raw in _lines(request, limit):
            seen = number
            batch.append((number, raw))
            if len(batch) >= IMPORT_CHUNK_LINES:
                await flush()
        if batch:
            await flush()
    except BaseException:
        spool.close()
        raise
    for outcome, n in counts.items():
        if n:
            ctx.metrics.inc(IMPORT_LINES, n, outcome=outcome)
    if seen == 0:
        spool.close()
        raise BadInput("the request body is empty; send the NDJSON file as the body")
    return Stream(
        _spool_reader(spool),
        media_type="application/x-ndjson",
        headers={
            "X-Import-Created": str(counts["created"]),
            "X-Import-Updated": str(counts["updated"]),
            "X-Import-Rejected": str(counts["rejected"]),
        },
    )


@post(
    "/v1/residents/me/companions",
    status_code=201,
    summary="Add a family member you may check in with (resident)",
    tags=TAGS,
)
async def add_companion(
    data: residents.CompanionIn, ctx: Context, principal: Principal
) -> residents.Companion:
    principal.require("resident")
    return await residents.add_companion(ctx, principal.person_id or 0, data)


@get("/v1/residents/me/companions", summary="Your companions (resident)", tags=TAGS)
async def list_companions(ctx: Context, principal: Principal) -> list[residents.Companion]:
    principal.require("resident")
    return await residents.list_companions(ctx, principal.person_id or 0)


@delete("/v1/residents/me/companions/{person_id:int}", summary="Remove a companion (resident)", tags=TAGS)
async def remove_companion(person_id: int, ctx: Context, principal: Principal) -> None:
    principal.require("resident")
    await residents.remove_companion(ctx, principal.person_id or 0, person_id)


PART = Part(
    "residents",
    routes=[register, import_residents, add_companion, list_companions, remove_companion],
    metrics=setup_metrics,
)
