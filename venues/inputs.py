"""What an operator sends to the registry: a new venue and a change of one (msgspec checks the
constraints that can be declared; :func:`venues.registry.validate` the rest)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from checkin.platform.openapi_doc import OPERATOR_TEXT_FORMAT
from venues import text
from venues.model import (
    MAX_DWELL_MINUTES,
    MIN_DWELL_MINUTES,
    CodeMode,
    Community,
    District,
    Street,
    VenueId,
    VenueType,
)

_TEXT = {"format": OPERATOR_TEXT_FORMAT}
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=text.MAX_CHARS, extra_json_schema=_TEXT)]
"""Printable text, no web address, no 【】 (:mod:`venues.text`)."""
Address = Annotated[str, msgspec.Meta(max_length=text.MAX_CHARS, extra_json_schema=_TEXT)]
Lat = Annotated[float, msgspec.Meta(ge=-90, le=90)]
Lon = Annotated[float, msgspec.Meta(ge=-180, le=180)]
Capacity = Annotated[int, msgspec.Meta(ge=0, le=10_000_000)]
Dwell = Annotated[int, msgspec.Meta(ge=MIN_DWELL_MINUTES, le=MAX_DWELL_MINUTES)]
TestHours = Annotated[int, msgspec.Meta(ge=1, le=8760)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=text.MAX_CHARS, extra_json_schema=_TEXT)]


class VenueIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new venue (``venue_id`` is allocated when omitted)."""

    venue_id: VenueId | None = None
    name: Name
    address: Address = ""
    type: VenueType = "other"
    district: District
    street: Street
    community: Community
    lat: Lat
    lon: Lon
    capacity: Capacity = 0
    dwell_minutes: Dwell = 60
    requires_negative_test_hours: TestHours | None = None


class VenuePatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields to change; omitted fields stay. ``requires_negative_test_hours: null`` clears the policy."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    address: Address | msgspec.UnsetType = msgspec.UNSET
    type: VenueType | msgspec.UnsetType = msgspec.UNSET
    district: District | msgspec.UnsetType = msgspec.UNSET
    street: Street | msgspec.UnsetType = msgspec.UNSET
    community: Community | msgspec.UnsetType = msgspec.UNSET
    lat: Lat | msgspec.UnsetType = msgspec.UNSET
    lon: Lon | msgspec.UnsetType = msgspec.UNSET
    capacity: Capacity | msgspec.UnsetType = msgspec.UNSET
    dwell_minutes: Dwell | msgspec.UnsetType = msgspec.UNSET
    requires_negative_test_hours: TestHours | msgspec.UnsetType | None = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET
    """``false`` closes the venue (needs ``reason``): its codes are then refused with 410 and the date;
    its history and stays are kept. ``true`` opens it again."""
    code_mode: CodeMode | msgspec.UnsetType = msgspec.UNSET
    reason: Reason | msgspec.UnsetType = msgspec.UNSET
    """Why the venue closes; required with ``active: false`` and only there (kept in the venue's
    ``closed_reason`` and its history)."""

    # reason goes with {"active": false} and only there (400 reason_required, reason_unexpected)
    __json_schema_extra__ = {
        "if": {"properties": {"active": {"const": False}}, "required": ["active"]},
        "then": {"required": ["reason"]},
        "else": {"not": {"required": ["reason"]}},
    }
