"""Text messages to residents' phones: one-time codes (ingest) and exposure notices (tracing).

``CHECKIN_SMS_GATEWAY`` picks the gateway:

* ``outbox`` (the default): every message is one JSON line appended to
  ``<data dir>/sms-outbox.ndjson`` -- ``{"at", "kind": "otp"|"notice", "phone", "text", "otp"?,
  "notice_id"?, "idempotency_key"?}`` -- so ``make run`` and the tests work with no provider and a
  newcomer reads the codes there. Lines are written with one ``write`` in append mode, so several
  workers never interleave a line.
* an ``http(s)://`` URL: each message is ``POST {"phone", "text"}`` as JSON to that URL (a real
  provider behind it), with a timeout and a few retries; a gateway that stays down is a clear 503.

A notice's text is sent at least once (the tracing service's outbox in Redis sends it again when a
worker died before it could acknowledge the send), so it carries an idempotency key: the notice's id
and its recipient (``<notice id>:<person id>``). The HTTP gateway sends it as the
``Idempotency-Key`` header, for the provider to deliver one text per key; the outbox gateway is that
provider for ``make run`` and the tests: it writes no second line for a key it has written (the
keys of the file are read under an exclusive lock, ``flock``, shared with every process that writes
notices, so two processes cannot both write one).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import httpx
import msgspec

from checkin.platform.errors import Unavailable
from checkin.platform.instants import now_rfc3339
from checkin.platform.settings import Settings

Kind = Literal["otp", "notice"]
OUTBOX_FILE = "sms-outbox.ndjson"
HTTP_TIMEOUT_S = 5.0
HTTP_ATTEMPTS = 3
HTTP_RETRY_DELAY_S = 0.2


IDEMPOTENCY_HEADER = "Idempotency-Key"


class OutboxLine(msgspec.Struct, omit_defaults=True):
    at: str
    kind: str
    phone: str
    text: str
    otp: str | None = None
    notice_id: str | None = None
    idempotency_key: str | None = None


class _KeyOnly(msgspec.Struct):
    idempotency_key: str | None = None


_key_of = msgspec.json.Decoder(_KeyOnly)


class GatewayRefused(Unavailable):
    """The provider refused this message (a 4xx other than 429): sending it again changes nothing."""


class SmsGateway(Protocol):
    async def send(
        self,
        phone: str,
        text: str,
        kind: Kind,
        otp: str | None = None,
        key: str | None = None,
        notice_id: str | None = None,
    ) -> bool:
        """Deliver one message; True when it went out, False when the gateway had one with this
        idempotency ``key`` already (nothing sent again). Raises :class:`Unavailable` (503) when the
        gateway cannot, :class:`GatewayRefused` when it refuses the message for good."""
        ...

    async def close(self) -> None: ...


@dataclass
class OutboxGateway:
    path: Path
    _keys: set[str] = field(default_factory=set, repr=False)
    _read_to: int = field(default=0, repr=False)
    """How far the file's keys have been read into :attr:`_keys` (the file only grows)."""

    async def send(
        self,
        phone: str,
        text: str,
        kind: Kind,
        otp: str | None = None,
        key: str | None = None,
        notice_id: str | None = None,
    ) -> bool:
        line = msgspec.json.encode(OutboxLine(now_rfc3339(), kind, phone, text, otp, notice_id, key)) + b"\n"
        try:
            return await asyncio.to_thread(self._append, line, key)
        except OSError as exc:
            raise Unavailable(f"the SMS outbox cannot be written ({exc.strerror}); retry shortly") from exc

    def _append(self, line: bytes, key: str | None) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            if key is None:
                os.write(fd, line)
                return True
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._read_keys(fd)
            if key in self._keys:
                return False
            os.write(fd, line)
            self._keys.add(key)
            return True
        finally:
            os.close(fd)  # and the lock with it

    def _read_keys(self, fd: int) -> None:
        """Add the keys of the lines written since the last look (by any process) to :attr:`_keys`."""
        size = os.fstat(fd).st_size
        if size < self._read_to:  # the file was replaced: read it again from the start
            self._keys.clear()
            self._read_to = 0
        while self._read_to < size:
            chunk = os.pread(fd, min(size - self._read_to, 1 << 20), self._read_to)
            if not chunk:
                break
            end = chunk.rfind(b"\n")
            if end < 0:
                if len(chunk) < (1 << 20):
                    break  # a line still being written by a process that holds no lock (a code)
                end = len(chunk) - 1
            for raw in chunk[: end + 1].splitlines():
                if b'"idempotency_key"' in raw:
                    try:
                        found = _key_of.decode(raw).idempotency_key
                    except msgspec.DecodeError:
                        continue
                    if found:
                        self._keys.add(found)
            self._read_to += end + 1

    async def close(self) -> None:
        return None


@dataclass
class HttpGateway:
    url: str
    timeout_s: float = HTTP_TIMEOUT_S
    attempts: int = HTTP_ATTEMPTS
    _client: httpx.AsyncClient | None = field(default=None, repr=False)

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
        return self._client

    async def send(
        self,
        phone: str,
        text: str,
        kind: Kind,
        otp: str | None = None,
        key: str | None = None,
        notice_id: str | None = None,
    ) -> bool:
        last = ""
        headers = {IDEMPOTENCY_HEADER: key} if key else None
        for attempt in range(1, self.attempts + 1):
            try:
                response = await self.client().post(
                    self.url, json={"phone": phone, "text": text}, headers=headers
                )
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            else:
                if response.status_code < 300:
                    return True
                last = f"HTTP {response.status_code}"
                if 400 <= response.status_code < 500 and response.status_code != 429:
                    # the provider refused this message: sending it again changes nothing
                    raise GatewayRefused(f"the SMS gateway refused the message ({last})")
            if attempt < self.attempts:
                await asyncio.sleep(HTTP_RETRY_DELAY_S * attempt)
        raise Unavailable(f"the SMS gateway is unavailable ({last}); try again shortly", retry_after=30)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def outbox_path(settings: Settings) -> Path:
    return settings.data_path / OUTBOX_FILE


def gateway_for(settings: Settings) -> SmsGateway:
    if settings.sms_gateway == "outbox":
        return OutboxGateway(outbox_path(settings))
    return HttpGateway(settings.sms_gateway)
