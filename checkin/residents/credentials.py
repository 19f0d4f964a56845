"""What a resident's credentials can be made to do: revoke every token, re-bind the phone on record
(the health authority's, audited), and a door pass for the scanners at doors."""

from __future__ import annotations

import base64
from typing import Annotated

import msgspec

from checkin.platform import audit_trail, resident_tokens
from checkin.platform.auth import TOKEN_VERSION_FIELD, Principal
from checkin.platform.context import Context
from checkin.platform.errors import NotFound
from checkin.platform.instants import format_ms
from checkin.platform.persons import normalise_phone, phone_cipher, phone_hash
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
    await audit_trail.record(
        ctx,
        principal,
        "phone_rebind",
        data.reason.strip(),
        {"person_id": person_id, "token_version": version},
        1,
        client_ip,
    )
    return Rebound(person_id=person_id, token_version=version)


def door_pass(ctx: Context, principal: Principal) -> DoorPass:
    """A pass for this resident, carrying their token version (a revoke ends passes too)."""
    text, expires = resident_tokens.issue_pass(ctx.keyring, principal.person_id or 0, principal.token_version)
    svg = qr.svg(qr.encode(text), module=6)
    url = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
    return DoorPass(door_pass=text, expires_at=format_ms(expires * 1000), qr_svg=url)


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
