"""Companions: the family members a resident checks in with, by consent (docs/ARCHITECTURE.md,
"Residents and identity").

* Without a code, a person not yet registered becomes the caller's **dependant** only when the
  birth date in their id number makes them a child (under 16) or an elder (70 or over) on the
  local date (``CHECKIN_TZ``). Every other id number, registered or not, gets the same 403
  ``consent_required`` after the same work (one id hash, one pipelined read of the registry and
  the caller's list), so the route tells no one who is registered.
* With a code (``phone``, ``challenge_id``, ``otp``): a person not yet registered is created with
  that phone on record; a registered person is added only when the code came from the phone on
  their record (their consent), else 403 ``consent_required``.
* Requests are limited per caller (:data:`ADDS_PER_CALLER_PER_MIN`) and per client address (the
  identity budget ``CHECKIN_RATE_REGISTER_PER_MIN`` that codes and registrations spend too).
* The limit (``CHECKIN_MAX_COMPANIONS``) is checked before anything is written.

``person:<id>:companions`` holds whom a resident may check in; ``person:<id>:guardians`` the
reverse, so a person sees who may check them in and can end it. A dependant who takes over their
record (registers with their own phone) has every guardian link put in
``person:<id>:pending-guardians`` until they confirm it; a pending link stays in both sets (it
holds the guardian's place under the limit) but is left out of the list the check-in script reads,
the ``cmp`` field of the guardian's hot state, which is rewritten on every change.
"""

from __future__ import annotations

import hmac
from typing import Annotated

import msgspec

from checkin import protection
from checkin.platform.context import Context
from checkin.platform.errors import BadInput, Conflict, DomainError, Forbidden, NotFound, TooManyRequests
from checkin.platform.instants import local_day, now_ms
from checkin.platform.persons import (
    PHONE_PATTERN,
    age_on,
    birth_date,
    mask_name,
    normalise_id_number,
    phone_cipher,
)
from checkin.residents import otp
from checkin.residents.guardianship import GUARDIAN_FIELD, active_companions, write_companion_copies
from checkin.residents.otp import CODE_PATTERN
from checkin.residents.service import (
    Name,
    NewIdNumber,
    claim_persons,
    identity,
    require_check_digit,
)

CHILD_BELOW_YEARS = 16
ELDER_FROM_YEARS = 70
ADDS_PER_CALLER_PER_MIN = 10
"""Companion requests one resident may make a minute (a family is added in a few)."""


class CompanionIn(msgspec.Struct, forbid_unknown_fields=True):
    """A family member. ``phone`` with ``challenge_id`` and ``otp``: the code sent to that phone
    (needed for a registered person, whose consent it is, and for anyone who is neither a child
    nor an elder; the phone becomes theirs on record when they are new)."""

    name: Name
    id_number: NewIdNumber
    phone: Annotated[
        str, msgspec.Meta(max_length=32, extra_json_schema={"pattern": f"^$|{PHONE_PATTERN}"})
    ] = ""
    challenge_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    otp: Annotated[str, msgspec.Meta(max_length=16)] | None = None

    # phone, challenge_id and otp go together (400 otp_missing otherwise): all three or none
    __json_schema_extra__ = {
        "anyOf": [
            {
                "properties": {
                    "phone": {"maxLength": 0},
                    "challenge_id": {"anyOf": [{"type": "null"}, {"maxLength": 0}]},
                    "otp": {"anyOf": [{"type": "null"}, {"maxLength": 0}]},
                }
            },
            {
                "required": ["phone", "challenge_id", "otp"],
                "properties": {
                    "phone": {"minLength": 1},
                    "challenge_id": {"type": "string", "minLength": 1},
                    "otp": {"type": "string", "pattern": CODE_PATTERN},
                },
            },
        ]
    }


class Companion(msgspec.Struct):
    person_id: int
    name_masked: str
    dependant: bool = False
    """True when the person was registered by this resident (a child, an elder without a phone)."""


class Guardian(msgspec.Struct):
    person_id: int
    name_masked: str
    pending: bool
    """True while the link waits for your confirmation: until then this person cannot check you in."""


