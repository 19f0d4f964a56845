"""The notice texts outbox: every notice's text reaches the SMS gateway at least once, and the gateway
delivers it once (docs/ARCHITECTURE.md, "Notices to residents").

* **Written with the notice.** :func:`enqueue` adds one entry per text to the stream
  ``notices:{q}:texts`` (fields ``p`` the recipient, ``n`` the notice as JSON) *before* the notice is
  stored: a worker that dies in between finds the notice still missing when the site is screened
  again and writes both again; the gateway drops the second text by its key. The entry carries the
  whole notice, so it is sent whatever happens to the stored copy; the phone is looked up (and
  decrypted) only when the text is sent, never written to Redis in clear.
* **Sent, then acknowledged.** :class:`TextSender` reads the stream in consumer group ``texts``,
  hands each text to the gateway with the idempotency key ``<notice id>:<recipient>``, and only
  then acknowledges (and deletes) the entry. An entry whose worker died before that, or whose send
  failed (a gateway down), stays pending and is taken over once it has been idle for
  ``CHECKIN_SINK_CLAIM_IDLE_MS`` (the pending-entry timeout every consumer group of the service
  uses), by any notices worker, which sends it again: at least once, with the same key, so the
  provider (or the outbox file) delivers it once. A text the provider refuses for good (a 4xx) is
  acknowledged and counted as ``refused``; a recipient without a phone on record is skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from checkin.platform import persons
from checkin.platform.context import Context
from checkin.platform.errors import Unavailable
from checkin.platform.notices import Notice
from checkin.platform.redis_conn import async_client
from checkin.platform.redis_keys import TEXTS_GROUP
from checkin.platform.sms import GatewayRefused, SmsGateway
from tracing.notices import template
from tracing.streams.group import Entry, GroupReader, consumer_name, fields_of

log = logging.getLogger("tracing.notices")

TEXTS = "notice_texts_total"
SMS_IN_FLIGHT = 16
"""Texts handed to the gateway at once."""
READ_COUNT = 256
CHUNK = 2_000

_notice = msgspec.json.Decoder(Notice)


def idempotency_key(notice_id: str, recipient: int) -> str:
    """One text's key at the gateway: a site's notice id is shared by everyone it told."""
    return f"{notice_id}:{recipient}"


async def enqueue(ctx: Context, notices: Sequence[tuple[int, Notice]]) -> None:
    """One outbox entry per (recipient, notice); written before the notices themselves."""
    stream = ctx.keys.notice_texts()
    for start in range(0, len(notices), CHUNK):
        pipe = ctx.redis.pipeline(transaction=False)
        for pid, notice in notices[start : start + CHUNK]:
            pipe.xadd(stream, {"p": str(pid), "n": msgspec.json.encode(notice)})
        await pipe.execute()


@dataclass
class Sent:
    sent: int = 0
    duplicate: int = 0
    """Texts the gateway had already (a send repeated after a crash): not delivered again."""
    failed: int = 0
    """Left pending: sent again once idle."""
    refused: int = 0
    skipped: int = 0
    """No phone on record, or an entry that cannot be read."""

    def add(self, other: Sent) -> None:
        for name in ("sent", "duplicate", "failed", "refused", "skipped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


class TextSender:
    def __init__(self, ctx: Context, gateway: SmsGateway) -> None:
        self.ctx = ctx
        self.gateway = gateway
        self.reader = GroupReader(
            async_client(ctx.settings),
            [ctx.keys.notice_texts()],
            TEXTS_GROUP,
            consumer_name("texts"),
            cluster=ctx.keys.cluster,
        )
        self._ready = False

    async def ensure(self) -> None:
        await self.reader.ensure()
        self._ready = True

    async def close(self) -> None:
        await self.reader.close()

    async def drain(self, take_over: bool = False) -> Sent:
        """Send every new text (and, with ``take_over``, the texts left idle by a dead or failed
        send); returns what happened to them."""
        total = Sent()
        if not self._ready:
            await self.ensure()
        if take_over:
            for _, entries in await self.reader.claim_idle(self.ctx.settings.sink_claim_idle_ms):
                total.add(await self._send(entries))
        while True:
            batches = await self.reader.read(READ_COUNT)
            entries = [e for _, found in batches for e in found]
            if not entries:
                break
            total.add(await self._send(entries))
        return total

    async def _send(self, entries: Sequence[Entry]) -> Sent:
        out = Sent()
        todo: list[tuple[bytes, int, Notice]] = []
        done: list[bytes] = []
        for entry in entries:
            entry_id, fields = bytes(entry[0]), fields_of(entry[1])
            try:
                todo.append((entry_id, int(fields[b"p"]), _notice.decode(fields[b"n"])))
            except (KeyError, ValueError, msgspec.DecodeError):
                log.warning("notice text entry %s cannot be read; dropped", entry_id.decode())
                out.skipped += 1
                done.append(entry_id)
        recipients = sorted({pid for _, pid, _ in todo})
        phones = await persons.phones_of(self.ctx, recipients)
        langs = await template.languages_of(self.ctx, list(phones))
        tz, base = self.ctx.settings.tz, self.ctx.settings.public_base_url
        gate = asyncio.Semaphore(SMS_IN_FLIGHT)

        async def one(entry_id: bytes, pid: int, notice: Notice) -> None:
            phone = phones.get(pid)
            if not phone:
                out.skipped += 1
                done.append(entry_id)
                return
            text = template.sms_text(notice, tz, base, langs.get(pid, "zh"))
            async with gate:
                try:
                    new = await self.gateway.send(
                        phone,
                        text,
                        "notice",
                        key=idempotency_key(notice.notice_id, pid),
                        notice_id=notice.notice_id,
                    )
                except GatewayRefused as exc:
                    log.warning("a notice text was refused by the gateway: %s", exc.detail)
                    out.refused += 1
                except Unavailable as exc:
                    log.warning("a notice text could not be sent (sent again later): %s", exc.detail)
                    out.failed += 1
                    return
                else:
                    if new:
                        out.sent += 1
                    else:
                        out.duplicate += 1
            done.append(entry_id)

        await asyncio.gather(*(one(*item) for item in todo))
        if done:
            # Deleted first: a worker that dies between the two leaves pending ids of deleted entries,
            # which the next take-over drops (XAUTOCLAIM); acknowledged first, it would leave entries
            # no one reads again in the stream for good.
            await self.ctx.redis.xdel(self.ctx.keys.notice_texts(), *done)
            await self.reader.ack({0: done})
        for outcome in ("sent", "duplicate", "failed", "refused"):
            if getattr(out, outcome):
                self.ctx.metrics.inc(TEXTS, getattr(out, outcome), outcome=outcome)
        return out
