"""The venue record and its Redis hash layout (read by the check-in script too).

Hash fields at ``RedisKeys.venue(id)``: name, address, type, district, street,
community, lat, lon, capacity, dwell_minutes, requires_negative_test_hours
("" = no policy), active ("1"/"0"), code_version, code_mode (static, rotating),
updated_at (RFC 3339), closed_at (RFC 3339, "" while open) and closed_reason.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

VenueType = Literal[
    "restaurant",
    "supermarket",
    "market",
    "transit",
    "hospital",
    "school",
    "office",
    "hotel",
    "entertainment",
    "other",
]
VENUE_TYPES: tuple[str, ...] = VenueType.__args__  # type: ignore[attr-defined]
CodeMode = Literal["static", "rotating"]
MIN_DWELL_MINUTES, MAX_DWELL_MINUTES = 5, 720
"""A stay shorter than 5 minutes could never overlap another by the 15 minutes contact tracing asks
for: a venue set to 1 minute would be blind to tracing."""
PLACE_FIELDS = ("district", "street", "community", "lat", "lon")
"""Where the venue is: what jurisdiction scoping, tracing and the location rules (``remote_scan``,
``impossible_travel``) depend on; changed by admins only."""

DATA_FIELDS: tuple[str, ...] = (
    "name",
    "address",
    "type",
    "district",
    "street",
    "community",
    "lat",
    "lon",
    "capacity",
    "dwell_minutes",
    "requires_negative_test_hours",
)
"""Fields a CSV row or a create request sets; active, code_version and updated_at are the registry's."""
CSV_COLUMNS: tuple[str, ...] = ("venue_id", *DATA_FIELDS)
"""The venue CSV header, in order (`checkin venues import`, `POST /v1/venues/import`)."""
RECORD_COLUMNS: tuple[str, ...] = (*CSV_COLUMNS, "active", "code_version", "updated_at")
"""Every column of a venue record (the ClickHouse `venues` table)."""

# \Z: the end of the text (Python's $ also matches before a final line break); the documents say $
District = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}\Z")]
Street = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{9}\Z")]
Community = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{12}\Z")]
VenueId = Annotated[int, msgspec.Meta(ge=1, le=2**32 - 1)]


class Venue(msgspec.Struct, kw_only=True):
    venue_id: int
    name: str
    address: str = ""
    type: str = "other"
    district: str
    street: str
    community: str
    lat: float
    lon: float
    capacity: int = 0
    """0 = no capacity rule."""
    dwell_minutes: int = 60
    requires_negative_test_hours: int | None = None
    active: bool = True
    code_version: int = 1
    code_mode: CodeMode = "static"
    """``static``: the printed poster's code; ``rotating``: a screen at the door shows a code that
    changes every ``CHECKIN_ROTATING_STEP_S`` (the poster's code is then refused)."""
    updated_at: str = ""
    closed_at: str = ""
    """When the venue was closed (``PATCH {active: false, reason}``); empty while it is open. A scan of
    its codes is then answered 410 with this date."""
    closed_reason: str = ""
    """Why it was closed, as the operator gave it (kept in the venue's history too)."""

    def to_hash(self) -> dict[str, str]:
        """The venue's Redis hash. The fields the check-in script reads come first, in the order it
        asks for them: Redis looks a field of a small hash up by walking it from the start."""
        return {
            "active": "1" if self.active else "0",
            "code_version": str(self.code_version),
            "district": self.district,
            "street": self.street,
            "community": self.community,
            "lat": repr(self.lat),
            "lon": repr(self.lon),
            "dwell_minutes": str(self.dwell_minutes),
            "requires_negative_test_hours": ""
            if self.requires_negative_test_hours is None
            else str(self.requires_negative_test_hours),
            "name": self.name,
            "code_mode": self.code_mode,
            "address": self.address,
            "type": self.type,
            "capacity": str(self.capacity),
            "updated_at": self.updated_at,
            "closed_at": self.closed_at,
            "closed_reason": self.closed_reason,
        }

    @classmethod
    def from_hash(cls, venue_id: int, raw: dict[bytes, bytes]) -> Venue:
        h = {k.decode(): v.decode() for k, v in raw.items()}
        rnt = h.get("requires_negative_test_hours", "")
        return cls(
            venue_id=venue_id,
            name=h.get("name", ""),
            address=h.get("address", ""),
            type=h.get("type", "other"),
            district=h.get("district", ""),
            street=h.get("street", ""),
            community=h.get("community", ""),
            lat=float(h.get("lat", "0")),
            lon=float(h.get("lon", "0")),
            capacity=int(h.get("capacity", "0")),
            dwell_minutes=int(h.get("dwell_minutes", "60")),
            requires_negative_test_hours=int(rnt) if rnt else None,
            active=h.get("active", "1") == "1",
            code_version=int(h.get("code_version", "1")),
            code_mode="rotating" if h.get("code_mode") == "rotating" else "static",
            updated_at=h.get("updated_at", ""),
            closed_at=h.get("closed_at", ""),
            closed_reason=h.get("closed_reason", ""),
        )


class VenueAlert(msgspec.Struct, kw_only=True):
    """An alert of a venue that its operator may read (``GET /v1/venues/{id}/day``): the kind, when and
    the counts; never a person. The rule engine keeps the venue's latest in ``rules:venue-alerts:<id>``."""

    alert_id: str
    kind: str
    at: str
    """The instant of the scan that raised it (RFC 3339 UTC)."""
    occupancy: int | None = None
    """Stays open at the venue then (``capacity_exceeded``)."""
    capacity: int | None = None


OPERATOR_ALERT_KINDS: tuple[str, ...] = ("capacity_exceeded",)
"""Alert kinds a venue's operator sees: about the venue, not about who came in."""
