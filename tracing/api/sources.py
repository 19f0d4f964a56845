"""Source tracing (溯源, role tracer): ``POST /v1/trace/sources``.

``{person_ids (2..500 cases), since, until, min_cases?, min_overlap_minutes?, reason}`` ->
``{common_venues, possible_sources}`` as docs/ARCHITECTURE.md ("Stays and contacts", source tracing)
defines them (:mod:`tracing.queries.sources`); ``?format=csv`` answers the same rows as a spreadsheet
(:mod:`tracing.api.csv_export`). Like every trace query it needs a reason and writes an audit row
before the answer leaves; a scoped key sees only stays at venues of its jurisdiction, and cases none of
which has a stay there are unknown to it (404, audited). The cases with stays in the window and the
possible sources it names are bound to the key for contact details (:mod:`tracing.answers.purpose`).
The answer is :mod:`tracing.answers.sources`; this route parses, checks and returns it.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, post

from checkin.platform.auth import Principal, requires_role
from checkin.platform.context import Context
from checkin.platform.errors import BadInput, Unprocessable
from checkin.platform.instants import to_ms
from checkin.platform.service import Part
from tracing.answers import sources as source_answers
from tracing.answers.sources import Sources
from tracing.api.csv_export import LocalTime, csv_response, csv_text, ids_text, names_text
from tracing.api.trace_input import (
    FORMAT,
    REASON_PATTERN,
    REASON_REQUIRED,
    U64_MAX,
    Instant,
    UInt64,
    check_format,
    check_reason,
    check_window,
    inquiry,
)
from tracing.queries import sources as sq
from tracing.storage.store import Store


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


@post(
    "/v1/trace/sources",
    summary="Source tracing of a cluster of cases: common venues and possible sources (JSON or ?format=csv)",
    tags=["tracing"],
    status_code=200,
    problems=(404, 422),
    guards=[requires_role("tracer")],
)
async def post_sources(
    request: Request[Any, Any, Any],
    data: SourcesRequest,
    ctx: Context,
    store: Store,
    principal: Principal,
    format: Annotated[str, FORMAT] = "json",
) -> Response[Any]:
    why = check_reason(data.reason)
    check_format(format)
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
    found = await source_answers.sources(
        inquiry(request, ctx, store, principal, "sources", why),
        cases,
        since_ms,
        until_ms,
        min_cases=data.min_cases,
        min_overlap_minutes=data.min_overlap_minutes,
        format=format,
    )
    if format == "csv":
        return csv_response(sources_csv(found, LocalTime(ctx.settings.tz)), "sources.csv")
    return Response(content=found.body(), media_type="application/json")


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


def sources_csv(found: Sources, local: LocalTime) -> str:
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
    result, names, venue_names = found.result, found.names, found.venue_names
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
