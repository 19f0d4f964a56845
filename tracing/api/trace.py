"""Contact-trace routes (role tracer): timelines, contacts, exposures, contact details.

Every call needs a ``reason`` (a query parameter for GETs, a body field for
POSTs) and writes an audit row (who, when, reason, parameters, rows returned)
before the answer is sent. Windows are ``[since, until)`` in RFC 3339, at most
60 days long. A scoped key (jurisdiction prefix) sees only stays at venues in
its jurisdiction; see :mod:`tracing.queries.trace`. Contact details answer only for a
person a contacts or exposure answer named to the same key in the last 24 h, or the index person of
such a query (a visits timeline binds no one), and at most ``CHECKIN_CONTACT_DETAILS_PER_HOUR`` a key
an hour (:mod:`tracing.api.purpose`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, get, post
from litestar.params import Parameter

from checkin.platform import persons
from checkin.platform.auth import Principal
from checkin.platform.context import Context
from checkin.platform.errors import (
    BadInput,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unavailable,
    Unprocessable,
)
from checkin.platform.instants import DAY_MS, format_ms, now_ms, parse_instant, to_ms
from checkin.platform.openapi_doc import INSTANT, trimmed
from checkin.platform.service import Part
from tracing.api import audit, purpose
from tracing.api.csv_export import LocalTime, csv_response, csv_text
from tracing.queries import trace
from tracing.storage.store import Store, StoreError

MAX_WINDOW_DAYS = 60
MAX_SITES = 100
MAX_REASON_CHARS = 500
REASON_PATTERN = trimmed(MAX_REASON_CHARS)
"""Why the trace is run (written to the audit log): 1 to 500 characters besides surrounding spaces."""
REASON_REQUIRED = {"required": ["reason"]}
"""A request struct whose ``reason`` defaults to "" only so that its absence gets the 400 that says
why it is needed (:func:`check_reason`): the documents call it required."""
PERSON_ID_PATTERN = r"^[0-9]{1,20}$"
PersonId = Annotated[str, Parameter(description="a person id", schema_extra={"pattern": PERSON_ID_PATTERN})]
ReasonQuery = Annotated[
    str,
    Parameter(
        required=True,
        description="why the trace is run (written to the audit log)",
        schema_extra={"pattern": REASON_PATTERN},
    ),
]
FORMAT = Parameter(schema_extra={"enum": ["json", "csv"]})
CONTACTS_PAGE = 1_000
"""Contacts returned per list unless the request sets ``limit``."""
MAX_CONTACTS_PAGE = 100_000
U64_MAX = 2**64 - 1

UInt64 = Annotated[int, msgspec.Meta(ge=0, extra_json_schema={"maximum": U64_MAX})]
"""Upper bound checked by hand: msgspec bounds must fit in an int64."""
UInt32 = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
Instant = Annotated[dt.datetime, msgspec.Meta(tz=True)]


# --- wire structs ------------------------------------------------------------------------------------


class ContactsRequest(msgspec.Struct, forbid_unknown_fields=True):
    person_id: Annotated[UInt64, msgspec.Meta(examples=[100230])]
    since: Annotated[Instant, msgspec.Meta(examples=["2026-03-01T00:00:00Z"])]
    until: Annotated[Instant, msgspec.Meta(examples=["2026-03-15T00:00:00Z"])]
    reason: Annotated[
        str,
        msgspec.Meta(
            examples=["case 2026-0314-07: positive test on 14 March"],
            extra_json_schema={"pattern": REASON_PATTERN},
        ),
    ] = ""
    depth: Literal[1, 2] = 1
    min_overlap_minutes: Annotated[int, msgspec.Meta(ge=0, le=720)] = 15
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_CONTACTS_PAGE)] = CONTACTS_PAGE
    """Rows per list (contacts, second_degree); the totals count all of them."""
    offset: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)] = 0
    __json_schema_extra__ = REASON_REQUIRED


class SiteIn(msgspec.Struct, forbid_unknown_fields=True):
    venue_id: UInt32
    since: Instant
    until: Instant


class ExposuresRequest(msgspec.Struct, forbid_unknown_fields=True):
    sites: Annotated[list[SiteIn], msgspec.Meta(extra_json_schema={"minItems": 1, "maxItems": MAX_SITES})]
    reason: Annotated[str, msgspec.Meta(extra_json_schema={"pattern": REASON_PATTERN})] = ""
    __json_schema_extra__ = REASON_REQUIRED


class VisitOut(msgspec.Struct):
    checkin_id: Annotated[str, msgspec.Meta(examples=["0023fa91c04be7d5512ae0f"])]
    venue_id: Annotated[int, msgspec.Meta(examples=[1024])]
    venue_name: Annotated[str, msgspec.Meta(examples=["Wangfujing Bookstore"])]
    at: Annotated[str, msgspec.Meta(examples=["2026-03-12T09:12:44.218Z"])]
    end_at: Annotated[str, msgspec.Meta(examples=["2026-03-12T10:02:10.000Z"])]
    checked_out: bool
    district: Annotated[str, msgspec.Meta(examples=["110101"])]
    street: Annotated[str, msgspec.Meta(examples=["110101001"])]
    community: Annotated[str, msgspec.Meta(examples=["110101001002"])]
    status: Annotated[str, msgspec.Meta(examples=["green"])]
    verdict: Annotated[str, msgspec.Meta(examples=["pass"])]
    source: Annotated[str, msgspec.Meta(examples=["phone"])]


class VisitsResponse(msgspec.Struct):
    person_id: int
    since: str
    until: str
    count: int
    visits: list[VisitOut]


class ContactOut(msgspec.Struct, omit_defaults=True):
    person_id: Annotated[int, msgspec.Meta(examples=[100877])]
    overlap_seconds: Annotated[float, msgspec.Meta(examples=[2460.0])]
    first_contact_at: Annotated[str, msgspec.Meta(examples=["2026-03-12T09:20:01.004Z"])]
    venue_ids: Annotated[list[int], msgspec.Meta(examples=[[1024]])]
    via: list[int] | None = None
    name: str = ""
    """Masked (张*丰); absent for a person not registered."""


class ContactsResponse(msgspec.Struct):
    person_id: int
    since: str
    until: str
    depth: int
    min_overlap_minutes: int
    index_stays: int
    contacts_total: int
    second_degree_total: int
    limit: int
    offset: int
    contacts: list[ContactOut]
    second_degree: list[ContactOut]
    person_name: str = ""
    """The index person's masked name."""
    venue_names: dict[int, str] = msgspec.field(default_factory=dict)
    """Name of every venue the answer lists."""


