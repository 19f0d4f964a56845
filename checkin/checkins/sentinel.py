"""Sentinel devices: the door scanner of one venue uploads the codes it read.

Scans are counted against the device's own budget (``CHECKIN_RATE_DEVICE_PER_MIN``; the excess
is refused per scan with 429 and a Retry-After) and may be at most ``CHECKIN_DEVICE_BACKLOG_HOURS``
old. The answer names a person only as the door needs: masked name, colour, verdict, reason.

A device key is bound to one venue (``POST /v1/keys`` with role ``device`` and a
``venue_id``); an admin may upload for any venue with ``?venue_id=``. A person is named by
the door pass their phone shows (``pass``: signed, valid 120 s, carrying their token version, so
a revoked person's pass is refused too; single-use, :func:`checkin.residents.credentials.consume_passes`)
or their id number (ID card reader). A bearer token is never a pass.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from litestar import Response, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter

from checkin import protection
from checkin.checkins import calls, wire
from checkin.checkins import service as checkins
from checkin.checkins.admission import admitted
from checkin.platform import persons, resident_tokens
from checkin.platform.auth import Principal
from checkin.platform.context import Context
from checkin.platform.errors import (
    BadInput,
    DomainError,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthenticated,
    Unprocessable,
)
from checkin.platform.instants import now_ms
from checkin.platform.service import Part
from checkin.residents import credentials

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
    problems=(422,),
    responses={
        200: ResponseSpec(
            data_container=wire.SentinelOut, description="Per-scan verdicts", generate_examples=False
        )
    },
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
        raise Unprocessable(
            "venue_id: an admin upload must name the venue (?venue_id=)", reason="venue_required"
        )
    else:
        target = venue_id
    with admitted(ctx, "sentinel") as lite:
        out, retry_after = await _resolve_and_check_in(ctx, data, target, principal.key_id, lite)
    headers = None if retry_after is None else {"Retry-After": str(retry_after)}
    return Response(
        content=_encoder.encode(out), status_code=200, media_type="application/json", headers=headers
    )


async def _resolve_and_check_in(
    ctx: Context, data: SentinelIn, target: int, device: str, lite: bool
) -> tuple[wire.SentinelOut, int | None]:
    now = now_ms()
    resolved: list[tuple[int, int, str] | DomainError] = []
    by_id_number: list[tuple[int, str]] = []
    passes: list[tuple[int, tuple[str, int, int]]] = []
    for index, scan in enumerate(data.scans):
        try:
            if (scan.door_pass is None) == (scan.id_number is None):
                raise BadInput("give exactly one of pass or id_number")
            at = calls.scan_instant(ctx, scan.scanned_at, now, ctx.settings.device_backlog_hours)
            if scan.door_pass is not None:
                claims = resident_tokens.verify_pass(ctx.keyring, scan.door_pass, now / 1000)
                resolved.append((claims.person_id, at, str(claims.version)))
                passes.append((index, (scan.door_pass, claims.expires_at, at)))
            else:
                resolved.append((0, at, ""))
                by_id_number.append((index, scan.id_number or ""))
        except (BadInput, Unauthenticated, DomainError) as exc:
            resolved.append(exc)
    reads = [read for _, read in passes]  # single-use: only the first device that reads a pass goes on
    used = await credentials.consume_passes(ctx, target, device, reads, now, calls.REPEAT_WINDOW_MS)
    for (index, _), refusal in zip(passes, used, strict=True):
        if refusal is not None:
            resolved[index] = refusal
    if by_id_number:
        found = await persons.lookup_many_by_id_number(ctx, [n for _, n in by_id_number])
        unknown = [index for (index, _), pid in zip(by_id_number, found, strict=True) if pid is None]
        # an unknown number spends the device's scan budget too, so a door device cannot test the
        # registry for numbers faster than it could scan people
        within = not unknown or await protection.spend(
            ctx,
            "device",
            device,
            len(unknown),
            ctx.settings.rate_device_per_min,
            now,
            ctx.keys.shard_of(target),
        )
        for (index, _), pid in zip(by_id_number, found, strict=True):
            entry = resolved[index]
            assert not isinstance(entry, DomainError)
            if pid is not None:
                resolved[index] = (pid, entry[1], "")
            elif within:
                resolved[index] = NotFound("no resident with this id_number", reason="unknown_person")
            else:
                resolved[index] = TooManyRequests(
                    f"too many scans from this device; at most {ctx.settings.rate_device_per_min} a minute",
                    retry_after=protection.window_now(now)[1],
                    reason="rate_limited",
                )
    return await checkins.check_in_sentinel(ctx, target, device, resolved, now, lite)


PART = Part("sentinel", routes=[post_scans])
