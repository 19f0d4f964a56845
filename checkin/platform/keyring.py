"""The keyring: numbered secrets that sign venue codes and resident tokens.

Format (``CHECKIN_KEYRING``): ``id:base64url-secret`` pairs separated by commas,
ids 0..255. The highest id signs; every id verifies, so adding a key rotates
without invalidating printed posters. Each purpose (venue codes, resident
tokens, id-number hashing, phone encryption) uses its own subkey derived with
HMAC-SHA256(secret, purpose), so one secret never serves two uses.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field


class KeyringError(ValueError):
    pass


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class Keyring:
    keys: dict[int, bytes]
    _derived: dict[tuple[int, str], bytes] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> Keyring:
        keys: dict[int, bytes] = {}
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            kid_text, sep, secret = part.partition(":")
            if not sep or not kid_text.isdigit():
                raise KeyringError("expected comma-separated id:secret pairs")
            kid = int(kid_text)
            if kid > 255:
                raise KeyringError(f"key id {kid} is above 255")
            if kid in keys:
                raise KeyringError(f"key id {kid} appears twice")
            try:
                raw = b64url_decode(secret)
            except (ValueError, TypeError):
                raise KeyringError(f"key {kid} is not base64url") from None
            if len(raw) < 16:
                raise KeyringError(f"key {kid} is shorter than 16 bytes")
            keys[kid] = raw
        if not keys:
            raise KeyringError("no keys")
        return cls(keys)

    @staticmethod
    def generate(kid: int = 1) -> str:
        return f"{kid}:{b64url_encode(secrets.token_bytes(32))}"

    def rotated(self) -> Keyring:
        """A keyring with one new signing key (id = highest + 1) and every old key kept."""
        kid = self.active_id + 1
        if kid > 255:
            raise KeyringError("key ids are exhausted (255)")
        return Keyring({**self.keys, kid: secrets.token_bytes(32)})

    def serialize(self) -> str:
        return ",".join(f"{kid}:{b64url_encode(raw)}" for kid, raw in sorted(self.keys.items()))

    @property
    def active_id(self) -> int:
        return max(self.keys)

    def subkey(self, purpose: str, kid: int | None = None) -> bytes:
        """Key for one purpose; raises KeyError for an unknown key id."""
        kid = self.active_id if kid is None else kid
        cached = self._derived.get((kid, purpose))
        if cached is None:
            cached = hmac.new(self.keys[kid], purpose.encode(), hashlib.sha256).digest()
            self._derived[(kid, purpose)] = cached
        return cached
