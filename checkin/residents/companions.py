"""Companions: the family members a resident checks in with, by consent (docs/ARCHITECTURE.md,
"Residents and identity").

* A person not yet registered becomes the caller's dependant (a child, an elder without a phone).
  With a phone, that phone's one-time code is needed (the number becomes theirs on record).
* A person already registered is added only with the one-time code of the phone on their record:
  their consent. Without it: 403 ``consent_required``.
* The limit (``CHECKIN_MAX_COMPANIONS``) is checked before anything is written.

``person:<id>:companions`` holds whom a resident may check in; ``person:<id>:guardians`` the
reverse, so a person sees who may check them in and can end it. The check-in script reads the
companion list from the owner's hot state (``cmp``), rewritten on every change.
"""

from __future__ import annotations

import hmac

import msgspec

from checkin.platform.context import Context
from checkin.platform.errors import BadInput, Conflict, Forbidden, NotFound
from checkin.platform.persons import mask_name, phone_cipher
from checkin.residents import otp
from checkin.residents.service import (
    ChallengeId,
    IdNumber,
    Name,
    OtpCode,
    Phone,
    claim_persons,
    identity,
    require_check_digit,
)


class CompanionIn(msgspec.Struct, forbid_unknown_fields=True):
    """A family member. ``phone`` with ``challenge_id`` and ``otp``: the code sent to that phone
    (needed for a registered person, whose consent it is; and for a new person given a phone)."""

    name: Name
    id_number: IdNumber
    phone: Phone = ""
    challenge_id: ChallengeId | None = None
    otp: OtpCode | None = None


class Companion(msgspec.Struct):
    person_id: int
    name_masked: str
    dependant: bool = False
    """True when the person was registered by this resident (a child, an elder without a phone)."""


async def _write_companion_copies(ctx: Context, owner: int) -> None:
    members = sorted(int(m) for m in await ctx.redis.smembers(ctx.keys.companions(owner)))
    text = "," + ",".join(str(m) for m in members) + "," if members else ""
    pipe = ctx.redis.pipeline(transaction=False)
    for key in ctx.keys.pstate_copies(owner):
        if text:
            pipe.hset(key, "cmp", text)
        else:
            pipe.hdel(key, "cmp")
    await pipe.execute()


async def _link(ctx: Context, owner: int, person_id: int) -> None:
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.sadd(ctx.keys.companions(owner), person_id)
    pipe.sadd(ctx.keys.guardians(person_id), owner)
    await pipe.execute()
    await _write_companion_copies(ctx, owner)


async def _unlink(ctx: Context, owner: int, person_id: int) -> bool:
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.srem(ctx.keys.companions(owner), person_id)
    pipe.srem(ctx.keys.guardians(person_id), owner)
    removed, _ = await pipe.execute()
    await _write_companion_copies(ctx, owner)
    return bool(removed)


async def add_companion(ctx: Context, owner: int, data: CompanionIn) -> Companion:
    if not await ctx.redis.exists(ctx.keys.person(owner)):
        raise NotFound(f"resident {owner} is not registered")
    ident = identity(ctx.keyring, data.name, data.phone, data.id_number, phone_required=False)
    known = await ctx.redis.get(ctx.keys.person_by_id_hash(ident.idh))
    if known is not None and int(known) == owner:
        raise BadInput("a resident cannot be their own companion")
    members = await ctx.redis.smembers(ctx.keys.companions(owner))
    if known is not None and known in members:
        return Companion(person_id=int(known), name_masked=ident.masked)
    if len(members) >= ctx.settings.max_companions:
        raise otp.refused(
            ctx,
            "companion_limit",
            Conflict(f"at most {ctx.settings.max_companions} companions per resident; remove one first"),
        )
    if known is None:
        require_check_digit(data.id_number)
        if data.phone:
            await otp.prove(ctx, data.phone, data.challenge_id, data.otp)
        pid, created = (await claim_persons(ctx, [ident], update_existing=False))[0]
        if created:
            await ctx.redis.hset(ctx.keys.person(pid), "guardian", owner)
            await _link(ctx, owner, pid)
            return Companion(person_id=pid, name_masked=ident.masked, dependant=True)
        known = str(pid).encode()  # registered meanwhile: the consent rule below applies
    pid = int(known)
    raw: dict[bytes, bytes] = await ctx.redis.hgetall(ctx.keys.person(pid))
    stored = phone_cipher(ctx.keyring).decrypt(raw.get(b"phone", b"").decode(), ident.idh)
    if not data.phone or not data.challenge_id or not data.otp:
        raise otp.refused(
            ctx,
            "consent_required",
            Forbidden(
                "this person is registered: adding them needs their consent, the code sent to the phone "
                "on their record (ask for a code for their phone, then send phone, challenge_id and otp)"
            ),
        )
    proof = await otp.prove(ctx, data.phone, data.challenge_id, data.otp)
    if not stored or not hmac.compare_digest(stored, proof.phone):
        raise otp.refused(
            ctx,
            "consent_required",
            Forbidden("the code must come from the phone on this person's record; it did not"),
        )
    await _link(ctx, owner, pid)
    return Companion(person_id=pid, name_masked=mask_name(raw.get(b"name", b"").decode()))


async def _named(ctx: Context, ids: list[int], owner: int | None = None) -> list[Companion]:
    pipe = ctx.redis.pipeline(transaction=False)
    for m in ids:
        pipe.hmget(ctx.keys.person(m), "name", "guardian")
    rows = await pipe.execute() if ids else []
    return [
        Companion(
            person_id=m,
            name_masked=mask_name(name.decode()) if name else "*",
            dependant=owner is not None and guardian is not None and int(guardian) == owner,
        )
        for m, (name, guardian) in zip(ids, rows, strict=True)
    ]


async def list_companions(ctx: Context, owner: int) -> list[Companion]:
    members = sorted(int(m) for m in await ctx.redis.smembers(ctx.keys.companions(owner)))
    return await _named(ctx, members, owner)


async def remove_companion(ctx: Context, owner: int, person_id: int) -> None:
    if not await _unlink(ctx, owner, person_id):
        raise NotFound(f"person {person_id} is not one of your companions")


async def list_guardians(ctx: Context, person_id: int) -> list[Companion]:
    """Who may check this person in."""
    guardians = sorted(int(m) for m in await ctx.redis.smembers(ctx.keys.guardians(person_id)))
    return await _named(ctx, guardians)


async def end_guardian(ctx: Context, person_id: int, guardian: int) -> None:
    """This person no longer lets ``guardian`` check them in."""
    if not await ctx.redis.sismember(ctx.keys.guardians(person_id), guardian):
        raise NotFound(f"person {guardian} does not check you in")
    await _unlink(ctx, guardian, person_id)
