"""``POST /v1/trace/persons/lookup {id_number | phone, reason}`` (tracer): find a person to trace.

The id number or phone is looked up by its keyed hash (:mod:`checkin.platform.persons`), exactly as at
registration; neither is written anywhere, the audit row keeps which kind was asked and the count
found. A scoped key only finds persons with stays in its jurisdiction (it learns nothing of the rest of
the city). Answers carry masked names only. A lookup binds no one (:mod:`tracing.api.purpose`): the
tracer runs the contacts query of the person found, which makes them its index person, before their
contact details can be read; otherwise an id number alone would yield the phone on record.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
from litestar import Request, post

from checkin.platform import persons
from checkin.platform.auth import Principal
from checkin.platform.context import Context
from checkin.platform.errors import BadInput, Unavailable
from checkin.platform.openapi_doc import PY_SPACE
from checkin.platform.persons import ID_NUMBER_PATTERN, PHONE_PATTERN
from checkin.platform.service import Part
from tracing.api import audit
from tracing.api.trace import REASON_PATTERN, check_reason
from tracing.queries import trace
from tracing.storage.store import Store, StoreError

MAX_MATCHES = 20


_BLANK = f"^[{PY_SPACE}]*$"


class LookupRequest(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(extra_json_schema={"pattern": REASON_PATTERN})]
    id_number: str = ""
    phone: str = ""

    # exactly one of id_number or phone (400 otherwise), each in the form the registry takes
    __json_schema_extra__ = {
        "anyOf": [
            {
                "required": ["id_number"],
                "properties": {"id_number": {"pattern": ID_NUMBER_PATTERN}, "phone": {"pattern": _BLANK}},
            },
            {
                "required": ["phone"],
                "properties": {"phone": {"pattern": PHONE_PATTERN}, "id_number": {"pattern": _BLANK}},
            },
        ]
    }


class PersonMatch(msgspec.Struct):
    person_id: int
    name: str
    """Masked (张*丰)."""


class LookupResponse(msgspec.Struct):
    by: str
    count: int
    matches: list[PersonMatch]


@post(
    "/v1/trace/persons/lookup",
    summary="Find a person by id number or phone (audited)",
    tags=["tracing"],
    status_code=200,
)
async def lookup_person(
    request: Request[Any, Any, Any], data: LookupRequest, ctx: Context, store: Store, principal: Principal
) -> LookupResponse:
    principal.require("tracer")
    why = check_reason(data.reason)
    if bool(data.id_number.strip()) == bool(data.phone.strip()):
        raise BadInput("give exactly one of id_number or phone")
    if data.id_number.strip():
        by = "id_number"
        found = await persons.lookup_by_id_number(ctx, persons.normalise_id_number(data.id_number))
        ids = [found] if found is not None else []
    else:
        by = "phone"
        ids = await persons.lookup_by_phone(ctx, persons.normalise_phone(data.phone))
    ids = ids[:MAX_MATCHES]
    if principal.scope and ids:
        try:
            ids = [
                pid
                for pid in ids
                if await asyncio.to_thread(trace.person_has_stays, store, pid, principal.scope)
            ]
        except StoreError as exc:
            raise Unavailable(f"the trace store failed: {exc}", retry_after=5) from exc
    names = await persons.masked_names(ctx, ids)
    await audit.record(
        ctx, store, principal, "person_lookup", why, {"by": by}, len(ids), audit.client_ip(request)
    )
    return LookupResponse(
        by=by, count=len(ids), matches=[PersonMatch(pid, names.get(pid, "")) for pid in ids]
    )


PART = Part("person-lookup", routes=[lookup_person])
