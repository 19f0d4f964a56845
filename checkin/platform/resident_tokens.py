"""Signed, expiring resident tokens (no Redis needed to check one).

``r1.`` + base64url(person_id u64 | expires_at u32 (unix s) | key_id u8 | MAC 16 bytes),
MAC = HMAC-SHA256(subkey("resident-token", key_id), first 13 bytes).
"""

from __future__ import annotations

import hmac
import struct
import time
from hashlib import sha256

from checkin.platform.errors import Unauthenticated
from checkin.platform.keyring import Keyring, b64url_decode, b64url_encode

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


def verify_claims(keyring: Keyring, token: str) -> tuple[int, int]:
    """(person id, expires_at) of a well-signed token, expired or not; raises Unauthenticated."""
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
    if not hmac.compare_digest(hmac.digest(key, body, "sha256")[:_MAC_LEN], mac):
        raise Unauthenticated("resident token signature is invalid")
    return int(person_id), int(expires)


def check_expiry(expires: int, now: float | None = None) -> None:
    if expires < (time.time() if now is None else now):
        raise Unauthenticated("resident token has expired; register again to get a new one")


def verify(keyring: Keyring, token: str, now: float | None = None) -> int:
    """Person id of a valid token; raises Unauthenticated otherwise."""
    person_id, expires = verify_claims(keyring, token)
    check_expiry(expires, now)
    return person_id


class VerifiedTokens:
    """Tokens this process has verified: a token's claims depend only on the keyring, so a repeat
    costs a dict lookup instead of base64 and an HMAC (the expiry is still checked every time)."""

    MAX = 100_000

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self.claims: dict[str, tuple[int, int]] = {}

    def verify(self, token: str, now: float | None = None) -> int:
        found = self.claims.get(token)
        if found is None:
            found = verify_claims(self.keyring, token)
            if len(self.claims) >= self.MAX:
                self.claims.clear()
            self.claims[token] = found
        check_expiry(found[1], now)
        return found[0]
