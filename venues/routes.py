"""Venue routes of the ingest service: registry, CSV import, codes, posters, entries.

Operators (optionally bound to one venue or scoped to a jurisdiction prefix)
and admins manage venues; everything else is in :mod:`venues.registry`.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, patch, post
from litestar.datastructures import State
from litestar.params import Parameter

from checkin.platform import audit_trail
from checkin.platform.auth import Principal, requires_role
from checkin.platform.client_address import client_address
from checkin.platform.context import Context
from checkin.platform.errors import BadInput, Forbidden, NotFound, PayloadTooLarge, Unprocessable
from checkin.platform.metrics import Metrics
from checkin.platform.redis_conn import sync_client
from checkin.platform.service import Part
from venues import csv_rows, day, history, importer, inputs, poster, registry, scanned_code
from venues.model import Venue

IMPORT_ROWS = "checkin_venue_import_rows_total"
SPOOL_MEMORY_BYTES = 8 * 1024 * 1024

TAGS = ["venues"]
OPERATOR = [requires_role("operator")]
"""Venue routes admit operators and admins; the venue's jurisdiction and binding are checked in
:mod:`venues.registry`."""


def setup_metrics(metrics: Metrics) -> None:
    metrics.counter(
        scanned_code.CODE_CHECKS,
        "Venue codes checked for the phone page, by result "
        "(ok, tampered, unknown, inactive, old_version, code_expired, static_code)",
    )
    metrics.counter(
        IMPORT_ROWS, "Venue CSV rows imported, by outcome (created, updated, unchanged, rejected)"
    )


def _venue_id(value: int) -> int:
    if not 1 <= value <= 2**32 - 1:
        raise NotFound(f"no venue {value}")
    return value


@post(
    "/v1/venues",
    summary="Register a venue (operator, admin)",
    tags=TAGS,
    problems=(409, 422),
    guards=OPERATOR,
)
async def create_venue(data: inputs.VenueIn, ctx: Context, principal: Principal) -> Venue:
    return await registry.create_venue(ctx, principal, data)


@get("/v1/venues", summary="Venues visible to the caller, by id", tags=TAGS, guards=OPERATOR)
async def list_venues(
    ctx: Context,
    principal: Principal,
    community: Annotated[
        str,
        Parameter(
            description="district, street or community code prefix",
            max_length=12,
            schema_extra={"pattern": f"^{registry.COMMUNITY_PREFIX}$"},
        ),
    ] = "",
    q: Annotated[
        str, Parameter(description="venue number, or part of the name or address", max_length=100)
    ] = "",
    after: Annotated[int, Parameter(ge=0, description="return venues with a larger id")] = 0,
    limit: Annotated[int, Parameter(ge=1, le=registry.MAX_LIST_LIMIT)] = 50,
) -> registry.VenuePage:
    return await registry.list_venues(ctx, principal, community=community, q=q, after=after, limit=limit)


@get("/v1/venues/{venue_id:int}", summary="One venue", tags=TAGS, guards=OPERATOR)
async def get_venue(venue_id: int, ctx: Context, principal: Principal) -> Venue:
    return await registry.get_venue(ctx, principal, _venue_id(venue_id))


@patch(
    "/v1/venues/{venue_id:int}",
    summary="Change a venue; {active: false, reason} closes it (its codes then answer 410 with the date)",
    tags=TAGS,
    problems=(422,),
    guards=OPERATOR,
)
async def patch_venue(venue_id: int, data: inputs.VenuePatch, ctx: Context, principal: Principal) -> Venue:
    return await registry.patch_venue(ctx, principal, _venue_id(venue_id), data)


@get(
    "/v1/venues/{venue_id:int}/history",
    summary="Every change of the venue: who, when, before, after (admin, analyst in scope)",
    tags=TAGS,
    guards=[requires_role("analyst")],
)
async def venue_history(
    venue_id: int, request: Request[Any, Any, State], ctx: Context, principal: Principal
) -> history.History:
    """Audited like a trace query (the history says who ran a venue and when): one row per read, written
    to the audit stream before the answer leaves."""
    found = await registry.get_history(ctx, principal, _venue_id(venue_id))
    ip = client_address(request.scope, ctx.settings.trusted_proxies)
    await audit_trail.record(
        ctx, principal, "venue_history", "", {"venue_id": venue_id}, len(found.changes), ip
    )
    return found


@get(
    "/v1/venues/{venue_id:int}/code",
    summary="The venue's current signed code (operator; the venue's device for its screen)",
    description=(
        "For a venue whose code_mode is rotating this is the current step's code, with expires_at; "
        "the code before it is accepted one step longer."
    ),
    tags=TAGS,
    guards=[requires_role("operator", "device")],
)
async def get_code(venue_id: int, ctx: Context, principal: Principal) -> registry.VenueCode:
    return await registry.get_code(ctx, principal, _venue_id(venue_id))


@post(
    "/v1/venues/{venue_id:int}/code/rotate",
    status_code=200,
    summary="Issue a new code version; posters with the old code get 410 at check-in",
    tags=TAGS,
    problems=(409,),
    guards=OPERATOR,
)
async def rotate_code(venue_id: int, ctx: Context, principal: Principal) -> registry.VenueCode:
    return await registry.rotate_code(ctx, principal, _venue_id(venue_id))


@get(
    "/v1/venues/{venue_id:int}/entries",
    summary="Check-ins counted today (local day)",
    tags=TAGS,
    guards=OPERATOR,
)
async def entries_today(venue_id: int, ctx: Context, principal: Principal) -> day.EntriesToday:
    return await day.entries_today(ctx, principal, _venue_id(venue_id))


@get(
    "/v1/venues/{venue_id:int}/day",
    summary="The venue's day: entries per hour today and last week, occupancy now, its alerts (operator)",
    description=(
        "Entries per local hour today beside the same weekday a week before, the stays open now against "
        "the capacity (null without a capacity), and today's capacity alerts of the venue (never persons). "
        "Read from Redis; the operator page reads it every minute."
    ),
    tags=TAGS,
    guards=OPERATOR,
)
async def venue_day(venue_id: int, ctx: Context, principal: Principal) -> day.VenueDay:
    return await day.venue_day(ctx, principal, _venue_id(venue_id))


POSTER_KINDS = (
    "The poster follows the venue's state: the check-in poster with its printed code; for a venue whose "
    "code is on a screen at the door, a notice to scan the screen (no check-in code); for a closed venue, "
    "a notice that it has closed, with the date."
)


def _filename(data: poster.PosterData, version: int, fmt: str, size: str) -> str:
    kind = f"v{version}" if data.kind == "checkin" else f"{data.kind}-notice"
    paper = f"-{size}" if fmt == "pdf" else ""
    return f"venue-{data.venue_id}-{kind}{paper}.{fmt}"


async def _poster(
    fmt: str, venue_id: int, ctx: Context, principal: Principal, download: bool, size: str = "a4"
) -> Response[bytes]:
    venue = await registry.get_venue(ctx, principal, _venue_id(venue_id))
    data = registry.poster_data(ctx, venue)
    body = await asyncio.to_thread(poster.render, fmt, data, size)
    disposition = "attachment" if download else "inline"
    filename = _filename(data, venue.code_version, fmt, size)
    return Response(
        content=body,
        media_type=poster.MEDIA_TYPES[fmt],
        headers={
            "Content-Disposition": f'{disposition}; filename="{filename}"',
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@get(
    "/v1/venues/{venue_id:int}/poster.png",
    summary="Printable poster (PNG, A4 150 dpi; also for screens)",
    description=POSTER_KINDS,
    tags=TAGS,
    media_type=poster.MEDIA_TYPES["png"],
    guards=OPERATOR,
)
async def poster_png(
    venue_id: int, ctx: Context, principal: Principal, download: bool = False
) -> Response[bytes]:
    return await _poster("png", venue_id, ctx, principal, download)


@get(
    "/v1/venues/{venue_id:int}/poster.svg",
    summary="Printable poster (SVG)",
    description=POSTER_KINDS,
    tags=TAGS,
    media_type=poster.MEDIA_TYPES["svg"],
    guards=OPERATOR,
)
async def poster_svg(
    venue_id: int, ctx: Context, principal: Principal, download: bool = False
) -> Response[bytes]:
    return await _poster("svg", venue_id, ctx, principal, download)


@get(
    "/v1/venues/{venue_id:int}/poster.pdf",
    summary="Poster for a print shop (PDF, A4 or A3: vector text in an embedded font, vector QR code)",
    description=POSTER_KINDS,
    tags=TAGS,
    media_type=poster.MEDIA_TYPES["pdf"],
    guards=OPERATOR,
)
async def poster_pdf(
    venue_id: int,
    ctx: Context,
    principal: Principal,
    download: bool = False,
    size: Annotated[poster.PaperSize, Parameter(description="paper size")] = "a4",
) -> Response[bytes]:
    return await _poster("pdf", venue_id, ctx, principal, download, size)


@post(
    "/v1/venues/import",
    status_code=200,
    summary="Bulk import venues from CSV (streamed); bad rows are reported by line",
    description=(
        "Body: CSV with the header "
        + ",".join(csv_rows.COLUMNS)
        + ". Good rows are imported and bad rows reported by line number; with ?strict=true any bad row "
        "means nothing is written (422). Re-importing the same file changes nothing."
    ),
    tags=TAGS,
    request_max_body_size=None,
    raw_body=("text/csv", "CSV with the header " + ",".join(csv_rows.COLUMNS)),
    problems=(422,),
    guards=OPERATOR,
)
async def import_venues(
    request: Request[Any, Any, State], ctx: Context, principal: Principal, strict: bool = False
) -> importer.ImportReport:
    if principal.role == "operator" and principal.venue_id is not None:
        raise Forbidden(f"this key is bound to venue {principal.venue_id} and cannot import venues")
    limit = ctx.settings.max_import_bytes
    announced = request.headers.get("content-length")
    if announced is not None and announced.isdigit() and int(announced) > limit:
        raise PayloadTooLarge(f"the CSV is larger than the import limit of {limit} bytes")
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)
    try:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the CSV is larger than the import limit of {limit} bytes")
            spool.write(chunk)
        if size == 0:
            raise BadInput("the request body is empty; send the CSV file as the body")
        spool.seek(0)
        report = await asyncio.to_thread(_import_sync, ctx, spool, strict, principal)
    finally:
        spool.close()
    for outcome in ("created", "updated", "unchanged", "rejected"):
        count = getattr(report, outcome)
        if count:
            ctx.metrics.inc(IMPORT_ROWS, count, outcome=outcome)
    if strict and not report.written:
        raise Unprocessable(
            f"{report.rejected} row(s) rejected; nothing was written (strict import)",
            report=msgspec.to_builtins(report),
        )
    return report


def _import_sync(ctx: Context, spool: Any, strict: bool, principal: Principal) -> importer.ImportReport:
    client = sync_client(ctx.settings)
    try:
        return importer.import_stream(
            client,
            ctx.keys,
            spool,
            strict=strict,
            scope=principal.scope,
            actor=(principal.key_id, principal.role),
        )
    finally:
        with contextlib.suppress(Exception):
            client.close()


PART = Part(
    "venues",
    routes=[
        create_venue,
        list_venues,
        import_venues,
        get_venue,
        patch_venue,
        venue_history,
        get_code,
        rotate_code,
        entries_today,
        venue_day,
        poster_png,
        poster_svg,
        poster_pdf,
    ],
    metrics=setup_metrics,
)
