"""Source tracing (溯源, role tracer): ``POST /v1/trace/sources``.

``{person_ids (2..500 cases), since, until, min_cases?, min_overlap_minutes?, reason}`` ->
``{common_venues, possible_sources}`` as docs/ARCHITECTURE.md ("Stays and contacts", source tracing)
defines them (:mod:`tracing.queries.sources`); ``?format=csv`` answers the same rows as a spreadsheet
(:mod:`tracing.api.csv_export`). Like every trace query it needs a reason and writes an audit row
before the answer leaves; a scoped key sees only stays at venues of its jurisdiction, and cases none of
which has a stay there are unknown to it (404, audited). The cases with stays in the window and the
possible sources it names are bound to the key for contact details (:mod:`tracing.api.purpose`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, post

from checkin.platform import persons
from checkin.platform.auth import Principal
from checkin.platform.context import Context
from checkin.platform.errors import BadInput, NotFound, Unavailable, Unprocessable
from checkin.platform.instants import format_ms, now_ms, to_ms
from checkin.platform.service import Part
from tracing.api import audit, purpose
from tracing.api.csv_export import LocalTime, csv_response, csv_text, ids_text, names_text
from tracing.api.trace import (
    FORMAT,
    REASON_PATTERN,
    REASON_REQUIRED,
    U64_MAX,
    Instant,
    UInt64,
    check_reason,
    check_window,
)
from tracing.queries import sources as sq
from tracing.queries import trace
from tracing.storage.store import Store, StoreError


class SourcesRequest(msgspec.Struct, forbid_unknown_fields=True):
    person_ids: Annotated[
        list[UInt64],
        msgspec.Meta(min_length=sq.MIN_CASES, max_length=sq.MAX_CASES, examples=[[100230, 100877, 101402]]),
    ]
    """The cases (2..500 distinct person ids)."""
    since: Annotated[Instant, msgspec.Meta(examples=["2026-03-01T00:00:00Z"])]
    until: Annotated[Instant, msgspec.Meta(examples=["2026-03-15T00:00:00Z"])]
    reason: Annotated[
        str,
        msgspec.Meta(
            examples=["cluster 2026-0314: twelve positives in Chengguan"],
            extra_json_schema={"pattern": REASON_PATTERN},
        ),
    ] = ""
    min_cases: Annotated[int, msgspec.Meta(ge=sq.MIN_CASES, le=sq.MAX_CASES)] = sq.MIN_CASES
    """A venue or person counts when at least this many cases were there / met them."""
    min_overlap_minutes: Annotated[int, msgspec.Meta(ge=0, le=720)] = 15
    __json_schema_extra__ = REASON_REQUIRED


class CaseStayOut(msgspec.Struct):
    person_id: Annotated[int, msgspec.Meta(examples=[100230])]
    at: Annotated[str, msgspec.Meta(examples=["2026-03-12T09:12:44.218Z"])]
    end_at: Annotated[str, msgspec.Meta(examples=["2026-03-12T10:12:44.218Z"])]


class CommonVenueOut(msgspec.Struct):
    venue_id: Annotated[int, msgspec.Meta(examples=[1024])]
    cases: Annotated[list[int], msgspec.Meta(examples=[[100230, 100877]])]
    first_at: Annotated[str, msgspec.Meta(examples=["2026-03-12T09:12:44.218Z"])]
    last_at: Annotated[str, msgspec.Meta(examples=["2026-03-12T11:40:02.000Z"])]
    together_seconds: Annotated[float, msgspec.Meta(examples=[2460.0])]
    """Time during which at least two of the cases were there at once."""
    stays: list[CaseStayOut] = msgspec.field(default_factory=list)
    """The cases' stays there that start in the window, by start: when each case was there (what the
    console's timeline draws, and the window of an exposure site flagged from here)."""


class SourceOut(msgspec.Struct, omit_defaults=True):
    person_id: Annotated[int, msgspec.Meta(examples=[104417])]
    cases: Annotated[list[int], msgspec.Meta(examples=[[100230, 100877]])]
    overlap_seconds: Annotated[float, msgspec.Meta(examples=[5400.0])]
    venue_ids: Annotated[list[int], msgspec.Meta(examples=[[1024]])]
    first_contact_at: Annotated[str, msgspec.Meta(examples=["2026-03-12T09:20:01.004Z"])]
    name: str = ""
    """Masked (张*丰); absent for a person not registered."""


class SourcesResponse(msgspec.Struct):
    cases: list[int]
    """The distinct cases asked about, sorted."""
    since: str
    until: str
    min_cases: int
    min_overlap_minutes: int
    index_stays: int
    cases_without_stays: list[int]
    """Cases with no stay starting in the window (within the key's jurisdiction)."""
    common_venues: list[CommonVenueOut]
    possible_sources: list[SourceOut]
    case_names: dict[int, str] = msgspec.field(default_factory=dict)
    """Masked name of every registered case."""
    venue_names: dict[int, str] = msgspec.field(default_factory=dict)
    """Name of every venue the answer lists."""


