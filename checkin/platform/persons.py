"""The person record, as every service reads it (ingest writes it: :mod:`checkin.residents`).

Storage (keys from :class:`checkin.platform.redis_keys.RedisKeys`):

* ``person:{id}`` hash: ``name``, ``phone`` (AES-GCM ciphertext, :class:`PhoneCipher`),
  ``idh`` (keyed hash of the id number), ``created_at`` (unix ms).
* ``person:by-id-number:{idh}`` -> person id. The id number itself is never stored: only
  HMAC-SHA256(subkey("id-number"), normalised id number), keyed with the keyring's *lowest*
  key id so the hash stays stable when the keyring rotates.

Tracers reach a person's name and phone through the tracing service, which audits every read.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
import re
from collections.abc import Sequence

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from checkin.platform.context import Context
from checkin.platform.errors import BadInput
from checkin.platform.keyring import Keyring

ID_PURPOSE = "id-number"
PHONE_PURPOSE = "phone"
PHONE_HASH_PURPOSE = "phone-hash"
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_RE = re.compile(r"^[0-9]{17}[0-9X]$")
_PHONE_RE = re.compile(r"^(1[0-9]{10}|\+[0-9]{7,15})$")
_MOBILE_RE = re.compile(r"^1[0-9]{10}$")
_CHINA_PREFIXES = ("+86", "0086", "86")
_SEPARATORS = " \t\u00a0\u3000()-"
"""What a phone may be written with between its digits: spaces (ASCII, tab, no-break, ideographic),
dashes and brackets."""
_PHONE_STRIP = str.maketrans("", "", _SEPARATORS)
_SEP = "[ \\t\\u00a0\\u3000()-]*"
PHONE_PATTERN = (
    f"^{_SEP}(?:(?:(?:\\+{_SEP}|0{_SEP}0{_SEP})?8{_SEP}6{_SEP})?1(?:{_SEP}[0-9]){{10}}"
    f"|\\+(?:{_SEP}[0-9]){{7,15}}){_SEP}$"
)
"""The phones :func:`normalise_phone` takes, as a JSON-schema pattern (ECMA: ``$`` is the end of the
text, ``[0-9]`` what ``\\d`` would be)."""
ID_NUMBER_PATTERN = "^ *(?:[0-9] *){17}[0-9Xx] *$"
"""The id numbers :func:`normalise_id_number` takes, as a JSON-schema pattern."""
MAX_AGE_YEARS = 130
"""A birth date further back than this is no real person's (the id number is made up)."""
LANG_FIELD = "lang"
"""Field of ``person:<id>`` with the language the phone page remembered for the person's texts
(``en``; absent or anything else: Chinese)."""


class ContactDetails(msgspec.Struct, frozen=True):
    person_id: int
    name: str
    phone: str


def normalise_id_number(value: str) -> str:
    """Upper-cased, spaces removed; raises BadInput unless it is 17 digits and a check character.

    The GB 11643 check digit is not enforced here (the phone page checks it while the
    resident types; records from other registries carry ids whose digit was never checked):
    see :func:`check_digit_ok`.
    """
    text = value.replace(" ", "").upper()
    if not _ID_RE.fullmatch(text):
        raise BadInput("id_number: expected 18 characters (17 digits and a check character 0-9 or X)")
    return text


def check_digit_ok(id_number: str) -> bool:
    """True when the GB 11643 check digit of a normalised id number matches."""
    total = sum((ord(c) - 48) * w for c, w in zip(id_number, _ID_WEIGHTS, strict=False))
    return _ID_CHECK[total % 11] == id_number[17]


def normalise_phone(value: str, required: bool = True) -> str:
    """The one canonical form of a phone number, used everywhere a phone is stored, hashed or
    limited: a mainland mobile is its 11 digits (``+86 138-0000-0001``, ``0086 13800000001`` and
    ``8613800000001`` are all ``13800000001``); another country's number keeps its ``+`` form.
    Spaces (:data:`_SEPARATORS`), dashes and brackets are dropped. Raises BadInput otherwise
    (:data:`PHONE_PATTERN` says the same)."""
    text = value.translate(_PHONE_STRIP)
    if not text and not required:
        return ""
    for prefix in _CHINA_PREFIXES:
        if text.startswith(prefix) and _MOBILE_RE.fullmatch(text[len(prefix) :]):
            text = text[len(prefix) :]
            break
    if not _PHONE_RE.fullmatch(text):
        raise BadInput("phone: expected an 11-digit mobile number (1xxxxxxxxxx) or +country number")
    return text