class ExposureOut(msgspec.Struct, omit_defaults=True):
    person_id: int
    venue_ids: list[int]
    first_at: str
    name: str = ""
    """Masked; empty for a person not registered."""


class ExposuresResponse(msgspec.Struct):
    sites: int
    count: int
    exposures: list[ExposureOut]
    venue_names: dict[int, str] = msgspec.field(default_factory=dict)


class ContactDetails(msgspec.Struct):
    person_id: int
    name: str
    phone: str


# --- validation ----------------------------------------------------------------------------------------


def check_reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise BadInput("reason is required: say why this trace is run (it is written to the audit log)")
    if len(text) > MAX_REASON_CHARS:
        raise BadInput(f"reason is too long (at most {MAX_REASON_CHARS} characters)")
    return text


def check_window(since_ms: int, until_ms: int, what: str = "window") -> None:
    if since_ms >= until_ms:
        raise Unprocessable(
            f"{what}: since ({format_ms(since_ms)}) must be before until ({format_ms(until_ms)})",
            reason="empty_window",
        )
    if until_ms - since_ms > MAX_WINDOW_DAYS * DAY_MS:
        raise Unprocessable(
            f"{what}: at most {MAX_WINDOW_DAYS} days, got {(until_ms - since_ms) / DAY_MS:.1f} days",
            reason="window_too_long",
        )