def may_be_dependant(id_number: str, today: str) -> bool:
    """True when the birth date of this normalised id number makes its holder a child (under 16) or
    an elder (70 or over) on ``today`` (YYYYMMDD, local); False for a date that is no real one."""
    birth = birth_date(id_number)
    age = age_on(birth, today) if birth is not None else None
    return age is not None and (age < CHILD_BELOW_YEARS or age >= ELDER_FROM_YEARS)


async def _limit(ctx: Context, owner: int, client_ip: str) -> None:
    """One companion request against the caller's budget and the address's identity budget."""
    window, retry = protection.window_now(now_ms())
    checks = [
        ("companions", str(owner), ADDS_PER_CALLER_PER_MIN, "resident"),
        ("registration", client_ip, ctx.settings.rate_register_per_min, "address"),
    ]
    pipe = ctx.redis.pipeline(transaction=False)
    for kind, ident, _limit, _who in checks:
        key = ctx.keys.rate_tagged(0, kind, ident, window)
        pipe.incr(key)
        pipe.pexpire(key, protection.WINDOW_MS + 1000)
    replies = await pipe.execute()
    for i, (_kind, _ident, limit, who) in enumerate(checks):
        if int(replies[2 * i]) > limit:
            ctx.metrics.inc(protection.REJECTIONS, reason="rate_limited")
            raise otp.refused(
                ctx,
                "rate_limited",
                TooManyRequests(
                    f"too many companion requests from this {who}; at most {limit} a minute",
                    retry_after=retry,
                ),
            )


def _consent_required(ctx: Context) -> DomainError:
    return otp.refused(
        ctx,
        "consent_required",
        Forbidden(
            "this person can be added only with their consent: ask for a code for the phone they hold "
            "(the one on their record if they are registered), then send phone, challenge_id and otp. "
            "Without a code only a child under 16 or an elder of 70 or over who is not registered yet "
            "becomes your dependant"
        ),
    )


def _limit_reached(ctx: Context) -> DomainError:
    return otp.refused(
        ctx,
        "companion_limit",
        Conflict(f"at most {ctx.settings.max_companions} companions per resident; remove one first"),
    )


async def _link(ctx: Context, owner: int, person_id: int) -> None:
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.sadd(ctx.keys.companions(owner), person_id)
    pipe.sadd(ctx.keys.guardians(person_id), owner)
    pipe.srem(ctx.keys.pending_guardians(person_id), owner)
    await pipe.execute()
    await write_companion_copies(ctx, [owner])


async def _unlink(ctx: Context, owner: int, person_id: int) -> bool:
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.srem(ctx.keys.companions(owner), person_id)
    pipe.srem(ctx.keys.guardians(person_id), owner)
    pipe.srem(ctx.keys.pending_guardians(person_id), owner)
    removed, _, _ = await pipe.execute()
    await write_companion_copies(ctx, [owner])
    return bool(removed)


# --- adding ----------------------------------------------------------------------------------------


async def add_companion(ctx: Context, owner: int, data: CompanionIn, client_ip: str) -> Companion:
    await _limit(ctx, owner, client_ip)
    if not await ctx.redis.exists(ctx.keys.person(owner)):
        raise NotFound(f"resident {owner} is not registered")
    with_code = bool(data.challenge_id or data.otp)
    if (data.phone or with_code) and not (data.phone and data.challenge_id and data.otp):
        raise otp.refused(
            ctx,
            "otp_missing",
            BadInput(
                "phone, challenge_id and otp go together: ask for a code for the phone, then send all three"
            ),
        )
    ident = identity(ctx.keyring, data.name, data.phone, data.id_number, phone_required=False)
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.get(ctx.keys.person_by_id_hash(ident.idh))
    pipe.smembers(ctx.keys.companions(owner))
    known, members = await pipe.execute()
    if known is not None and int(known) == owner:
        raise BadInput("a resident cannot be their own companion")
    if known is not None and known in members:
        if not await ctx.redis.sismember(ctx.keys.pending_guardians(int(known)), owner):
            return Companion(person_id=int(known), name_masked=ident.masked)
        if not with_code:  # they took over their record: the link waits for their consent
            raise _consent_required(ctx)
    elif len(members) >= ctx.settings.max_companions:
        raise _limit_reached(ctx)
    if not with_code:
        # the same steps whether or not the number is registered: nothing here tells them apart
        idn = normalise_id_number(data.id_number)
        require_check_digit(idn)
        eligible = may_be_dependant(idn, local_day(now_ms(), ctx.settings.tz))
        if known is not None or not eligible:
            raise _consent_required(ctx)
    elif known is None:
        require_check_digit(data.id_number)  # before the code is spent: a typo must not cost it
        await otp.prove(ctx, data.phone, data.challenge_id, data.otp)
    if known is None:
        pid, created = (await claim_persons(ctx, [ident], update_existing=False))[0]
        if not created:  # registered meanwhile: only their consent adds them
            raise _consent_required(ctx)
        await ctx.redis.hset(ctx.keys.person(pid), GUARDIAN_FIELD, owner)
        await _link(ctx, owner, pid)
        return Companion(person_id=pid, name_masked=ident.masked, dependant=True)
    pid = int(known)
    proof = await otp.prove(ctx, data.phone, data.challenge_id, data.otp)
    raw: dict[bytes, bytes] = await ctx.redis.hgetall(ctx.keys.person(pid))
    stored = phone_cipher(ctx.keyring).decrypt(raw.get(b"phone", b"").decode(), ident.idh)
    if not stored or not hmac.compare_digest(stored, proof.phone):
        raise otp.refused(
            ctx,
            "consent_required",
            Forbidden("the code must come from the phone on this person's record; it did not"),
        )
    await _link(ctx, owner, pid)
    return Companion(person_id=pid, name_masked=mask_name(raw.get(b"name", b"").decode()))


