"""Residents: the registry's writes (registration by OTP, bulk import) and resident tokens.

Writes the person record of :mod:`checkin.platform.persons`, and beside it:

* ``person-state`` copies (one per shard in cluster mode): ``nm`` (masked name), ``tv`` (token
  version) and ``cmp`` (``,id,id,`` companion list) for the check-in script, next to the health
  fields that :mod:`checkin.health` writes.
* ``person:by-phone:<phone hash>``: the persons whose phone on record has that keyed hash.

The same id number always maps to the same person: creating claims the id-hash key with ``SET NX``
and falls back to the existing person. Registration (docs/ARCHITECTURE.md, "Residents and
identity") needs the one-time code of the phone; for an id number already registered it answers a
token only when that phone is the one on record. Names are never compared and the stored phone is
never replaced there: re-binding a phone is the health authority's (:mod:`checkin.residents.credentials`).
The one exception is a dependant's record (made by a guardian, :mod:`checkin.residents.companions`):
the person who registers it with a phone they hold takes it over (201), and every guardian link then
waits for their confirmation (:mod:`checkin.residents.guardianship`).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from checkin.platform import json_depth, resident_tokens
from checkin.platform.auth import TOKEN_VERSION_FIELD
from checkin.platform.context import Context
from checkin.platform.errors import BadInput, Conflict
from checkin.platform.hot_redis import run_commands
from checkin.platform.instants import format_ms, now_ms
from checkin.platform.keyring import Keyring
from checkin.platform.openapi_doc import ID_NUMBER_FORMAT, PY_SPACE
from checkin.platform.persons import (
    ID_NUMBER_PATTERN,
    PHONE_PATTERN,
    check_digit_ok,
    id_hash,
    mask_name,
    normalise_id_number,
    normalise_phone,
    phone_cipher,
    phone_hash,
)
from checkin.platform.redis_keys import RedisKeys
from checkin.residents import otp
from checkin.residents.guardianship import GUARDIAN_FIELD, claim_dependant, hold_guardians

_CONTROL = "\\x00-\\x08\\x0e-\\x1b"
NAME_PATTERN = f"^[^{_CONTROL}]*[^{_CONTROL}{PY_SPACE}][^{_CONTROL}]*$"
"""The names :func:`normalise_name` takes: something besides white space, no control character."""
# The schemas of the identity fields say what the registry's own checks (which name the field and
# the rule in their 400) take: the decoder enforces only the lengths.
Name = Annotated[
    str,
    msgspec.Meta(
        min_length=1, max_length=50, examples=["张三丰"], extra_json_schema={"pattern": NAME_PATTERN}
    ),
]
Phone = Annotated[
    str, msgspec.Meta(max_length=32, examples=["13800138000"], extra_json_schema={"pattern": PHONE_PATTERN})
]
IdNumber = Annotated[
    str,
    msgspec.Meta(
        max_length=32, examples=["11010519491231002X"], extra_json_schema={"pattern": ID_NUMBER_PATTERN}
    ),
]
NewIdNumber = Annotated[
    str,
    msgspec.Meta(
        max_length=32,
        examples=["11010519491231002X"],
        extra_json_schema={"pattern": ID_NUMBER_PATTERN, "format": ID_NUMBER_FORMAT},
        description="GB 11643: 17 digits and the check character (0-9 or X) they give (400 id_check_digit)",
    ),
]
ChallengeId = Annotated[str, msgspec.Meta(max_length=64, extra_json_schema={"minLength": 1})]
OtpCode = Annotated[
    str, msgspec.Meta(max_length=16, examples=["482913"], extra_json_schema={"pattern": otp.CODE_PATTERN})
]


class RegisterIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    phone: Phone
    id_number: NewIdNumber
    challenge_id: ChallengeId
    otp: OtpCode


class Registered(msgspec.Struct):
    person_id: Annotated[int, msgspec.Meta(examples=[100230])]
    token: Annotated[str, msgspec.Meta(examples=["r2.AAAAAAABh4ZqLRwQAAAAAQFiPeUt2UoULqr_sQ4-N7nT"])]
    expires_at: Annotated[str, msgspec.Meta(examples=["2026-06-13T09:00:00.000Z"])]
    name_masked: Annotated[str, msgspec.Meta(examples=["张*丰"])]
    created: bool
    took_over: bool = False
    """True when a dependant (a record a guardian made) took their record over: 201, and every
    guardian link waits for their confirmation (``GET /v1/residents/me/guardians``)."""


def normalise_name(value: str) -> str:
    text = " ".join(value.split())
    if not text or any(ord(c) < 32 for c in text):
        raise BadInput("name: must not be empty or contain control characters")
    return text


# --- the identity of one person ----------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    name: str
    masked: str
    phone_ct: str
    idh: str
    ph: str
    """Keyed hash of the phone ("" without one)."""


def identity(
    keyring: Keyring, name: str, phone: str, id_number: str, phone_required: bool = True
) -> Identity:
    """Validate and protect one person's identity (raises BadInput naming the bad field)."""
    clean_name = normalise_name(name)
    idn = normalise_id_number(id_number)
    clean_phone = normalise_phone(phone, phone_required)
    idh = id_hash(keyring, idn)
    ct = phone_cipher(keyring).encrypt(clean_phone, idh) if clean_phone else ""
    ph = phone_hash(keyring, clean_phone) if clean_phone else ""
    return Identity(clean_name, mask_name(clean_name), ct, idh, ph)


