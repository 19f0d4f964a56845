"""Residents: registration, bulk import, companions.

Writes the person record of :mod:`checkin.platform.persons`, and beside it:

* ``person-state`` copies (one per shard in cluster mode): ``nm`` (masked name) and ``cmp``
  (``,id,id,`` companion list) for the check-in script, next to the health fields that
  :mod:`checkin.health` writes.
* ``person:{id}:companions`` set: the companion list the ``cmp`` copies mirror.

The same id number always maps to the same person: registration claims the id-hash key
with ``SET NX`` and falls back to the existing owner. Re-registering needs the same name
(the phone number may change: it is updated).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from checkin.platform import resident_tokens
from checkin.platform.context import Context
from checkin.platform.errors import BadInput, Conflict, NotFound
from checkin.platform.hot_redis import run_commands
from checkin.platform.instants import format_ms, now_ms
from checkin.platform.keyring import Keyring
from checkin.platform.persons import (
    id_hash,
    mask_name,
    normalise_id_number,
    normalise_phone,
    phone_cipher,
)
from checkin.platform.redis_keys import RedisKeys

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
Phone = Annotated[str, msgspec.Meta(max_length=32)]
IdNumber = Annotated[str, msgspec.Meta(max_length=32)]


class RegisterIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    phone: Phone
    id_number: IdNumber


class CompanionIn(msgspec.Struct, forbid_unknown_fields=True):
    """A family member: the phone is optional (children often have none)."""

    name: Name
    id_number: IdNumber
    phone: Phone = ""


class Registered(msgspec.Struct):
    person_id: int
    token: str
    expires_at: str
    name_masked: str
    created: bool


class Companion(msgspec.Struct):
    person_id: int
    name_masked: str


def normalise_name(value: str) -> str:
    text = " ".join(value.split())
    if not text or any(ord(c) < 32 for c in text):
        raise BadInput("name: must not be empty or contain control characters")
    return text


# --- the identity of one registration ----------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    name: str
    masked: str
    phone_ct: str
    idh: str


def identity(
    keyring: Keyring, name: str, phone: str, id_number: str, phone_required: bool = True
) -> Identity:
    """Validate and protect one registration (raises BadInput naming the bad field)."""
    clean_name = normalise_name(name)
    idn = normalise_id_number(id_number)
    clean_phone = normalise_phone(phone, phone_required)
    idh = id_hash(keyring, idn)
    ct = phone_cipher(keyring).encrypt(clean_phone, idh) if clean_phone else ""
    return Identity(clean_name, mask_name(clean_name), ct, idh)


# --- writes ----------------------------------------------------------------


def _profile_commands(
    keys: RedisKeys, out: list[tuple[Any, ...]], person_id: int, ident: Identity, created_ms: int | None
) -> None:
    fields: list[str] = ["name", ident.name, "idh", ident.idh]
    if ident.phone_ct:
        fields += ["phone", ident.phone_ct]
    if created_ms is not None:
        fields += ["created_at", str(created_ms)]
    out.append(("HSET", keys.person(person_id), *fields))
    for key in keys.pstate_copies(person_id):
        out.append(("HSET", key, "nm", ident.masked))


async def claim_persons(
    ctx: Context, idents: Sequence[Identity], *, require_same_name: bool
) -> list[tuple[int, bool] | str]:
    """Create or find the persons of these identities (pipelined, three or four round trips).

    Returns per identity ``(person_id, created)`` or an error text (a name mismatch when
    ``require_same_name``).
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
    names: dict[int, str] = {}
    if existing:
        found = await run_commands(ctx, [("GET", keys.person_by_id_hash(idents[i].idh)) for i in existing])
        for i, raw in zip(existing, found, strict=True):
            owners[i] = int(raw)
        if require_same_name:
            stored = await run_commands(ctx, [("HGET", keys.person(owners[i]), "name") for i in existing])
            for i, raw in zip(existing, stored, strict=True):
                names[i] = raw.decode() if raw is not None else ""
    out: list[tuple[int, bool] | str] = []
    created_ms = now_ms()
    writes: list[tuple[Any, ...]] = []
    for i, ident in enumerate(idents):
        if claimed[i] is not None:
            pid = first + i
            _profile_commands(keys, writes, pid, ident, created_ms)
            out.append((pid, True))
            continue
        pid = owners[i]
        if require_same_name and names.get(i) and names[i] != ident.name:
            out.append("this id_number is registered under another name")
            continue
        _profile_commands(keys, writes, pid, ident, None)
        out.append((pid, False))
    await run_commands(ctx, writes)
    return out


