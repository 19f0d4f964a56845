"""Person lookup for a tracer: find a person to trace by id number or phone (by their keyed hashes,
:mod:`checkin.platform.persons`). A scoped key finds only persons with stays in its jurisdiction; the
answer carries masked names only and binds no one (:mod:`tracing.answers.purpose`). The audit row keeps
which kind was asked and the count found, never the id number or phone."""

from __future__ import annotations

from typing import Literal

import msgspec

from checkin.platform import persons
from tracing.answers.calls import read
from tracing.answers.inquiry import Inquiry
from tracing.queries import trace

MAX_MATCHES = 20


class PersonMatch(msgspec.Struct):
    person_id: int
    name: str
    """Masked (张*丰)."""


class LookupResponse(msgspec.Struct):
    by: str
    count: int
    matches: list[PersonMatch]


async def lookup(inq: Inquiry, by: Literal["id_number", "phone"], value: str) -> LookupResponse:
    """The persons registered with this id number or phone (at most :data:`MAX_MATCHES`)."""
    if by == "id_number":
        found = await persons.lookup_by_id_number(inq.ctx, persons.normalise_id_number(value))
        ids = [found] if found is not None else []
    else:
        ids = await persons.lookup_by_phone(inq.ctx, persons.normalise_phone(value))
    ids = ids[:MAX_MATCHES]
    if inq.scope and ids:
        ids = [pid for pid in ids if await read("trace", trace.person_has_stays, inq.store, pid, inq.scope)]
    names = await persons.masked_names(inq.ctx, ids)
    await inq.record({"by": by}, len(ids))
    return LookupResponse(
        by=by, count=len(ids), matches=[PersonMatch(pid, names.get(pid, "")) for pid in ids]
    )
