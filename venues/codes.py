"""Signed venue codes: the token a venue's QR code carries.

* A printed poster's code: base64url (no padding) of ``venue_id u32 | code_version u16 | key_id u8
  | MAC 12 bytes``, MAC = HMAC-SHA256(subkey("venue-code", key_id), the first 7 bytes) truncated:
  19 bytes, 26 characters, so the URL fits a version-4 QR code.
* A screen's rotating code (a venue whose ``code_mode`` is ``rotating``): ``venue_id u32 |
  code_version u16 | key_id u8 | step u32 | MAC 12`` with subkey("venue-code-rotating"): 23 bytes,
  31 characters. ``step`` = unix seconds // ``CHECKIN_ROTATING_STEP_S``: the code of the current step
  and of the one before are accepted, an older one is refused with 410 ``code_expired`` (like a TOTP
  with a window of one step back), so a photo of the screen is useless a minute later.

Verification needs no Redis call; whether the version is current, the venue active and its code
mode the code's kind is checked against the registry by the check-in script.

A first-time visitor at a screen registers before checking in, which takes longer than a code lives.
When the phone page is served for a screen code that is still current, it carries a **seen proof**:
``key_id.instant_ms.MAC`` with MAC = HMAC-SHA256(subkey("venue-code-seen"), token | instant)
truncated to 12 bytes. The check-in takes an expired screen code with a proof of that code no older
than ``CHECKIN_ROTATING_REGISTER_S`` (300), and records the scan at the proof's instant, which lies in
the code's own time step or the next, as for any screen code. The proof is made only by the server,
only while the code is current: a photo of the screen opened later gets the 410 page and no proof,
and a proof ends 300 s after the code was seen, so a code still dies within minutes.
"""

from __future__ import annotations

import hmac
import struct
import time
from hashlib import sha256
from typing import Literal

import msgspec

from checkin.platform.errors import BadInput, Gone, Unprocessable
from checkin.platform.keyring import Keyring, b64url_decode, b64url_encode

PURPOSE = "venue-code"
ROTATING_PURPOSE = "venue-code-rotating"
SEEN_PURPOSE = "venue-code-seen"
_BODY = struct.Struct(">IHB")
_ROTATING_BODY = struct.Struct(">IHBI")
_MAC_LEN = 12
TOKEN_BYTES = _BODY.size + _MAC_LEN
TOKEN_CHARS = 26
ROTATING_TOKEN_BYTES = _ROTATING_BODY.size + _MAC_LEN
ROTATING_TOKEN_CHARS = 31
TOKEN_PATTERN = f"^(?:[A-Za-z0-9_-]{{{TOKEN_CHARS}}}|[A-Za-z0-9_-]{{{ROTATING_TOKEN_CHARS}}})$"
"""What a venue code looks like (base64url of a poster's or a screen's code); whether this service
signed it no pattern can tell."""

Kind = Literal["s", "r"]
"""``s`` a printed poster's code, ``r`` a screen's rotating code."""


class InvalidCode(BadInput):
    """A token that was not issued by us (tampered, truncated, unknown key)."""


class CodeClaims(msgspec.Struct, frozen=True):
    venue_id: int
    code_version: int
    key_id: int
    kind: Kind = "s"
    step: int = 0
    """The time step of a rotating code (0 for a poster's)."""


def sign(keyring: Keyring, venue_id: int, code_version: int, key_id: int | None = None) -> str:
    kid = keyring.active_id if key_id is None else key_id
    body = _BODY.pack(venue_id, code_version, kid)
    mac = hmac.new(keyring.subkey(PURPOSE, kid), body, sha256).digest()[:_MAC_LEN]
    return b64url_encode(body + mac)


