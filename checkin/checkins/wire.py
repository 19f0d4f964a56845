"""What the check-in routes take and answer (msgspec structs, also the OpenAPI schemas), and the
check-in record the script keeps, decoded by name."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from checkin.platform.openapi_doc import VENUE_CODE_FORMAT

MAX_BATCH = 500

ClientId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}\Z", examples=["door-2-tablet"])]
PersonId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
Instant = Annotated[dt.datetime, msgspec.Meta(tz=True)]


class Location(msgspec.Struct, forbid_unknown_fields=True):
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)]
    accuracy_m: Annotated[float, msgspec.Meta(ge=0, le=100_000)] | None = None


class CheckinIn(msgspec.Struct, forbid_unknown_fields=True):
    code: Annotated[
        str,
        msgspec.Meta(
            max_length=64,
            examples=["AAAEAAABAT9rcFucpeb3cm_DZw"],
            description="A venue code this service signed (base64url, 26 or 31 characters)",
            extra_json_schema={"format": VENUE_CODE_FORMAT},
        ),
    ]
    companions: Annotated[
        list[PersonId],
        msgspec.Meta(max_length=50, examples=[[100231]], extra_json_schema={"uniqueItems": True}),
    ] = []
    scanned_at: Annotated[Instant | None, msgspec.Meta(examples=["2026-03-15T09:12:40+08:00"])] = None
    client_id: ClientId | None = None
    location: Location | None = None
    code_proof: (
        Annotated[str, msgspec.Meta(max_length=64, pattern=r"^[0-9]{1,3}\.[0-9]{1,15}\.[A-Za-z0-9_-]{16}\Z")]
        | None
    ) = None
    """The phone page's proof that this screen code was current when it opened it: an expired screen
    code is then taken for ``CHECKIN_ROTATING_REGISTER_S`` and the scan recorded at that instant."""

    def __post_init__(self) -> None:
        # the schema's uniqueItems, checked while decoding: a batch refuses the item's duplicate whole
        if len(self.companions) > 1 and len(set(self.companions)) != len(self.companions):
            raise ValueError("companions: a person is listed twice")


class BatchIn(msgspec.Struct, forbid_unknown_fields=True):
    items: Annotated[list[CheckinIn], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class VenueOut(msgspec.Struct):
    venue_id: Annotated[int, msgspec.Meta(examples=[1024])]
    name: Annotated[str, msgspec.Meta(examples=["Wangfujing Bookstore"])]


class PersonOut(msgspec.Struct, omit_defaults=True):
    person_id: Annotated[int, msgspec.Meta(examples=[100230])]
    name_masked: Annotated[str, msgspec.Meta(examples=["张*丰"])]
    status: Annotated[str, msgspec.Meta(examples=["green"])]
    last_negative_test_at: Annotated[str | None, msgspec.Meta(examples=["2026-03-14T08:30:00.000Z"])]
    verdict: Annotated[str, msgspec.Meta(examples=["pass"])]
    reason: Annotated[str | None, msgspec.Meta(examples=["yellow_code"])] = None
    stay_at: Annotated[str | None, msgspec.Meta(examples=["2026-03-15T09:12:44.218Z"])] = None
    """When this person's stay began (a person added by a repeat scan starts at that scan)."""
    stay_ends_at: Annotated[str | None, msgspec.Meta(examples=["2026-03-15T10:12:44.218Z"])] = None
    """When this person's stay ends, as known now: its own end, or the start of their next stay."""
    ended_by: Annotated[str | None, msgspec.Meta(examples=["next_stay"])] = None
    """``checkout`` or ``next_stay`` when one of them set the end (absent: the venue's dwell)."""


class CheckinOut(msgspec.Struct, omit_defaults=True):
    checkin_id: Annotated[str, msgspec.Meta(examples=["0023fa91c04be7d5512ae0f"])]
    at: Annotated[str, msgspec.Meta(examples=["2026-03-15T09:12:44.218Z"])]
    ends_at: Annotated[str, msgspec.Meta(examples=["2026-03-15T11:12:44.218Z"])]
    venue: VenueOut
    people: list[PersonOut]
    duplicate: bool
    degraded: bool = False
    checked_out_at: str | None = None
    evaluated_at: str | None = None
    """Set when the people's colours and verdicts were judged again at this instant (a repeat scan, or
    ``GET /v1/checkins/{checkin_id}``), not at the scan."""


class ItemResult(msgspec.Struct, omit_defaults=True):
    index: int
    status: int
    checkin_id: str | None = None
    at: str | None = None
    duplicate: bool | None = None
    error: str | None = None
    error_reason: str | None = None
    """Why the item was refused, as the problem's ``reason`` of a single check-in (``rate_limited``…)."""


class BatchOut(msgspec.Struct):
    accepted: int
    duplicates: int
    rejected: int
    results: list[ItemResult]


class CheckoutOut(msgspec.Struct):
    checkin_id: str
    at: str
    ended_at: str
    people: list[int]


class RecordPerson(msgspec.Struct, array_like=True):
    """One person of a check-in record, as the script writes it (a JSON array; the stay's start, end
    and cause are absent from records made before stays were kept)."""

    person_id: str
    status: str
    verdict: str
    reason: str
    watchlist: str
    name_masked: str
    last_negative_test_ms: str
    stay_at_ms: str | None = None
    stay_ends_at_ms: str | None = None
    ended_by: str | None = None


class Record(msgspec.Struct):
    """The check-in record the script keeps (JSON, short keys); only what answers need is decoded."""

    checkin_id: str = msgspec.field(name="cid")
    venue_id: str = msgspec.field(name="vid")
    at: str
    end: str
    venue_name: str = msgspec.field(name="vn")
    owner: str = msgspec.field(name="own")
    persons: list[RecordPerson] = msgspec.field(name="p")
    checked_out_at: str = msgspec.field(default="", name="out")


record_decoder = msgspec.json.Decoder(Record)


class SentinelResult(msgspec.Struct, omit_defaults=True):
    """What the door needs of one scan, and nothing more: who (masked), their colour, the verdict
    and its reason. Never a person id or anything else that would make a device key a lookup of
    the population (docs/ARCHITECTURE.md, "Integrity of the record")."""

    index: int
    status: int
    at: str | None = None
    duplicate: bool | None = None
    name_masked: str | None = None
    health_status: str | None = None
    verdict: str | None = None
    reason: str | None = None
    """The verdict's reason (``red_code``…)."""
    error: str | None = None
    error_reason: str | None = None
    """Why the scan was refused (``rate_limited``, ``too_old``…)."""


class SentinelOut(msgspec.Struct):
    venue_id: int
    accepted: int
    duplicates: int
    rejected: int
    results: list[SentinelResult]
