"""Contacts of a person (depth 1 or 2) and a person's contact details, for a tracer.

A contacts answer binds its index person and every person it names to the key for contact details
(:mod:`tracing.answers.purpose`); contact details answer only for such a person, within the key's hourly
budget. Both are audited, refusals too.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from checkin.platform import persons
from checkin.platform.errors import Forbidden, NotFound, TooManyRequests, Unprocessable
from checkin.platform.instants import format_ms, now_ms
from tracing.answers import purpose
from tracing.answers.calls import in_thread
from tracing.answers.inquiry import Inquiry
from tracing.answers.known import require_person
from tracing.queries import trace


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


class ContactDetails(msgspec.Struct):
    person_id: int
    name: str
    phone: str


def _contact_out(c: trace.Contact, second: bool, names: dict[int, str]) -> ContactOut:
    return ContactOut(
        person_id=c.person_id,
        overlap_seconds=c.overlap_ms / 1000,
        first_contact_at=format_ms(c.first_contact_ms),
        venue_ids=c.venue_ids,
        via=c.via if second else None,
        name=names.get(c.person_id, ""),
    )


async def contacts(
    inq: Inquiry,
    person_id: int,
    since_ms: int,
    until_ms: int,
    *,
    depth: int,
    min_overlap_minutes: int,
    limit: int,
    offset: int,
) -> ContactsResponse:
    """Contacts of the person in ``[since, until)``, one page of each list; 422 for a depth-2 question
    too broad to answer, 404 (audited) for a person unknown to the key."""
    params: dict[str, Any] = {
        "person_id": person_id,
        "since": format_ms(since_ms),
        "until": format_ms(until_ms),
        "depth": depth,
        "min_overlap_minutes": min_overlap_minutes,
        "limit": limit,
        "offset": offset,
    }
    try:
        result = await in_thread(
            inq.ctx,
            f"contacts_depth{depth}",
            trace.contacts,
            inq.store,
            person_id,
            since_ms,
            until_ms,
            depth=depth,
            min_overlap_ms=min_overlap_minutes * 60_000,
            scope=inq.scope,
            page=trace.Page(limit, offset),
        )
    except trace.TooBroad as exc:
        raise Unprocessable(str(exc)) from None
    if result.index_stays == 0:
        await require_person(inq, params, person_id)
    await inq.record(params, len(result.contacts) + len(result.second_degree))
    named = [
        person_id,
        *(c.person_id for c in result.contacts),
        *(c.person_id for c in result.second_degree),
    ]
    await purpose.remember(inq.ctx, inq.principal, named, now_ms())
    names = await persons.masked_names(inq.ctx, named)
    listed = {v for c in (*result.contacts, *result.second_degree) for v in c.venue_ids}
    venues = await in_thread(inq.ctx, "venues", trace.venue_names, inq.store, listed)
    return ContactsResponse(
        person_id=person_id,
        since=params["since"],
        until=params["until"],
        depth=depth,
        min_overlap_minutes=min_overlap_minutes,
        index_stays=result.index_stays,
        contacts_total=result.contacts_total,
        second_degree_total=result.second_degree_total,
        limit=limit,
        offset=offset,
        contacts=[_contact_out(c, False, names) for c in result.contacts],
        second_degree=[_contact_out(c, True, names) for c in result.second_degree],
        person_name=names.get(person_id, ""),
        venue_names=venues,
    )


async def contact_details(inq: Inquiry, person_id: int) -> ContactDetails:
    """Name and phone of a person a trace answer named to this key lately (403 ``not_traced``
    otherwise), within the key's jurisdiction (404) and hourly budget (429 ``over_budget``)."""
    params: dict[str, Any] = {"person_id": person_id}
    try:
        await purpose.check(inq.ctx, inq.principal, person_id, now_ms())
    except Forbidden:
        await inq.refused(params, "not_traced")
        raise
    if inq.scope:
        await require_person(inq, params, person_id)
    try:
        await purpose.spend(inq.ctx, inq.principal, now_ms())
    except TooManyRequests:
        await inq.refused(params, "over_budget")
        raise
    found = await persons.contact_details(inq.ctx, person_id)
    if found is None:
        await inq.refused(params, "not_found")
        raise NotFound(f"person {person_id} is not registered")
    await inq.record(params, 1)
    return ContactDetails(person_id=person_id, name=found.name, phone=found.phone)