def parse_person_id(raw: str) -> int:
    if not re.fullmatch(PERSON_ID_PATTERN, raw):
        raise BadInput(f"person_id must be an unsigned 64-bit integer, got {raw!r}")
    if int(raw) > U64_MAX:  # no one has it
        raise NotFound(f"no person {raw}")
    return int(raw)


async def _run(ctx: Context, kind: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    start = time.perf_counter()
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except StoreError as exc:
        raise Unavailable(f"the trace store failed: {exc}", retry_after=5) from exc
    finally:
        ctx.metrics.observe("trace_query_seconds", time.perf_counter() - start, kind=kind)


async def _require_person(
    ctx: Context,
    store: Store,
    request: Request[Any, Any, Any],
    principal: Principal,
    action: str,
    reason: str,
    params: dict[str, Any],
    person_id: int,
) -> None:
    """404 (audited) when no stay of the person is recorded within the key's jurisdiction."""
    known = await _run(ctx, "person", trace.person_has_stays, store, person_id, principal.scope)
    if not known:
        await audit.record(
            ctx,
            store,
            principal,
            action,
            reason,
            {**params, "outcome": "not_found"},
            0,
            audit.client_ip(request),
        )
        where = f" in jurisdiction {principal.scope}" if principal.scope else ""
        raise NotFound(f"no stays recorded for person {person_id}{where}")


# --- routes ---------------------------------------------------------------------------------------


@get(
    "/v1/trace/persons/{person_id:str}/visits",
    summary="Timeline of a person's stays",
    tags=["tracing"],
    problems=(422,),
)
async def get_visits(
    request: Request[Any, Any, Any],
    ctx: Context,
    store: Store,
    principal: Principal,
    person_id: PersonId,
    reason: ReasonQuery = "",
    since: Annotated[str | None, INSTANT] = None,
    until: Annotated[str | None, INSTANT] = None,
) -> VisitsResponse:
    principal.require("tracer")
    pid = parse_person_id(person_id)
    why = check_reason(reason)
    until_ms = parse_instant("until", until) if until else now_ms() + 1
    since_ms = parse_instant("since", since) if since else until_ms - ctx.settings.retention_days * DAY_MS
    check_window(since_ms, until_ms)
    params: dict[str, Any] = {
        "person_id": pid,
        "since": format_ms(since_ms),
        "until": format_ms(until_ms),
    }
    stays = await _run(ctx, "visits", trace.visits, store, pid, since_ms, until_ms, principal.scope)
    if not stays:
        await _require_person(ctx, store, request, principal, "visits", why, params, pid)
    await audit.record(ctx, store, principal, "visits", why, params, len(stays), audit.client_ip(request))
    return VisitsResponse(
        person_id=pid,
        since=params["since"],
        until=params["until"],
        count=len(stays),
        visits=[
            VisitOut(
                checkin_id=v.checkin_id,
                venue_id=v.venue_id,
                venue_name=v.venue_name,
                at=format_ms(v.at_ms),
                end_at=format_ms(v.end_ms),
                checked_out=v.checked_out,
                district=v.district,
                street=v.street,
                community=v.community,
                status=v.status,
                verdict=v.verdict,
                source=v.source,
            )
            for v in stays
        ],
    )


def _contact_out(c: trace.Contact, second: bool, names: dict[int, str]) -> ContactOut:
    return ContactOut(
        person_id=c.person_id,
        overlap_seconds=c.overlap_ms / 1000,
        first_contact_at=format_ms(c.first_contact_ms),
        venue_ids=c.venue_ids,
        via=c.via if second else None,
        name=names.get(c.person_id, ""),
    )


@post(
    "/v1/trace/contacts",
    summary="Contacts of a person (depth 1 or 2)",
    tags=["tracing"],
    status_code=200,
    problems=(404, 422),
)
async def post_contacts(
    request: Request[Any, Any, Any], data: ContactsRequest, ctx: Context, store: Store, principal: Principal
) -> ContactsResponse:
    principal.require("tracer")
    why = check_reason(data.reason)
    if data.person_id > U64_MAX:
        raise BadInput("person_id must be an unsigned 64-bit integer")
    since_ms, until_ms = to_ms(data.since), to_ms(data.until)
    check_window(since_ms, until_ms)
    params: dict[str, Any] = {
        "person_id": data.person_id,
        "since": format_ms(since_ms),
        "until": format_ms(until_ms),
        "depth": data.depth,
        "min_overlap_minutes": data.min_overlap_minutes,
        "limit": data.limit,
        "offset": data.offset,
    }
    try:
        result: trace.ContactsResult = await _run(
            ctx,
            f"contacts_depth{data.depth}",
            trace.contacts,
            store,
            data.person_id,
            since_ms,
            until_ms,
            depth=data.depth,
            min_overlap_ms=data.min_overlap_minutes * 60_000,
            scope=principal.scope,
            page=trace.Page(data.limit, data.offset),
        )
    except trace.TooBroad as exc:
        raise Unprocessable(str(exc)) from None
    if result.index_stays == 0:
        await _require_person(ctx, store, request, principal, "contacts", why, params, data.person_id)
    rows = len(result.contacts) + len(result.second_degree)
    await audit.record(ctx, store, principal, "contacts", why, params, rows, audit.client_ip(request))
    named = [
        data.person_id,
        *(c.person_id for c in result.contacts),
        *(c.person_id for c in result.second_degree),
    ]
    await purpose.remember(ctx, principal, named, now_ms())
    names = await persons.masked_names(ctx, named)
    listed = {v for c in (*result.contacts, *result.second_degree) for v in c.venue_ids}
    venues = await _run(ctx, "venues", trace.venue_names, store, listed)
    return ContactsResponse(
        person_id=data.person_id,
        since=params["since"],
        until=params["until"],
        depth=data.depth,
        min_overlap_minutes=data.min_overlap_minutes,
        index_stays=result.index_stays,
        contacts_total=result.contacts_total,
        second_degree_total=result.second_degree_total,
        limit=data.limit,
        offset=data.offset,
        contacts=[_contact_out(c, False, names) for c in result.contacts],
        second_degree=[_contact_out(c, True, names) for c in result.second_degree],
        person_name=names.get(data.person_id, ""),
        venue_names=venues,
    )


@post(
    "/v1/trace/exposures",
    summary="Exposure screening of sites (JSON or ?format=csv)",
    tags=["tracing"],
    status_code=200,
    problems=(422,),
)
async def post_exposures(
    request: Request[Any, Any, Any],
    data: ExposuresRequest,
    ctx: Context,
    store: Store,
    principal: Principal,
    format: Annotated[str, FORMAT] = "json",
) -> Response[Any]:
    principal.require("tracer")
    why = check_reason(data.reason)
    if format not in ("json", "csv"):
        raise BadInput(f"format must be json or csv, got {format!r}")
    if not data.sites:
        raise BadInput("sites must list at least one {venue_id, since, until}")
    if len(data.sites) > MAX_SITES:
        raise BadInput(f"too many sites: {len(data.sites)} (at most {MAX_SITES} per request)")
    sites = []
    for n, s in enumerate(data.sites):
        site = trace.Site(s.venue_id, to_ms(s.since), to_ms(s.until))
        check_window(site.since_ms, site.until_ms, f"sites[{n}]")
        sites.append(site)
    params: dict[str, Any] = {
        "sites": [
            {
                "venue_id": s.venue_id,
                "since": format_ms(s.since_ms),
                "until": format_ms(s.until_ms),
            }
            for s in sites
        ],
        "format": format,
    }
    if principal.scope:
        communities = await _run(ctx, "venues", trace.venue_communities, store, [s.venue_id for s in sites])
        outside = sorted(v for v, c in communities.items() if not principal.in_scope(c))
        if outside:
            await audit.record(
                ctx,
                store,
                principal,
                "exposures",
                why,
                {**params, "outcome": "forbidden"},
                0,
                audit.client_ip(request),
            )
            raise Forbidden(
                f"venue(s) {', '.join(map(str, outside))} are outside this key's jurisdiction "
                f"({principal.scope})"
            )
    found: list[trace.Exposure] = await _run(ctx, "exposures", trace.exposures, store, sites, principal.scope)
    await audit.record(ctx, store, principal, "exposures", why, params, len(found), audit.client_ip(request))
    await purpose.remember(ctx, principal, (e.person_id for e in found), now_ms())
    venue_names = await _run(ctx, "venues", trace.venue_names, store, {v for e in found for v in e.venues})
    names = await persons.masked_names(ctx, [e.person_id for e in found])
    if format == "csv":
        text = exposures_csv(found, names, venue_names, LocalTime(ctx.settings.tz))
        return csv_response(text, "exposures.csv")
    body = ExposuresResponse(
        sites=len(sites),
        count=len(found),
        exposures=[
            ExposureOut(
                person_id=e.person_id,
                venue_ids=sorted(e.venues),
                first_at=format_ms(e.first_ms),
                name=names.get(e.person_id, ""),
            )
            for e in found
        ],
        venue_names=venue_names,
    )
    return Response(content=body, media_type="application/json")


def exposures_csv(
    found: list[trace.Exposure], names: dict[int, str], venue_names: dict[int, str], local: LocalTime
) -> str:
    """One row per (person, venue), the masked name beside the person id, local times (see
    :mod:`tracing.api.csv_export`)."""
    header = [
        "person_id",
        "name",
        "venue_id",
        "venue_name",
        local.header("first_at_venue"),
        local.header("first_at"),
    ]
    rows = (
        [
            e.person_id,
            names.get(e.person_id, ""),
            venue,
            venue_names.get(venue, ""),
            local(e.venues[venue]),
            local(e.first_ms),
        ]
        for e in found
        for venue in sorted(e.venues)
    )
    return csv_text(header, rows)


@get(
    "/v1/trace/persons/{person_id:str}/contact-details",
    summary="Name and phone of a person (decrypted; audited)",
    tags=["tracing"],
)
async def get_contact_details(
    request: Request[Any, Any, Any],
    ctx: Context,
    store: Store,
    principal: Principal,
    person_id: PersonId,
    reason: ReasonQuery = "",
) -> ContactDetails:
    principal.require("tracer")
    pid = parse_person_id(person_id)
    why = check_reason(reason)
    params: dict[str, Any] = {"person_id": pid}
    try:
        await purpose.check(ctx, principal, pid, now_ms())
    except Forbidden:
        await audit.record(
            ctx,
            store,
            principal,
            "contact_details",
            why,
            {**params, "outcome": "not_traced"},
            0,
            audit.client_ip(request),
        )
        raise
    if principal.scope:
        await _require_person(ctx, store, request, principal, "contact_details", why, params, pid)
    try:
        await purpose.spend(ctx, principal, now_ms())
    except TooManyRequests:
        await audit.record(
            ctx,
            store,
            principal,
            "contact_details",
            why,
            {**params, "outcome": "over_budget"},
            0,
            audit.client_ip(request),
        )
        raise
    found = await persons.contact_details(ctx, pid)
    if found is None:
        await audit.record(
            ctx,
            store,
            principal,
            "contact_details",
            why,
            {**params, "outcome": "not_found"},
            0,
            audit.client_ip(request),
        )
        raise NotFound(f"person {pid} is not registered")
    await audit.record(ctx, store, principal, "contact_details", why, params, 1, audit.client_ip(request))
    return ContactDetails(person_id=pid, name=found.name, phone=found.phone)


def setup_metrics(metrics: Any) -> None:
    metrics.histogram("trace_query_seconds", "Time of one trace query against the store, by kind")
    purpose.setup_metrics(metrics)


PART = Part(
    "trace", routes=[get_visits, post_contacts, post_exposures, get_contact_details], metrics=setup_metrics
)
