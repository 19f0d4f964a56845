"""``POST /v1/trace/persons/lookup {id_number | phone, reason}`` (tracer): find a person to trace.

The id number or phone is looked up by its keyed hash (:mod:`checkin.platform.persons`), exactly as at
registration; neither is written anywhere, the audit row keeps which kind was asked and the count
found. A scoped key only finds persons with stays in its jurisdiction (it learns nothing of the rest of
the city). Answers carry masked names only. A lookup binds no one (:mod:`tracing.answers.purpose`): the
tracer runs the contacts query of the person found, which makes them its index person, before their
contact details can be read; otherwise an id number alone would yield the phone on record.
The answer is :mod:`tracing.answers.lookup`.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, post

from checkin.platform.auth import Principal, requires_role
from checkin.platform.context import Context
from checkin.platform.errors import BadInput
from checkin.platform.openapi_doc import PY_SPACE
from checkin.platform.persons import ID_NUMBER_PATTERN, PHONE_PATTERN
from checkin.platform.service import Part
from tracing.answers import lookup as lookup_answers
from tracing.answers.lookup import MAX_MATCHES, LookupResponse, PersonMatch
from tracing.api.trace_input import REASON_PATTERN, check_reason, inquiry
from tracing.storage.store import Store

__all__ = ["MAX_MATCHES", "PART", "LookupRequest", "LookupResponse", "PersonMatch"]

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


@post(
    "/v1/trace/persons/lookup",
    summary="Find a person by id number or phone (audited)",
    tags=["tracing"],
    status_code=200,
    guards=[requires_role("tracer")],
)
async def lookup_person(
    request: Request[Any, Any, Any], data: LookupRequest, ctx: Context, store: Store, principal: Principal
) -> LookupResponse:
    why = check_reason(data.reason)
    if bool(data.id_number.strip()) == bool(data.phone.strip()):
        raise BadInput("give exactly one of id_number or phone")
    inq = inquiry(request, ctx, store, principal, "person_lookup", why)
    if data.id_number.strip():
        return await lookup_answers.lookup(inq, "id_number", data.id_number)
    return await lookup_answers.lookup(inq, "phone", data.phone)


PART = Part("person-lookup", routes=[lookup_person])