# --- reading and ending ----------------------------------------------------------------------------


async def _names(ctx: Context, ids: list[int]) -> list[tuple[str, bytes | None]]:
    pipe = ctx.redis.pipeline(transaction=False)
    for m in ids:
        pipe.hmget(ctx.keys.person(m), "name", GUARDIAN_FIELD)
    rows = await pipe.execute() if ids else []
    return [(mask_name(name.decode()) if name else "*", guardian) for name, guardian in rows]


async def list_companions(ctx: Context, owner: int) -> list[Companion]:
    """Whom this resident may check in now (links waiting for the companion's confirmation are not
    listed: they do not work yet)."""
    members = await active_companions(ctx, owner)
    return [
        Companion(person_id=m, name_masked=name, dependant=guardian is not None and int(guardian) == owner)
        for m, (name, guardian) in zip(members, await _names(ctx, members), strict=True)
    ]


async def remove_companion(ctx: Context, owner: int, person_id: int) -> None:
    if not await _unlink(ctx, owner, person_id):
        raise NotFound(f"person {person_id} is not one of your companions")


async def list_guardians(ctx: Context, person_id: int) -> list[Guardian]:
    """Who may check this person in, and whose link waits for their confirmation."""
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.smembers(ctx.keys.guardians(person_id))
    pipe.smembers(ctx.keys.pending_guardians(person_id))
    confirmed, pending = await pipe.execute()
    ids = sorted(int(m) for m in confirmed | pending)
    waiting = {int(m) for m in pending}
    return [
        Guardian(person_id=g, name_masked=name, pending=g in waiting)
        for g, (name, _) in zip(ids, await _names(ctx, ids), strict=True)
    ]


async def confirm_guardian(ctx: Context, person_id: int, guardian: int) -> Guardian:
    """This person lets ``guardian`` check them in (a link waiting since they took over their record)."""
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.srem(ctx.keys.pending_guardians(person_id), guardian)
    pipe.sismember(ctx.keys.guardians(person_id), guardian)
    was_pending, linked = await pipe.execute()
    if not linked:
        raise NotFound(f"person {guardian} has no link to check you in")
    if was_pending:
        await write_companion_copies(ctx, [guardian])
    return Guardian(person_id=guardian, name_masked=(await _names(ctx, [guardian]))[0][0], pending=False)


async def end_guardian(ctx: Context, person_id: int, guardian: int) -> None:
    """This person no longer lets ``guardian`` check them in (or refuses a pending link)."""
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.sismember(ctx.keys.guardians(person_id), guardian)
    pipe.sismember(ctx.keys.pending_guardians(person_id), guardian)
    linked, pending = await pipe.execute()
    if not (linked or pending):
        raise NotFound(f"person {guardian} does not check you in")
    await _unlink(ctx, guardian, person_id)