def issue_token(ctx: Context, person_id: int) -> tuple[str, str]:
    token, expires = resident_tokens.issue(
        ctx.keyring, person_id, ctx.settings.resident_token_ttl_hours * 3600
    )
    return token, format_ms(expires * 1000)


async def register(ctx: Context, data: RegisterIn) -> Registered:
    ident = identity(ctx.keyring, data.name, data.phone, data.id_number)
    result = (await claim_persons(ctx, [ident], require_same_name=True))[0]
    if isinstance(result, str):
        raise Conflict(f"id_number: {result}; use the name it was registered with")
    pid, created = result
    token, expires = issue_token(ctx, pid)
    return Registered(
        person_id=pid, token=token, expires_at=expires, name_masked=ident.masked, created=created
    )


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
    claimed = await claim_persons(ctx, [ident for _, ident in good], require_same_name=False)
    results = list(bad)
    for (number, _ident), res in zip(good, claimed, strict=True):
        if isinstance(res, str):  # pragma: no cover - only with require_same_name
            results.append(LineResult(line=number, error=res))
            continue
        pid, created = res
        token = issue_token(ctx, pid)[0] if with_tokens else None
        results.append(LineResult(line=number, person_id=pid, created=created, token=token))
    results.sort(key=lambda r: r.line)
    return results


# --- companions ----------------------------------------------------------------


async def _write_companion_copies(ctx: Context, owner: int) -> list[int]:
    members = sorted(int(m) for m in await ctx.redis.smembers(ctx.keys.companions(owner)))
    text = "," + ",".join(str(m) for m in members) + "," if members else ""
    pipe = ctx.redis.pipeline(transaction=False)
    for key in ctx.keys.pstate_copies(owner):
        if text:
            pipe.hset(key, "cmp", text)
        else:
            pipe.hdel(key, "cmp")
    await pipe.execute()
    return members


async def add_companion(ctx: Context, owner: int, data: CompanionIn) -> Companion:
    if not await ctx.redis.exists(ctx.keys.person(owner)):
        raise NotFound(f"resident {owner} is not registered")
    ident = identity(ctx.keyring, data.name, data.phone, data.id_number, phone_required=False)
    if not ident.phone_ct:
        existing = await ctx.redis.get(ctx.keys.person_by_id_hash(ident.idh))
        if existing is not None:  # do not wipe a known phone number
            ident = Identity(ident.name, ident.masked, "", ident.idh)
    result = (await claim_persons(ctx, [ident], require_same_name=True))[0]
    if isinstance(result, str):
        raise Conflict(f"id_number: {result}")
    pid = result[0]
    if pid == owner:
        raise BadInput("a resident cannot be their own companion")
    members = await ctx.redis.smembers(ctx.keys.companions(owner))
    if str(pid).encode() not in members and len(members) >= ctx.settings.max_companions:
        raise Conflict(f"at most {ctx.settings.max_companions} companions per resident")
    await ctx.redis.sadd(ctx.keys.companions(owner), pid)
    await _write_companion_copies(ctx, owner)
    return Companion(person_id=pid, name_masked=ident.masked)


async def list_companions(ctx: Context, owner: int) -> list[Companion]:
    members = sorted(int(m) for m in await ctx.redis.smembers(ctx.keys.companions(owner)))
    pipe = ctx.redis.pipeline(transaction=False)
    for m in members:
        pipe.hget(ctx.keys.person(m), "name")
    names = await pipe.execute() if members else []
    return [
        Companion(person_id=m, name_masked=mask_name(n.decode()) if n else "*")
        for m, n in zip(members, names, strict=True)
    ]


async def remove_companion(ctx: Context, owner: int, person_id: int) -> None:
    if not await ctx.redis.srem(ctx.keys.companions(owner), person_id):
        raise NotFound(f"person {person_id} is not one of your companions")
    await _write_companion_copies(ctx, owner)
