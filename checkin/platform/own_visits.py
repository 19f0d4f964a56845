"""The shape of a resident's own visits: answered by the tracing service from ClickHouse, relayed by
the ingest API to the phone page (both sides decode and encode this one struct)."""

from __future__ import annotations

import msgspec


class OwnVisit(msgspec.Struct):
    checkin_id: str
    venue_id: int
    venue_name: str
    at: str
    end_at: str
    """When the stay ended, or ends by the venue's dwell time if it is still open."""
    checked_out: bool
    status: str
    """The colour the door saw."""
    verdict: str


class OwnVisits(msgspec.Struct):
    person_id: int
    days: int
    count: int
    visits: list[OwnVisit]
    """Newest first."""


decoder = msgspec.json.Decoder(OwnVisits)