def current_step(step_s: int, now_s: float | None = None) -> int:
    return int((time.time() if now_s is None else now_s) // step_s)


def sign_rotating(keyring: Keyring, venue_id: int, code_version: int, step: int) -> str:
    kid = keyring.active_id
    body = _ROTATING_BODY.pack(venue_id, code_version, kid, step)
    mac = hmac.new(keyring.subkey(ROTATING_PURPOSE, kid), body, sha256).digest()[:_MAC_LEN]
    return b64url_encode(body + mac)


def verify(keyring: Keyring, token: str) -> CodeClaims:
    """Claims of an authentic token, either kind; raises InvalidCode (400) otherwise. A rotating
    code's step is not judged here: see :func:`check_step`."""
    if len(token) not in (TOKEN_CHARS, ROTATING_TOKEN_CHARS):
        raise InvalidCode("this is not a venue code (wrong length)")
    try:
        raw = b64url_decode(token)
    except (ValueError, TypeError):
        raise InvalidCode("this is not a venue code (bad encoding)") from None
    # base64 decoding ignores the low bits of the last character: re-encode to be strict.
    if b64url_encode(raw) != token:
        raise InvalidCode("this is not a venue code (bad encoding)")
    if len(raw) == TOKEN_BYTES:
        body, mac = raw[: _BODY.size], raw[_BODY.size :]
        venue_id, version, kid = _BODY.unpack(body)
        purpose, step = PURPOSE, 0
        kind: Kind = "s"
    elif len(raw) == ROTATING_TOKEN_BYTES:
        body, mac = raw[: _ROTATING_BODY.size], raw[_ROTATING_BODY.size :]
        venue_id, version, kid, step = _ROTATING_BODY.unpack(body)
        purpose, kind = ROTATING_PURPOSE, "r"
    else:
        raise InvalidCode("this is not a venue code (bad encoding)")
    try:
        key = keyring.subkey(purpose, kid)
    except KeyError:
        raise InvalidCode("venue code signed with an unknown key") from None
    if not hmac.compare_digest(hmac.new(key, body, sha256).digest()[:_MAC_LEN], mac):
        raise InvalidCode("venue code signature is invalid (forged or damaged code)")
    return CodeClaims(venue_id=venue_id, code_version=version, key_id=kid, kind=kind, step=step)


VERIFIED_MAX = 65_536
"""Signatures :func:`verify_scanned` remembers in the mapping it is given, at most."""


def verify_scanned(
    keyring: Keyring,
    token: str,
    step_s: int,
    *,
    seen: bool = False,
    verified: dict[str, CodeClaims] | None = None,
) -> CodeClaims:
    """The claims of a scanned venue code: its signature (400 :class:`InvalidCode`), and for a screen's
    code its time step, the current one or the one before (410 :class:`CodeExpired`), unless the phone
    page proved it saw the code current (``seen``). ``verified`` remembers checked signatures (a code's
    claims depend only on the keyring), at most :data:`VERIFIED_MAX`. The code version and the venue's
    state are the caller's to check against the registry (:func:`venues.scanned_code.check_code`, or
    the check-in script)."""
    claims = None if verified is None else verified.get(token)
    if claims is None:
        claims = verify(keyring, token)
        if verified is not None:
            if len(verified) >= VERIFIED_MAX:
                verified.clear()
            verified[token] = claims
    if not seen:
        check_step(claims, step_s)
    return claims


class CodeExpired(Gone):
    """A screen's code from more than one step ago (a photo of the screen, or a stale page)."""


def check_step(claims: CodeClaims, step_s: int, now_s: float | None = None) -> None:
    """Refuse a rotating code older than the step before the current one (410 ``code_expired``)."""
    if claims.kind != "r":
        return
    now_step = current_step(step_s, now_s)
    if not now_step - 1 <= claims.step <= now_step:
        raise CodeExpired(
            "this code from the venue's screen has expired: scan the code on the screen again "
            "(请重新扫描屏幕上的场所码)",
            reason="code_expired",
        )


def check_scanned_at(claims: CodeClaims, step_s: int, scanned_at_ms: int) -> None:
    """A screen's code proves presence during its own time step: the scan instant must lie in that
    step or the one after it (a slow network), else 422 ``scanned_at_outside_code``. A printed
    poster's code carries no time, so its scans may be backdated within the offline window."""
    if claims.kind != "r":
        return
    step = int((scanned_at_ms / 1000) // step_s)
    if not claims.step <= step <= claims.step + 1:
        raise Unprocessable(
            "scanned_at lies outside the time of this screen code: a code from the venue's screen "
            "counts only when it was scanned (请重新扫描屏幕上的场所码)",
            reason="scanned_at_outside_code",
        )


def checkin_url(public_base_url: str, token: str) -> str:
    return f"{public_base_url.rstrip('/')}/v/{token}"


def _seen_mac(keyring: Keyring, kid: int, token: str, at_ms: int) -> str:
    mac = hmac.new(keyring.subkey(SEEN_PURPOSE, kid), f"{token}|{at_ms}".encode(), sha256).digest()
    return b64url_encode(mac[:_MAC_LEN])


def sign_seen(keyring: Keyring, token: str, at_ms: int) -> str:
    """The proof that the server saw ``token`` current at ``at_ms`` (made when it serves the page)."""
    kid = keyring.active_id
    return f"{kid}.{at_ms}.{_seen_mac(keyring, kid, token, at_ms)}"


def verify_seen(keyring: Keyring, token: str, proof: str, now_ms: int, max_age_s: int) -> int | None:
    """The instant a valid proof of ``token`` names, or None (forged, of another code, from the
    future, or older than ``max_age_s``)."""
    kid_text, _, rest = proof.partition(".")
    at_text, _, mac = rest.partition(".")
    if not (kid_text.isdigit() and at_text.isdigit() and mac) or len(kid_text) > 3 or len(at_text) > 15:
        return None
    kid, at_ms = int(kid_text), int(at_text)
    try:
        expected = _seen_mac(keyring, kid, token, at_ms)
    except KeyError:
        return None
    if not hmac.compare_digest(expected, mac):
        return None
    if not now_ms - max_age_s * 1000 <= at_ms <= now_ms + 5_000:
        return None
    return at_ms
