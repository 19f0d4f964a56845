"""A person's timeline for a tracer (``visits``), and the one mapping of a recorded stay to what an
answer shows of it (the tracer's :class:`VisitOut`, the resident's own
:class:`~checkin.platform.own_visits.OwnVisit`). A timeline binds no one for contact details
(:mod:`tracing.answers.purpose`)."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import msgspec

from checkin.platform.instants import format_ms
from tracing.answers.calls import in_thread
from tracing.answers.inquiry import Inquiry
from tracing.answers.known import require_person
from tracing.queries import trace


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


S = TypeVar("S", bound=msgspec.Struct)


def visit_as(shape: type[S], v: trace.Visit) -> S:
    """The stay as ``shape`` shows it: the fields of :class:`VisitOut` that ``shape`` declares."""
    fields: dict[str, Any] = {
        "checkin_id": v.checkin_id,
        "venue_id": v.venue_id,
        "venue_name": v.venue_name,
        "at": format_ms(v.at_ms),
        "end_at": format_ms(v.end_ms),
        "checked_out": v.checked_out,
        "district": v.district,
        "street": v.street,
        "community": v.community,
        "status": v.status,
        "verdict": v.verdict,
        "source": v.source,
    }
    return shape(**{name: fields[name] for name in shape.__struct_fields__})


async def visits(inq: Inquiry, person_id: int, since_ms: int, until_ms: int) -> VisitsResponse:
    """Stays of the person starting in ``[since, until)`` within the key's jurisdiction, audited; 404
    (audited) for a person unknown to the key."""
    params: dict[str, Any] = {
        "person_id": person_id,
        "since": format_ms(since_ms),
        "until": format_ms(until_ms),
    }
    stays = await in_thread(
        inq.ctx, "visits", trace.visits, inq.store, person_id, since_ms, until_ms, inq.scope
    )
    if not stays:
        await require_person(inq, params, person_id)
    await inq.record(params, len(stays))
    return VisitsResponse(
        person_id=person_id,
        since=params["since"],
        until=params["until"],
        count=len(stays),
        visits=[visit_as(VisitOut, v) for v in stays],
    )
