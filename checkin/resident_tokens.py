"""Signed, expiring resident tokens (no Redis needed to check one).

``r1.`` + base64url(person_id u64 | expires_at u32 (unix s) | key_id u8 | MAC 16 bytes),
MAC = HMAC-SHA256(subkey("resident-token", key_id), first 13 bytes).
"""

from __future__ import annotations

import hmac
import struct
import time
from hashlib import sha256

from checkin.errors import Unauthenticated
from checkin.keyring import Keyring, b64url_decode, b64url_encode

PREFIX = "r1."
_BODY = struct.Struct(">QIB")
_MAC_LEN = 16
PURPOSE = "resident-token"


def issue(keyring: Keyring, person_id: int, ttl_s: int, now: float | None = None) -> tuple[str, int]:
    """Return (token, expires_at)."""
    expires = int((time.time() if now is None else now) + ttl_s)
    kid = keyring.active_id
    body = _BODY.pack(person_id, expires, kid)
    mac = hmac.new(keyring.subkey(PURPOSE, kid), body, sha256).digest()[:_MAC_LEN]
    return PREFIX + b64url_encode(body + mac), expires


def verify(keyring: Keyring, token: str, now: float | None = None) -> int:
    """Person id of a valid token; raises Unauthenticated otherwise."""
    if not token.startswith(PREFIX):
        raise Unauthenticated("not a resident token")
    try:
        raw = b64url_decode(token[len(PREFIX) :])
    except (ValueError, TypeError):
        raise Unauthenticated("malformed resident token") from None
    if len(raw) != _BODY.size + _MAC_LEN:
        raise Unauthenticated("malformed resident token")
    body, mac = raw[: _BODY.size], raw[_BODY.size :]
    person_id, expires, kid = _BODY.unpack(body)
    try:
        key = keyring.subkey(PURPOSE, kid)
    except KeyError:
        raise Unauthenticated("resident token signed with an unknown key") from None
    if not hmac.compare_digest(hmac.new(key, body, sha256).digest()[:_MAC_LEN], mac):
        raise Unauthenticated("resident token signature is invalid")
    if expires < (time.time() if now is None else now):
        raise Unauthenticated("resident token has expired; register again to get a new one")
    return int(person_id)
