"""Signed venue codes: the token a venue's QR code carries.

Token = base64url (no padding) of ``venue_id u32 | code_version u16 | key_id u8 |
MAC 12 bytes``, MAC = HMAC-SHA256(subkey("venue-code", key_id), first 7 bytes)
truncated: 19 bytes, 26 characters, so the URL fits a version-4 QR code.
Verification needs no Redis call; whether the version is current and the venue
active is checked against the registry by the caller.
"""

from __future__ import annotations

import hmac
import struct
from hashlib import sha256

import msgspec

from checkin.platform.errors import BadInput
from checkin.platform.keyring import Keyring, b64url_decode, b64url_encode

PURPOSE = "venue-code"
_BODY = struct.Struct(">IHB")
_MAC_LEN = 12
TOKEN_BYTES = _BODY.size + _MAC_LEN
TOKEN_CHARS = 26


class InvalidCode(BadInput):
    """A token that was not issued by us (tampered, truncated, unknown key)."""


class CodeClaims(msgspec.Struct, frozen=True):
    venue_id: int
    code_version: int
    key_id: int


def sign(keyring: Keyring, venue_id: int, code_version: int, key_id: int | None = None) -> str:
    kid = keyring.active_id if key_id is None else key_id
    body = _BODY.pack(venue_id, code_version, kid)
    mac = hmac.new(keyring.subkey(PURPOSE, kid), body, sha256).digest()[:_MAC_LEN]
    return b64url_encode(body + mac)


def verify(keyring: Keyring, token: str) -> CodeClaims:
    """Claims of an authentic token; raises InvalidCode (400) otherwise."""
    if len(token) != TOKEN_CHARS:
        raise InvalidCode("this is not a venue code (wrong length)")
    try:
        raw = b64url_decode(token)
    except (ValueError, TypeError):
        raise InvalidCode("this is not a venue code (bad encoding)") from None
    # base64 decoding ignores the low bits of the last character: re-encode to be strict.
    if len(raw) != TOKEN_BYTES or b64url_encode(raw) != token:
        raise InvalidCode("this is not a venue code (bad encoding)")
    body, mac = raw[: _BODY.size], raw[_BODY.size :]
    venue_id, version, kid = _BODY.unpack(body)
    try:
        key = keyring.subkey(PURPOSE, kid)
    except KeyError:
        raise InvalidCode("venue code signed with an unknown key") from None
    if not hmac.compare_digest(hmac.new(key, body, sha256).digest()[:_MAC_LEN], mac):
        raise InvalidCode("venue code signature is invalid (forged or damaged code)")
    return CodeClaims(venue_id=venue_id, code_version=version, key_id=kid)


def checkin_url(public_base_url: str, token: str) -> str:
    return f"{public_base_url.rstrip('/')}/v/{token}"
