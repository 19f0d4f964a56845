"""Text messages to residents' phones: one-time codes (ingest) and exposure notices (tracing).

``CHECKIN_SMS_GATEWAY`` picks the gateway:

* ``outbox`` (the default): every message is one JSON line appended to
  ``<data dir>/sms-outbox.ndjson`` -- ``{"at", "kind": "otp"|"notice", "phone", "text", "otp"?}`` --
  so ``make run`` and the tests work with no provider and a newcomer reads the codes there. Lines
  are written with one ``write`` in append mode, so several workers never interleave a line.
* an ``http(s)://`` URL: each message is ``POST {"phone", "text"}`` as JSON to that URL (a real
  provider behind it), with a timeout and a few retries; a gateway that stays down is a clear 503.
"""

from __future__ import annotations

import asyncio
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


class OutboxLine(msgspec.Struct, omit_defaults=True):
    at: str
    kind: str
    phone: str
    text: str
    otp: str | None = None


class SmsGateway(Protocol):
    async def send(self, phone: str, text: str, kind: Kind, otp: str | None = None) -> None:
        """Deliver one message; raises :class:`Unavailable` (503) when the gateway cannot."""
        ...

    async def close(self) -> None: ...


@dataclass
class OutboxGateway:
    path: Path

    async def send(self, phone: str, text: str, kind: Kind, otp: str | None = None) -> None:
        line = msgspec.json.encode(OutboxLine(now_rfc3339(), kind, phone, text, otp)) + b"\n"
        try:
            await asyncio.to_thread(self._append, line)
        except OSError as exc:
            raise Unavailable(f"the SMS outbox cannot be written ({exc.strerror}); retry shortly") from exc

    def _append(self, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

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

    async def send(self, phone: str, text: str, kind: Kind, otp: str | None = None) -> None:
        last = ""
        for attempt in range(1, self.attempts + 1):
            try:
                response = await self.client().post(self.url, json={"phone": phone, "text": text})
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            else:
                if response.status_code < 300:
                    return
                last = f"HTTP {response.status_code}"
                if 400 <= response.status_code < 500 and response.status_code != 429:
                    break  # the provider refused this message: sending it again changes nothing
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
