"""Residents: registration, bulk import, companions, and contact details for tracers.

Storage (keys from :class:`checkin.platform.redis_keys.RedisKeys`):

* ``person:{id}`` hash: ``name``, ``phone`` (AES-GCM ciphertext, see :func:`encrypt_phone`),
  ``idh`` (keyed hash of the id number), ``created_at`` (unix ms).
* ``person:idn:{idh}`` -> person id. The id number itself is never stored: only
  HMAC-SHA256(subkey("id-number"), normalised id number), keyed with the keyring's *lowest*
  key id so the hash stays stable when the keyring rotates.
* ``pstate`` copies (one per shard in cluster mode): ``nm`` (masked name) and ``cmp``
  (``,id,id,`` companion list) for the check-in script, next to the health fields that
  :mod:`checkin.health` writes.
* ``person:{id}:companions`` set: the companion list the ``cmp`` copies mirror.

The same id number always maps to the same person: registration claims the id-hash key
with ``SET NX`` and falls back to the existing owner. Re-registering needs the same name
(the phone number may change: it is updated).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from checkin.platform import resident_tokens
from checkin.platform.context import Context
from checkin.platform.errors import BadInput, Conflict, NotFound
from checkin.platform.hot_redis import run_commands
from checkin.platform.instants import format_ms, now_ms
from checkin.platform.keyring import Keyring
from checkin.platform.redis_keys import RedisKeys

ID_PURPOSE = "id-number"
PHONE_PURPOSE = "phone"
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_RE = re.compile(r"^\d{17}[\dX]$")
_PHONE_RE = re.compile(r"^(1\d{10}|\+\d{7,15})$")
_PHONE_STRIP = str.maketrans("", "", " -()")

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


class ContactDetails(msgspec.Struct, frozen=True):
    person_id: int
    name: str
    phone: str


# --- pure helpers ----------------------------------------------------------------


def normalise_id_number(value: str) -> str:
    """Upper-cased, spaces removed; raises BadInput unless it is 17 digits and a check character.

    The GB 11643 check digit is not enforced here (the phone page checks it while the
    resident types; records from other registries carry ids whose digit was never checked):
    see :func:`check_digit_ok`.
    """
    text = value.replace(" ", "").upper()
    if not _ID_RE.match(text):
        raise BadInput("id_number: expected 18 characters (17 digits and a check character 0-9 or X)")
    return text


def check_digit_ok(id_number: str) -> bool:
    """True when the GB 11643 check digit of a normalised id number matches."""
    total = sum((ord(c) - 48) * w for c, w in zip(id_number, _ID_WEIGHTS, strict=False))
    return _ID_CHECK[total % 11] == id_number[17]


def normalise_phone(value: str, required: bool = True) -> str:
    text = value.translate(_PHONE_STRIP)
    if not text and not required:
        return ""
    if not _PHONE_RE.match(text):
        raise BadInput("phone: expected an 11-digit mobile number (1xxxxxxxxxx) or +country number")
    return text


def normalise_name(value: str) -> str:
    text = " ".join(value.split())
    if not text or any(ord(c) < 32 for c in text):
        raise BadInput("name: must not be empty or contain control characters")
    return text


def mask_name(name: str) -> str:
    """张三 -> 张*, 张三丰 -> 张*丰, John Smith -> J********h."""
    n = len(name)
    if n <= 1:
        return "*"
    if n == 2:
        return name[0] + "*"
    return name[0] + "*" * (n - 2) + name[-1]


def id_hash_key_id(keyring: Keyring) -> int:
    return min(keyring.keys)


def id_hash(keyring: Keyring, id_number: str) -> str:
    """Keyed hash of a normalised id number (32 hex characters)."""
    key = keyring.subkey(ID_PURPOSE, id_hash_key_id(keyring))
    return hmac.new(key, id_number.encode(), hashlib.sha256).hexdigest()[:32]


class PhoneCipher:
    """AES-GCM for phone numbers: ``b64url(key id u8 | nonce 12 | ciphertext+tag)``.

    The associated data is the person's id hash, so a ciphertext copied onto another
    person does not decrypt.
    """

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._ciphers: dict[int, AESGCM] = {}

    def _cipher(self, kid: int) -> AESGCM:
        cipher = self._ciphers.get(kid)
        if cipher is None:
            cipher = AESGCM(self.keyring.subkey(PHONE_PURPOSE, kid))
            self._ciphers[kid] = cipher
        return cipher

    def encrypt(self, phone: str, idh: str) -> str:
        kid = self.keyring.active_id
        nonce = os.urandom(12)
        ct = self._cipher(kid).encrypt(nonce, phone.encode(), idh.encode())
        return base64.urlsafe_b64encode(bytes([kid]) + nonce + ct).decode()

    def decrypt(self, blob: str, idh: str) -> str:
        if not blob:
            return ""
        try:
            raw = base64.urlsafe_b64decode(blob)
            kid = raw[0]
            return self._cipher(kid).decrypt(raw[1:13], raw[13:], idh.encode()).decode()
        except (ValueError, IndexError, KeyError, InvalidTag) as exc:
            raise ValueError(f"stored phone number cannot be decrypted: {type(exc).__name__}") from None


_ciphers: dict[int, PhoneCipher] = {}


def phone_cipher(keyring: Keyring) -> PhoneCipher:
    cipher = _ciphers.get(id(keyring))
    if cipher is None or cipher.keyring is not keyring:
        cipher = PhoneCipher(keyring)
        _ciphers[id(keyring)] = cipher
    return cipher


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


# --- lookups for other parts ----------------------------------------------------------------


async def contact_details(ctx: Context, person_id: int) -> ContactDetails | None:
    """Name and decrypted phone of one person, None when not registered (tracers reach this
    through the tracing service, which audits both outcomes)."""
    raw: dict[bytes, bytes] = await ctx.redis.hgetall(ctx.keys.person(person_id))
    if not raw:
        return None
    idh = raw.get(b"idh", b"").decode()
    phone = phone_cipher(ctx.keyring).decrypt(raw.get(b"phone", b"").decode(), idh)
    return ContactDetails(person_id=person_id, name=raw.get(b"name", b"").decode(), phone=phone)


async def lookup_by_id_number(ctx: Context, id_number: str) -> int | None:
    """Person id registered with this id number, or None (also None for a malformed number)."""
    try:
        idn = normalise_id_number(id_number)
    except BadInput:
        return None
    raw = await ctx.redis.get(ctx.keys.person_by_id_hash(id_hash(ctx.keyring, idn)))
    return int(raw) if raw is not None else None


async def lookup_many_by_id_number(ctx: Context, id_numbers: Sequence[str]) -> list[int | None]:
    """Pipelined :func:`lookup_by_id_number` (sentinel uploads)."""
    hashes: list[str | None] = []
    for value in id_numbers:
        try:
            hashes.append(id_hash(ctx.keyring, normalise_id_number(value)))
        except BadInput:
            hashes.append(None)
    wanted = [h for h in hashes if h is not None]
    if not wanted:
        return [None] * len(hashes)
    pipe = ctx.redis.pipeline(transaction=False)
    for digest in wanted:
        pipe.get(ctx.keys.person_by_id_hash(digest))
    found = iter(await pipe.execute())
    out: list[int | None] = []
    for maybe in hashes:
        if maybe is None:
            out.append(None)
        else:
            raw: bytes | None = next(found)
            out.append(int(raw) if raw is not None else None)
    return out


async def person_exists(ctx: Context, person_ids: Sequence[int]) -> list[bool]:
    pipe = ctx.redis.pipeline(transaction=False)
    for pid in person_ids:
        pipe.exists(ctx.keys.person(pid))
    return [bool(x) for x in await pipe.execute()] if person_ids else []