def require_check_digit(id_number: str) -> None:
    """A new id number must carry a correct GB 11643 check digit (a typo must not make a person)."""
    if not check_digit_ok(normalise_id_number(id_number)):
        raise BadInput(
            "id_number: the check digit (the 18th character) does not match the number; check it",
            reason="id_check_digit",
        )


# --- writes ----------------------------------------------------------------


def _profile_commands(
    keys: RedisKeys,
    out: list[tuple[Any, ...]],
    person_id: int,
    ident: Identity,
    created_ms: int | None,
    old_ph: str = "",
) -> None:
    fields: list[str] = ["name", ident.name, "idh", ident.idh]
    if ident.phone_ct:
        fields += ["phone", ident.phone_ct, "ph", ident.ph]
    if created_ms is not None:
        fields += ["created_at", str(created_ms)]
    out.append(("HSET", keys.person(person_id), *fields))
    if ident.ph and ident.ph != old_ph:
        out.append(("SADD", keys.person_by_phone_hash(ident.ph), person_id))
        if old_ph:
            out.append(("SREM", keys.person_by_phone_hash(old_ph), person_id))
    for key in keys.pstate_copies(person_id):
        out.append(("HSET", key, "nm", ident.masked))
        if old_ph and ident.ph and ident.ph != old_ph:
            # the registry moved the person to another phone: tokens of the old phone end
            out.append(("HINCRBY", key, TOKEN_VERSION_FIELD, 1))


async def claim_persons(
    ctx: Context, idents: Sequence[Identity], *, update_existing: bool
) -> list[tuple[int, bool]]:
    """Create or find the persons of these identities (pipelined, three or four round trips).

    Returns per identity ``(person_id, created)``. ``update_existing`` (the registry's import)
    writes name and phone of persons that exist; otherwise they are left as they are.
    """
    if not idents:
        return []
    keys = ctx.keys
    last = int((await run_commands(ctx, [("INCRBY", keys.person_seq(), len(idents))]))[0])
    first = last - len(idents) + 1
    claimed = await run_commands(
        ctx, [("SET", keys.person_by_id_hash(ident.idh), first + i, "NX") for i, ident in enumerate(idents)]
    )
    existing = [i for i, ok in enumerate(claimed) if ok is None]
    owners: dict[int, int] = {}
    old_phones: dict[int, str] = {}
    if existing:
        found = await run_commands(ctx, [("GET", keys.person_by_id_hash(idents[i].idh)) for i in existing])
        for i, raw in zip(existing, found, strict=True):
            owners[i] = int(raw)
        if update_existing:
            phones = await run_commands(ctx, [("HGET", keys.person(owners[i]), "ph") for i in existing])
            old_phones = {i: raw.decode() if raw else "" for i, raw in zip(existing, phones, strict=True)}
    out: list[tuple[int, bool]] = []
    created_ms = now_ms()
    writes: list[tuple[Any, ...]] = []
    for i, ident in enumerate(idents):
        if claimed[i] is not None:
            pid = first + i
            _profile_commands(keys, writes, pid, ident, created_ms)
            out.append((pid, True))
            continue
        pid = owners[i]
        if update_existing:
            _profile_commands(keys, writes, pid, ident, None, old_phones.get(i, ""))
        out.append((pid, False))
    await run_commands(ctx, writes)
    return out


async def token_version(ctx: Context, person_id: int) -> int:
    raw = await ctx.redis.hget(ctx.keys.pstate_copies(person_id)[0], TOKEN_VERSION_FIELD)
    return int(raw or 0)


async def issue_token(ctx: Context, person_id: int, version: int | None = None) -> tuple[str, str]:
    if version is None:
        version = await token_version(ctx, person_id)
    token, expires = resident_tokens.issue(
        ctx.keyring, person_id, ctx.settings.resident_token_ttl_hours * 3600, version
    )
    return token, format_ms(expires * 1000)


