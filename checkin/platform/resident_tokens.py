"""Resident credentials, signed and checked without Redis: bearer tokens and door passes.

* Bearer token: ``r2.`` + base64url(person_id u64 | expires_at u32 (unix s) | version u32 |
  key_id u8 | MAC 16 bytes), MAC = HMAC-SHA256(subkey("resident-token", key_id), the first 17
  bytes). Tokens of the earlier form ``r1.`` (no version field) read as version 0.
* Door pass: ``p1.`` + base64url(person_id u64 | expires_at u32 | version u32 | key_id u8 | MAC 12
  bytes) with subkey("door-pass"): what the phone shows as a QR for a door scanner, valid 120 s.

The version is the person's token version (``tv`` in their hot state). Revoking bumps it, and every
credential carrying an older version is refused from then on: the way Django's password-reset
tokens stop working when the state they were made from changes, without a deny-list. Spelling is
canonical: the text must be exactly the encoding of its bytes (no junk characters, no padding, no
non-zero padding bits), so one credential has one spelling.
"""

from __future__ import annotations

import hmac
import struct
import time
from dataclasses import dataclass
from hashlib import sha256

from checkin.platform.errors import Unauthenticated
from checkin.platform.keyring import Keyring, b64url_decode, b64url_encode

PREFIX = "r2."
LEGACY_PREFIX = "r1."
PASS_PREFIX = "p1."  # noqa: S105 - a format marker, not a secret
PURPOSE = "resident-token"
PASS_PURPOSE = "door-pass"  # noqa: S105 - a key-derivation label
PASS_TTL_S = 120
_BODY = struct.Struct(">QIIB")
_LEGACY_BODY = struct.Struct(">QIB")
_MAC_LEN = 16
_PASS_MAC_LEN = 12


@dataclass(frozen=True)
class Claims:
    person_id: int
    expires_at: int
    """Unix seconds."""
    version: int


def _mac(keyring: Keyring, purpose: str, kid: int, body: bytes, size: int) -> bytes:
    try:
        key = keyring.subkey(purpose, kid)
    except KeyError:
        raise Unauthenticated("credential signed with an unknown key") from None
    return hmac.digest(key, body, "sha256")[:size]


def _canonical_bytes(text: str, what: str) -> bytes:
    try:
        raw = b64url_decode(text)
    except (ValueError, TypeError):
        raise Unauthenticated(f"malformed {what}") from None
    if b64url_encode(raw) != text:
        raise Unauthenticated(f"malformed {what}")
    return raw


def issue(
    keyring: Keyring, person_id: int, ttl_s: int, version: int = 0, now: float | None = None
) -> tuple[str, int]:
    """Return (token, expires_at)."""
    expires = int((time.time() if now is None else now) + ttl_s)
    kid = keyring.active_id
    body = _BODY.pack(person_id, expires, version, kid)
    mac = hmac.new(keyring.subkey(PURPOSE, kid), body, sha256).digest()[:_MAC_LEN]
    return PREFIX + b64url_encode(body + mac), expires


def verify_claims(keyring: Keyring, token: str) -> Claims:
    """Claims of a well-signed token, expired or not; raises Unauthenticated."""
    if token.startswith(PREFIX):
        raw = _canonical_bytes(token[len(PREFIX) :], "resident token")
        if len(raw) != _BODY.size + _MAC_LEN:
            raise Unauthenticated("malformed resident token")
        body, mac = raw[: _BODY.size], raw[_BODY.size :]
        person_id, expires, version, kid = _BODY.unpack(body)
    elif token.startswith(LEGACY_PREFIX):
        raw = _canonical_bytes(token[len(LEGACY_PREFIX) :], "resident token")
        if len(raw) != _LEGACY_BODY.size + _MAC_LEN:
            raise Unauthenticated("malformed resident token")
        body, mac = raw[: _LEGACY_BODY.size], raw[_LEGACY_BODY.size :]
        person_id, expires, kid = _LEGACY_BODY.unpack(body)
        version = 0
    else:
        raise Unauthenticated("not a resident token")
    if not hmac.compare_digest(_mac(keyring, PURPOSE, kid, body, _MAC_LEN), mac):
        raise Unauthenticated("resident token signature is invalid")
    return Claims(int(person_id), int(expires), int(version))


def check_expiry(expires: int, now: float | None = None) -> None:
    if expires < (time.time() if now is None else now):
        raise Unauthenticated("resident token has expired; register again to get a new one")


def verify(keyring: Keyring, token: str, now: float | None = None) -> Claims:
    """Claims of a valid, unexpired token (its version is checked against Redis by the caller)."""
    claims = verify_claims(keyring, token)
    check_expiry(claims.expires_at, now)
    return claims


class VerifiedTokens:
    """Tokens this process has verified: a token's claims depend only on the keyring, so a repeat
    costs a dict lookup instead of base64 and an HMAC (the expiry is still checked every time)."""

    MAX = 100_000

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self.claims: dict[str, Claims] = {}

    def verify(self, token: str, now: float | None = None) -> Claims:
        found = self.claims.get(token)
        if found is None:
            found = verify_claims(self.keyring, token)
            if len(self.claims) >= self.MAX:
                self.claims.clear()
            self.claims[token] = found
        check_expiry(found.expires_at, now)
        return found


# --- door passes ------------------------------------------------------------------------------------


def issue_pass(keyring: Keyring, person_id: int, version: int, now: float | None = None) -> tuple[str, int]:
    """Return (pass, expires_at) of a door pass valid :data:`PASS_TTL_S` seconds."""
    expires = int((time.time() if now is None else now) + PASS_TTL_S)
    kid = keyring.active_id
    body = _BODY.pack(person_id, expires, version, kid)
    return PASS_PREFIX + b64url_encode(body + _mac(keyring, PASS_PURPOSE, kid, body, _PASS_MAC_LEN)), expires


def verify_pass(keyring: Keyring, text: str, now: float | None = None) -> Claims:
    """Claims of an authentic, unexpired door pass; raises Unauthenticated naming what is wrong."""
    if not text.startswith(PASS_PREFIX):
        if text.startswith((PREFIX, LEGACY_PREFIX)):
            raise Unauthenticated("a bearer token is not a door pass: show the pass from the phone page")
        raise Unauthenticated("not a door pass")
    raw = _canonical_bytes(text[len(PASS_PREFIX) :], "door pass")
    if len(raw) != _BODY.size + _PASS_MAC_LEN:
        raise Unauthenticated("malformed door pass")
    body, mac = raw[: _BODY.size], raw[_BODY.size :]
    person_id, expires, version, kid = _BODY.unpack(body)
    if not hmac.compare_digest(_mac(keyring, PASS_PURPOSE, kid, body, _PASS_MAC_LEN), mac):
        raise Unauthenticated("door pass signature is invalid (forged or damaged)")
    if expires < (time.time() if now is None else now):
        raise Unauthenticated("the door pass has expired; the phone shows a fresh one")
    return Claims(int(person_id), int(expires), int(version))
