"""Contact-trace routes (role tracer): timelines, contacts, exposures, contact details.

Every call needs a ``reason`` (a query parameter for GETs, a body field for
POSTs) and writes an audit row (who, when, reason, parameters, rows returned)
before the answer is sent. Windows are ``[since, until)`` in RFC 3339, at most
60 days long. A scoped key (jurisdiction prefix) sees only stays at venues in
its jurisdiction; see :mod:`tracing.queries.trace`. Contact details answer only for a
person a contacts or exposure answer named to the same key in the last 24 h, or the index person of
such a query (a visits timeline binds no one), and at most ``CHECKIN_CONTACT_DETAILS_PER_HOUR`` a key
an hour (:mod:`tracing.answers.purpose`).

The routes parse and check what they are sent (:mod:`tracing.api.trace_input`) and return what the
answers give (:mod:`tracing.answers`); the role is a guard on each route.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post

from checkin.platform.auth import Principal, requires_role
from checkin.platform.context import Context
from checkin.platform.errors import BadInput
from checkin.platform.instants import DAY_MS, now_ms, parse_instant, to_ms
from checkin.platform.openapi_doc import INSTANT
from checkin.platform.service import Part
from tracing.answers import contacts as contact_answers
from tracing.answers import exposures as exposure_answers
from tracing.answers import purpose
from tracing.answers import visits as visit_answers
from tracing.answers.calls import QUERY_SECONDS
from tracing.answers.contacts import ContactDetails, ContactOut, ContactsResponse
from tracing.answers.exposures import Exposures
from tracing.answers.visits import VisitOut, VisitsResponse
from tracing.api.csv_export import LocalTime, csv_response, csv_text
from tracing.api.trace_input import (
    FORMAT,
    MAX_SITES,
    U64_MAX,
    ContactsRequest,
    ExposuresRequest,
    PersonId,
    ReasonQuery,
    check_format,
    check_reason,
    check_window,
    inquiry,
    parse_person_id,
)
from tracing.queries import trace
from tracing.storage.store import Store

__all__ = ["PART", "ContactOut", "ContactsRequest", "VisitOut"]

TRACER = [requires_role("tracer")]


@get(
    "/v1/trace/persons/{person_id:str}/visits",
    summary="Timeline of a person's stays",
    tags=["tracing"],
    problems=(422,),
    guards=TRACER,
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
    pid = parse_person_id(person_id)
    why = check_reason(reason)
    until_ms = parse_instant("until", until) if until else now_ms() + 1
    since_ms = parse_instant("since", since) if since else until_ms - ctx.settings.retention_days * DAY_MS
    check_window(since_ms, until_ms)
    inq = inquiry(request, ctx, store, principal, "visits", why)
    return await visit_answers.visits(inq, pid, since_ms, until_ms)


@post(
    "/v1/trace/contacts",
    summary="Contacts of a person (depth 1 or 2)",
    tags=["tracing"],
    status_code=200,
    problems=(404, 422),
    guards=TRACER,
)
async def post_contacts(
    request: Request[Any, Any, Any], data: ContactsRequest, ctx: Context, store: Store, principal: Principal
) -> ContactsResponse:
    why = check_reason(data.reason)
    if data.person_id > U64_MAX:
        raise BadInput("person_id must be an unsigned 64-bit integer")
    since_ms, until_ms = to_ms(data.since), to_ms(data.until)
    check_window(since_ms, until_ms)
    return await contact_answers.contacts(
        inquiry(request, ctx, store, principal, "contacts", why),
        data.person_id,
        since_ms,
        until_ms,
        depth=data.depth,
        min_overlap_minutes=data.min_overlap_minutes,
        limit=data.limit,
        offset=data.offset,
    )


@post(
    "/v1/trace/exposures",
    summary="Exposure screening of sites (JSON or ?format=csv)",
    tags=["tracing"],
    status_code=200,
    problems=(422,),
    guards=TRACER,
)
async def post_exposures(
    request: Request[Any, Any, Any],
    data: ExposuresRequest,
    ctx: Context,
    store: Store,
    principal: Principal,
    format: Annotated[str, FORMAT] = "json",
) -> Response[Any]:
    why = check_reason(data.reason)
    check_format(format)
    if not data.sites:
        raise BadInput("sites must list at least one {venue_id, since, until}")
    if len(data.sites) > MAX_SITES:
        raise BadInput(f"too many sites: {len(data.sites)} (at most {MAX_SITES} per request)")
    sites = []
    for n, s in enumerate(data.sites):
        site = trace.Site(s.venue_id, to_ms(s.since), to_ms(s.until))
        check_window(site.since_ms, site.until_ms, f"sites[{n}]")
        sites.append(site)
    inq = inquiry(request, ctx, store, principal, "exposures", why)
    found = await exposure_answers.exposures(inq, sites, format)
    if format == "csv":
        return csv_response(exposures_csv(found, LocalTime(ctx.settings.tz)), "exposures.csv")
    return Response(content=found.body(), media_type="application/json")


def exposures_csv(found: Exposures, local: LocalTime) -> str:
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
            found.names.get(e.person_id, ""),
            venue,
            found.venue_names.get(venue, ""),
            local(e.venues[venue]),
            local(e.first_ms),
        ]
        for e in found.found
        for venue in sorted(e.venues)
    )
    return csv_text(header, rows)


@get(
    "/v1/trace/persons/{person_id:str}/contact-details",
    summary="Name and phone of a person (decrypted; audited)",
    tags=["tracing"],
    guards=TRACER,
)
async def get_contact_details(
    request: Request[Any, Any, Any],
    ctx: Context,
    store: Store,
    principal: Principal,
    person_id: PersonId,
    reason: ReasonQuery = "",
) -> ContactDetails:
    pid = parse_person_id(person_id)
    why = check_reason(reason)
    inq = inquiry(request, ctx, store, principal, "contact_details", why)
    return await contact_answers.contact_details(inq, pid)


def setup_metrics(metrics: Any) -> None:
    metrics.histogram(QUERY_SECONDS, "Time of one trace query against the store, by kind")
    purpose.setup_metrics(metrics)


PART = Part(
    "trace", routes=[get_visits, post_contacts, post_exposures, get_contact_details], metrics=setup_metrics
)