async def register(ctx: Context, data: RegisterIn) -> Registered:
    """A token for the holder of a phone (proved by its one-time code) and an id number.

    A dependant (a record a guardian made) who registers takes it over whatever phone the guardian
    gave: the proved phone goes on record, and every guardian link waits for their confirmation."""
    ident = identity(ctx.keyring, data.name, data.phone, data.id_number)
    known = await ctx.redis.get(ctx.keys.person_by_id_hash(ident.idh))
    if known is None:
        require_check_digit(data.id_number)
    proof = await otp.prove(ctx, data.phone, data.challenge_id, data.otp)
    pid, created = (await claim_persons(ctx, [ident], update_existing=False))[0]
    took_over = False
    if not created:
        raw: dict[bytes, bytes] = await ctx.redis.hgetall(ctx.keys.person(pid))
        if GUARDIAN_FIELD.encode() in raw and await claim_dependant(ctx, pid):
            await _take_over(ctx, pid, ident, raw.get(b"ph", b"").decode())
            took_over = True
        else:
            stored = phone_cipher(ctx.keyring).decrypt(raw.get(b"phone", b"").decode(), ident.idh)
            if not stored or not hmac.compare_digest(stored, proof.phone):
                raise otp.refused(
                    ctx,
                    "phone_mismatch",
                    Conflict(
                        "this id number is registered with another phone number. If your number changed "
                        "or your phone was lost, ask the health authority (or a community health office) "
                        "to re-bind the new number; then register again with it",
                    ),
                )
            name = raw.get(b"name", b"").decode()
            ident = Identity(name, mask_name(name), "", "", "")
    token, expires = await issue_token(ctx, pid)
    return Registered(
        person_id=pid,
        token=token,
        expires_at=expires,
        name_masked=ident.masked,
        created=created,
        took_over=took_over,
    )


async def _take_over(ctx: Context, person_id: int, ident: Identity, old_ph: str) -> None:
    """The dependant's own name and proved phone go on record (their stays stay theirs), tokens made
    before end, and every guardian link waits for their confirmation."""
    writes: list[tuple[Any, ...]] = []
    _profile_commands(ctx.keys, writes, person_id, ident, None, old_ph)
    if not old_ph or old_ph == ident.ph:  # else the phone change above already ended older tokens
        writes += [("HINCRBY", key, TOKEN_VERSION_FIELD, 1) for key in ctx.keys.pstate_copies(person_id)]
    await run_commands(ctx, writes)
    await hold_guardians(ctx, person_id)


# --- bulk import ----------------------------------------------------------------


class ImportLine(msgspec.Struct):
    name: str
    phone: str
    id_number: str


class LineResult(msgspec.Struct, omit_defaults=True):
    line: int
    person_id: int | None = None
    created: bool | None = None
    token: str | None = None
    error: str | None = None


_line_decoder = msgspec.json.Decoder(ImportLine)


def parse_lines(
    keyring: Keyring, lines: Iterable[tuple[int, bytes]]
) -> tuple[list[tuple[int, Identity]], list[LineResult]]:
    """Validate NDJSON lines (line number, raw bytes); blank lines are skipped."""
    good: list[tuple[int, Identity]] = []
    bad: list[LineResult] = []
    for number, raw in lines:
        if not raw.strip():
            continue
        try:
            json_depth.check(raw)  # a line nested too deep is refused before the decoder sees it
            item = _line_decoder.decode(raw)
            good.append((number, identity(keyring, item.name, item.phone, item.id_number)))
        except msgspec.DecodeError as exc:
            bad.append(LineResult(line=number, error=f"not a JSON object with name, phone, id_number: {exc}"))
        except BadInput as exc:
            bad.append(LineResult(line=number, error=exc.detail))
    return good, bad


async def import_chunk(
    ctx: Context, lines: Sequence[tuple[int, bytes]], with_tokens: bool = False
) -> list[LineResult]:
    """Import one chunk of NDJSON lines; per-line results in line order (existing persons updated)."""
    good, bad = parse_lines(ctx.keyring, lines)
    claimed = await claim_persons(ctx, [ident for _, ident in good], update_existing=True)
    results = list(bad)
    versions: list[Any] = []
    if with_tokens and claimed:
        versions = await run_commands(
            ctx, [("HGET", ctx.keys.pstate_copies(pid)[0], TOKEN_VERSION_FIELD) for pid, _ in claimed]
        )
    for k, ((number, _ident), (pid, created)) in enumerate(zip(good, claimed, strict=True)):
        token = (await issue_token(ctx, pid, int(versions[k] or 0)))[0] if with_tokens else None
        results.append(LineResult(line=number, person_id=pid, created=created, token=token))
    results.sort(key=lambda r: r.line)
    return results
