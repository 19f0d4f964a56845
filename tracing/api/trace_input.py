"""What the tracing routes take in and how they check it: the request structs of contacts and exposure
screening, the reason every trace call needs, windows of at most 60 days, person ids, and the
:class:`~tracing.answers.inquiry.Inquiry` a route hands to its answer."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request
from litestar.params import Parameter

from checkin.platform.auth import Principal
from checkin.platform.context import Context
from checkin.platform.errors import BadInput, NotFound, Unprocessable
from checkin.platform.instants import DAY_MS, format_ms
from checkin.platform.openapi_doc import trimmed
from tracing.answers.inquiry import Inquiry
from tracing.api import audit
from tracing.storage.store import Store

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


# --- request structs ---------------------------------------------------------------------------------


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


# --- checks ------------------------------------------------------------------------------------------


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


def check_format(format: str) -> None:
    if format not in ("json", "csv"):
        raise BadInput(f"format must be json or csv, got {format!r}")


def parse_person_id(raw: str) -> int:
    if not re.fullmatch(PERSON_ID_PATTERN, raw):
        raise BadInput(f"person_id must be an unsigned 64-bit integer, got {raw!r}")
    if int(raw) > U64_MAX:  # no one has it
        raise NotFound(f"no person {raw}")
    return int(raw)


def inquiry(
    request: Request[Any, Any, Any],
    ctx: Context,
    store: Store,
    principal: Principal,
    action: str,
    reason: str,
) -> Inquiry:
    """The inquiry of this request: the caller, the audit action, the reason, the client address."""
    return Inquiry(ctx, store, principal, action, reason, audit.client_ip(request))
