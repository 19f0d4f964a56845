"""What a resident's credentials can be made to do: revoke every token, re-bind the phone on record
(the health authority's, audited; it ends every guardian link of the person), and a door pass for
the scanners at doors.

A door pass is single-use. The first door device that reads it consumes it: ``door-pass:<digest>``
is set (``SET NX``) to ``venue|device|scan instant`` for the pass's lifetime before the check-in
script runs. A second read by the same device at the same venue within the repeat window (60 s) is
that check-in again (a device that reads twice is not an error); any other read is 401
``pass_used``. ``GET /v1/residents/me/pass?current=`` answers the pass the phone shows until a door
reads it, so the phone, polling, replaces it right after a read."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Sequence
from typing import Annotated

import msgspec

from checkin.platform import audit_trail, resident_tokens
from checkin.platform.auth import TOKEN_VERSION_FIELD, Principal
from checkin.platform.context import Context
from checkin.platform.errors import DomainError, NotFound, Unauthenticated
from checkin.platform.instants import format_ms
from checkin.platform.persons import normalise_phone, phone_cipher, phone_hash
from checkin.residents.guardianship import end_all_guardians
from checkin.residents.service import Phone
from venues import qr


class Revoked(msgspec.Struct):
    person_id: int
    token_version: int
    """Tokens older than this version are refused from now on."""


class RebindIn(msgspec.Struct, forbid_unknown_fields=True):
    phone: Phone
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class Rebound(msgspec.Struct):
    person_id: int
    token_version: int
    guardians_ended: int = 0
    """Guardian links of the person that the re-binding ended (confirmed or pending)."""


class DoorPass(msgspec.Struct):
    # "pass" is a Python keyword: the struct field is renamed on the wire
    door_pass: str = msgspec.field(name="pass")
    expires_at: str
    qr_svg: str
    """The pass as a QR code (an SVG data URL), for the phone to show."""


async def _require_person(ctx: Context, person_id: int) -> dict[bytes, bytes]:
    raw: dict[bytes, bytes] = await ctx.redis.hgetall(ctx.keys.person(person_id))
    if not raw:
        raise NotFound(f"person {person_id} is not registered")
    return raw


async def _bump_version(ctx: Context, person_id: int) -> int:
    pipe = ctx.redis.pipeline(transaction=False)
    for key in ctx.keys.pstate_copies(person_id):
        pipe.hincrby(key, TOKEN_VERSION_FIELD, 1)
    return int(max(await pipe.execute()))


async def revoke(ctx: Context, person_id: int) -> Revoked:
    await _require_person(ctx, person_id)
    return Revoked(person_id=person_id, token_version=await _bump_version(ctx, person_id))


async def rebind_phone(
    ctx: Context, principal: Principal, person_id: int, data: RebindIn, client_ip: str
) -> Rebound:
    """Put a new phone on record (the resident lost theirs, or changed number); every token ends."""
    phone = normalise_phone(data.phone)
    raw = await _require_person(ctx, person_id)
    idh = raw.get(b"idh", b"").decode()
    old_ph = raw.get(b"ph", b"").decode()
    new_ph = phone_hash(ctx.keyring, phone)
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.hset(
        ctx.keys.person(person_id),
        mapping={"phone": phone_cipher(ctx.keyring).encrypt(phone, idh), "ph": new_ph},
    )
    if old_ph and old_ph != new_ph:
        pipe.srem(ctx.keys.person_by_phone_hash(old_ph), person_id)
    pipe.sadd(ctx.keys.person_by_phone_hash(new_ph), person_id)
    await pipe.execute()
    version = await _bump_version(ctx, person_id)
    ended = await end_all_guardians(ctx, person_id)
    await audit_trail.record(
        ctx,
        principal,
        "phone_rebind",
        data.reason.strip(),
        {"person_id": person_id, "token_version": version, "guardians_ended": len(ended)},
        1,
        client_ip,
    )
    return Rebound(person_id=person_id, token_version=version, guardians_ended=len(ended))


# --- door passes -----------------------------------------------------------------------------------

PASS_KEEP_S = 20
"""A pass the phone shows is kept while it has more than this left (the phone page renews it then)."""
PASS_FRESH_TRIES = 3
"""Passes issued in one second are the same text: a fresh pass is issued a second later again when
the one of this second was read already."""


def pass_digest(text: str) -> str:
    """The name of a door pass in Redis (its text is never stored)."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


async def door_pass(ctx: Context, principal: Principal, current: str | None = None) -> DoorPass:
    """A pass for this resident, carrying their token version (a revoke ends passes too): ``current``
    while no door has read it and it has time left, else a fresh pass no door has read."""
    pid, version = principal.person_id or 0, principal.token_version
    now = time.time()
    candidates: list[tuple[str, int]] = []
    if current:
        try:
            claims = resident_tokens.verify_pass(ctx.keyring, current, now)
        except DomainError:
            claims = None
        if claims is not None and (claims.person_id, claims.version) == (pid, version):
            if claims.expires_at - now > PASS_KEEP_S:
                candidates.append((current, claims.expires_at))
    for k in range(PASS_FRESH_TRIES):
        candidates.append(resident_tokens.issue_pass(ctx.keyring, pid, version, now=now + k))
    pipe = ctx.redis.pipeline(transaction=False)
    for text, _ in candidates:
        pipe.exists(ctx.keys.door_pass_read(pass_digest(text)))
    read = await pipe.execute()
    text, expires = next((c for c, r in zip(candidates, read, strict=True) if not r), candidates[-1])
    svg = qr.svg(qr.encode(text), module=6)
    url = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
    return DoorPass(door_pass=text, expires_at=format_ms(expires * 1000), qr_svg=url)


async def consume_passes(
    ctx: Context,
    venue_id: int,
    device: str,
    reads: Sequence[tuple[str, int, int]],
    now_ms: int,
    repeat_window_ms: int,
) -> list[DomainError | None]:
    """Door passes read at a venue's door by one device: per (pass, its expiry in unix s, scan ms)
    None when the read may go on to the check-in (the first read, or the same device at the same
    venue reading it again within the check-in's repeat window), else 401 ``pass_used``. One
    round trip."""
    if not reads:
        return []
    pipe = ctx.redis.pipeline(transaction=False)
    for text, expires, at in reads:
        ttl = max(1, expires - now_ms // 1000 + 1)
        pipe.set(
            ctx.keys.door_pass_read(pass_digest(text)), f"{venue_id}|{device}|{at}", nx=True, ex=ttl, get=True
        )
    out: list[DomainError | None] = []
    for (_text, _expires, at), first in zip(reads, await pipe.execute(), strict=True):
        if first is not None:
            first_venue, rest = first.decode().split("|", 1)
            first_device, first_at = rest.rsplit("|", 1)
            again = (
                first_venue == str(venue_id)
                and first_device == device
                and abs(at - int(first_at)) <= repeat_window_ms
            )
            if not again:
                out.append(
                    Unauthenticated(
                        "this door pass was read already; the phone shows a fresh one", reason="pass_used"
                    )
                )
                continue
        out.append(None)
    return out


async def revoke_and_record(ctx: Context, principal: Principal, person_id: int, client_ip: str) -> Revoked:
    """The health authority's revocation of a person's tokens, audited."""
    out = await revoke(ctx, person_id)
    await audit_trail.record(
        ctx,
        principal,
        "tokens_revoke",
        "revoked by the health authority",
        {"person_id": person_id},
        1,
        client_ip,
    )
    return out