async def _run(ctx: Context, kind: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    start = time.perf_counter()
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except StoreError as exc:
        raise Unavailable(f"the trace store failed: {exc}", retry_after=5) from exc
    finally:
        ctx.metrics.observe("trace_query_seconds", time.perf_counter() - start, kind=kind)


@post(
    "/v1/trace/sources",
    summary="Source tracing of a cluster of cases: common venues and possible sources (JSON or ?format=csv)",
    tags=["tracing"],
    status_code=200,
    problems=(404, 422),
)
async def post_sources(
    request: Request[Any, Any, Any],
    data: SourcesRequest,
    ctx: Context,
    store: Store,
    principal: Principal,
    format: Annotated[str, FORMAT] = "json",
) -> Response[Any]:
    principal.require("tracer")
    why = check_reason(data.reason)
    if format not in ("json", "csv"):
        raise BadInput(f"format must be json or csv, got {format!r}")
    if any(p > U64_MAX for p in data.person_ids):
        raise BadInput("person_ids must be unsigned 64-bit integers")
    cases = sorted(set(data.person_ids))
    # rules between the items and the members, which no schema states: 422
    if len(cases) < sq.MIN_CASES:
        raise Unprocessable(
            f"person_ids: name at least {sq.MIN_CASES} distinct cases", reason="too_few_cases"
        )
    if data.min_cases > len(cases):
        raise Unprocessable(
            f"min_cases ({data.min_cases}) is more than the {len(cases)} cases named", reason="min_cases"
        )
    since_ms, until_ms = to_ms(data.since), to_ms(data.until)
    check_window(since_ms, until_ms)
    params: dict[str, Any] = {
        "person_ids": cases,
        "since": format_ms(since_ms),
        "until": format_ms(until_ms),
        "min_cases": data.min_cases,
        "min_overlap_minutes": data.min_overlap_minutes,
        "format": format,
    }
    ip = audit.client_ip(request)
    try:
        result: sq.SourcesResult = await _run(
            ctx,
            "sources",
            sq.sources,
            store,
            cases,
            since_ms,
            until_ms,
            min_cases=data.min_cases,
            min_overlap_ms=data.min_overlap_minutes * 60_000,
            scope=principal.scope,
        )
    except trace.TooBroad as exc:
        raise Unprocessable(str(exc)) from None
    if not result.cases_with_stays and not await _run(
        ctx, "person", sq.any_has_stays, store, cases, principal.scope
    ):
        await audit.record(ctx, store, principal, "sources", why, {**params, "outcome": "not_found"}, 0, ip)
        where = f" in jurisdiction {principal.scope}" if principal.scope else ""
        raise NotFound(f"no stays recorded for any of the {len(cases)} cases{where}")
    rows = len(result.common_venues) + len(result.possible_sources)
    await audit.record(ctx, store, principal, "sources", why, params, rows, ip)
    named = [*result.cases_with_stays, *(s.person_id for s in result.possible_sources)]
    await purpose.remember(ctx, principal, named, now_ms())
    names = await persons.masked_names(ctx, [*cases, *(s.person_id for s in result.possible_sources)])
    listed = {v.venue_id for v in result.common_venues} | {
        v for s in result.possible_sources for v in s.venue_ids
    }
    venue_names = await _run(ctx, "venues", trace.venue_names, store, listed)
    if format == "csv":
        text = sources_csv(result, names, venue_names, LocalTime(ctx.settings.tz))
        return csv_response(text, "sources.csv")
    with_stays = set(result.cases_with_stays)
    body = SourcesResponse(
        cases=cases,
        since=params["since"],
        until=params["until"],
        min_cases=data.min_cases,
        min_overlap_minutes=data.min_overlap_minutes,
        index_stays=result.index_stays,
        cases_without_stays=[c for c in cases if c not in with_stays],
        common_venues=[
            CommonVenueOut(
                venue_id=v.venue_id,
                cases=v.cases,
                first_at=format_ms(v.first_ms),
                last_at=format_ms(v.last_ms),
                together_seconds=v.together_ms / 1000,
                stays=[CaseStayOut(c, format_ms(a), format_ms(e)) for c, a, e in v.stays],
            )
            for v in result.common_venues
        ],
        possible_sources=[
            SourceOut(
                person_id=s.person_id,
                cases=s.cases,
                overlap_seconds=s.overlap_ms / 1000,
                venue_ids=s.venue_ids,
                first_contact_at=format_ms(s.first_contact_ms),
                name=names.get(s.person_id, ""),
            )
            for s in result.possible_sources
        ],
        case_names={c: names[c] for c in cases if c in names},
        venue_names=venue_names,
    )
    return Response(content=body, media_type="application/json")


SOURCES_CSV_COLUMNS = (
    "section",
    "venue_ids",
    "venue_names",
    "person_id",
    "name",
    "cases",
    "case_ids",
    "case_names",
    "first_at",
    "last_at",
    "minutes",
)


def sources_csv(
    result: sq.SourcesResult, names: dict[int, str], venue_names: dict[int, str], local: LocalTime
) -> str:
    """One table: a row per common venue (``section`` = ``common_venue``; ``minutes`` together, ``first_at``
    and ``last_at`` the earliest and latest start there), then a row per possible source (``section`` =
    ``possible_source``; ``minutes`` of overlap summed over the cases met, ``first_at`` the first
    contact), each in the answer's order; masked names beside the ids, local times."""
    header = [
        *SOURCES_CSV_COLUMNS[:8],
        local.header("first_at"),
        local.header("last_at"),
        SOURCES_CSV_COLUMNS[10],
    ]
    rows: list[list[Any]] = []
    for v in result.common_venues:
        rows.append(
            [
                "common_venue",
                v.venue_id,
                venue_names.get(v.venue_id, ""),
                "",
                "",
                len(v.cases),
                ids_text(v.cases),
                names_text(v.cases, names),
                local(v.first_ms),
                local(v.last_ms),
                round(v.together_ms / 60_000, 1),
            ]
        )
    for s in result.possible_sources:
        rows.append(
            [
                "possible_source",
                ids_text(s.venue_ids),
                names_text(s.venue_ids, venue_names),
                s.person_id,
                names.get(s.person_id, ""),
                len(s.cases),
                ids_text(s.cases),
                names_text(s.cases, names),
                local(s.first_contact_ms),
                "",
                round(s.overlap_ms / 60_000, 1),
            ]
        )
    return csv_text(header, rows)


PART = Part("sources", routes=[post_sources])