def birth_date(id_number: str) -> str | None:
    """YYYYMMDD of the birth date a normalised id number carries (GB 11643: characters 7 to 14),
    or None when those digits are not a real calendar date."""
    text = id_number[6:14]
    try:
        dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None
    return text


def age_on(birth: str, day: str) -> int | None:
    """Whole years from a YYYYMMDD birth date to a YYYYMMDD day (the birthday itself counts: one is
    16 on their 16th birthday); None for a birth after that day or more than
    :data:`MAX_AGE_YEARS` before it."""
    if birth > day:
        return None
    years = int(day[:4]) - int(birth[:4]) - (day[4:] < birth[4:])
    return years if years <= MAX_AGE_YEARS else None


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


def phone_hash(keyring: Keyring, phone: str) -> str:
    """Keyed hash of a normalised phone number (32 hex characters): OTP challenges and the
    phone lookup refer to a phone by it, never by the number."""
    key = keyring.subkey(PHONE_HASH_PURPOSE, id_hash_key_id(keyring))
    return hmac.new(key, phone.encode(), hashlib.sha256).hexdigest()[:32]


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


async def contact_details(ctx: Context, person_id: int) -> ContactDetails | None:
    """Name and decrypted phone of one person, None when not registered (tracers reach this
    through the tracing service, which audits both outcomes)."""
    raw: dict[bytes, bytes] = await ctx.redis.hgetall(ctx.keys.person(person_id))
    if not raw:
        return None
    idh = raw.get(b"idh", b"").decode()
    phone = phone_cipher(ctx.keyring).decrypt(raw.get(b"phone", b"").decode(), idh)
    return ContactDetails(person_id=person_id, name=raw.get(b"name", b"").decode(), phone=phone)


async def set_hot_state(ctx: Context, person_id: int, mapping: dict[str, str]) -> None:
    """Write fields of the person's hot state (every copy, in cluster mode one per shard)."""
    pipe = ctx.redis.pipeline(transaction=False)
    for key in ctx.keys.pstate_copies(person_id):
        pipe.hset(key, mapping=mapping)
    await pipe.execute()


async def phones_of(ctx: Context, person_ids: Sequence[int]) -> dict[int, str]:
    """Decrypted phones on record of these persons (pipelined; persons without one are left out)."""
    pipe = ctx.redis.pipeline(transaction=False)
    for pid in person_ids:
        pipe.hmget(ctx.keys.person(pid), "phone", "idh")
    cipher = phone_cipher(ctx.keyring)
    out: dict[int, str] = {}
    for pid, (blob, idh) in zip(person_ids, await pipe.execute() if person_ids else [], strict=True):
        if blob:
            try:
                out[pid] = cipher.decrypt(blob.decode(), (idh or b"").decode())
            except ValueError:
                continue
    return out


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


async def masked_names(ctx: Context, person_ids: Sequence[int]) -> dict[int, str]:
    """Masked names (张*丰) of these persons, pipelined; persons not registered are left out."""
    ids = list(dict.fromkeys(person_ids))
    if not ids:
        return {}
    pipe = ctx.redis.pipeline(transaction=False)
    for pid in ids:
        pipe.hget(ctx.keys.person(pid), "name")
    return {pid: mask_name(raw.decode()) for pid, raw in zip(ids, await pipe.execute(), strict=True) if raw}


async def lookup_by_phone(ctx: Context, phone: str) -> list[int]:
    """Person ids registered with this (normalised) phone: a family may share one."""
    members = await ctx.redis.smembers(ctx.keys.person_by_phone_hash(phone_hash(ctx.keyring, phone)))
    return sorted(int(m) for m in members)
