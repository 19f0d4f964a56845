"""Sentinel devices: the door scanner of one venue uploads the codes it read.

A device key is bound to one venue (``POST /v1/keys`` with role ``device`` and a
``venue_id``); an admin may upload for any venue with ``?venue_id=``. A person is named by
the door pass their phone shows (``pass``: signed, valid 120 s, carrying their token version, so
a revoked person's pass is refused too) or their id number (ID card reader). A bearer token is
never a pass.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from litestar import Response, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter

from checkin.checkins import service as checkins
from checkin.checkins.admission import admitted
from checkin.platform import persons, resident_tokens
from checkin.platform.auth import Principal
from checkin.platform.context import Context
from checkin.platform.errors import BadInput, DomainError, Forbidden, NotFound, Unauthenticated
from checkin.platform.instants import now_ms
from checkin.platform.service import Part

MAX_SCANS = 500


class SentinelScan(msgspec.Struct, forbid_unknown_fields=True):
    """One scan: the door pass the phone showed (``pass``), or an id card's number."""

    door_pass: Annotated[str, msgspec.Meta(max_length=128)] | None = msgspec.field(default=None, name="pass")
    id_number: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    scanned_at: Annotated[dt.datetime, msgspec.Meta(tz=True)] | None = None


class SentinelIn(msgspec.Struct, forbid_unknown_fields=True):
    scans: Annotated[list[SentinelScan], msgspec.Meta(min_length=1, max_length=MAX_SCANS)]


_encoder = msgspec.json.Encoder()


@post(
    "/v1/sentinel/scans",
    status_code=200,
    summary="Upload scans from a venue's door device (device key); per-scan verdicts",
    tags=["sentinel"],
    responses={200: ResponseSpec(data_container=checkins.SentinelOut, description="Per-scan verdicts")},
)
async def post_scans(
    data: SentinelIn,
    ctx: Context,
    principal: Principal,
    venue_id: Annotated[int | None, Parameter(ge=1, le=2**32 - 1)] = None,
) -> Response[bytes]:
    principal.require("device")
    if principal.role == "device":
        if principal.venue_id is None:
            raise BadInput("this device key is not bound to a venue")
        if venue_id is not None and venue_id != principal.venue_id:
            raise Forbidden(f"this device key is bound to venue {principal.venue_id}")
        target = principal.venue_id
    elif venue_id is None:
        raise BadInput("venue_id: an admin upload must name the venue (?venue_id=)")
    else:
        target = venue_id
    with admitted(ctx, "sentinel") as lite:
        out = await _resolve_and_check_in(ctx, data, target, lite)
    return Response(content=_encoder.encode(out), status_code=200, media_type="application/json")


async def _resolve_and_check_in(
    ctx: Context, data: SentinelIn, target: int, lite: bool
) -> checkins.SentinelOut:
    now = now_ms()
    resolved: list[tuple[int, int, str] | DomainError] = []
    by_id_number: list[tuple[int, str]] = []
    for index, scan in enumerate(data.scans):
        try:
            if (scan.door_pass is None) == (scan.id_number is None):
                raise BadInput("give exactly one of pass or id_number")
            at = checkins.scan_instant(ctx, scan.scanned_at, now)
            if scan.door_pass is not None:
                claims = resident_tokens.verify_pass(ctx.keyring, scan.door_pass, now / 1000)
                resolved.append((claims.person_id, at, str(claims.version)))
            else:
                resolved.append((0, at, ""))
                by_id_number.append((index, scan.id_number or ""))
        except (BadInput, Unauthenticated, DomainError) as exc:
            resolved.append(exc)
    if by_id_number:
        found = await persons.lookup_many_by_id_number(ctx, [n for _, n in by_id_number])
        for (index, _), pid in zip(by_id_number, found, strict=True):
            entry = resolved[index]
            assert not isinstance(entry, DomainError)
            resolved[index] = (
                (pid, entry[1], "") if pid is not None else NotFound("no resident with this id_number")
            )
    return await checkins.check_in_sentinel(ctx, target, resolved, now, lite)


PART = Part("sentinel", routes=[post_scans])
