"""Notices for the visitors of one exposure site: stored for the phone page, texted to the phone on
record, and for level ``isolate`` with ``CHECKIN_EXPOSURE_ISOLATE_YELLOW`` a yellow colour.

A person is told once per site (the notice's id is the site's); a text goes only with a notice that
is new, so telling the same visitors twice (a re-screen, a later visit, a restarted worker) sends
nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from checkin.platform import notices, persons
from checkin.platform.context import Context
from checkin.platform.errors import Unavailable
from checkin.platform.instants import format_ms
from checkin.platform.notices import Level, Notice
from checkin.platform.sms import SmsGateway
from tracing.notices import template

log = logging.getLogger("tracing.notices")

SMS_IN_FLIGHT = 16
"""Messages sent at once through an HTTP gateway."""
NOTICES = "notices_created_total"
TEXTS = "notice_texts_total"


@dataclass(frozen=True)
class SiteFacts:
    site_id: str
    venue_id: int
    venue_name: str
    since_ms: int
    until_ms: int
    level: Level
    message: str


@dataclass
class Told:
    visitors: int = 0
    notified: int = 0
    """Notices that were new."""
    texted: int = 0
    text_failures: int = 0
    turned_yellow: int = 0


def declare_metrics(ctx: Context) -> None:
    ctx.metrics.counter(NOTICES, "Exposure notices written, by source (flag, visit)")
    ctx.metrics.counter(TEXTS, "Exposure notice text messages, by outcome (sent, failed)")


def notice_of(site: SiteFacts, visited_ms: int, now_ms: int) -> Notice:
    return Notice(
        notice_id=site.site_id,
        venue_id=site.venue_id,
        venue_name=site.venue_name,
        since=format_ms(site.since_ms),
        until=format_ms(site.until_ms),
        level=site.level,
        message=site.message,
        visited_at=format_ms(visited_ms),
        at=format_ms(now_ms),
    )


async def _text_all(ctx: Context, gateway: SmsGateway, texts: Sequence[tuple[str, str]], told: Told) -> None:
    gate = asyncio.Semaphore(SMS_IN_FLIGHT)

    async def one(phone: str, text: str) -> None:
        async with gate:
            try:
                await gateway.send(phone, text, "notice")
            except Unavailable as exc:
                told.text_failures += 1
                log.warning("a notice text could not be sent: %s", exc.detail)
            else:
                told.texted += 1

    await asyncio.gather(*(one(phone, text) for phone, text in texts))
    ctx.metrics.inc(TEXTS, told.texted, outcome="sent")
    if told.text_failures:
        ctx.metrics.inc(TEXTS, told.text_failures, outcome="failed")


async def _turn_yellow(ctx: Context, person_ids: Sequence[int], now_ms: int) -> int:
    """Green (or unknown) persons become yellow with reason ``exposure``; red stay red."""
    pipe = ctx.redis.pipeline(transaction=False)
    for pid in person_ids:
        pipe.hget(ctx.keys.pstate(pid, 0), "st")
    current = await pipe.execute() if person_ids else []
    turned = 0
    for pid, st in zip(person_ids, current, strict=True):
        if st in (None, b"green"):
            await persons.set_hot_state(ctx, pid, {"st": "yellow", "sr": "exposure", "su": str(now_ms)})
            turned += 1
    return turned


async def tell(
    ctx: Context,
    gateway: SmsGateway,
    site: SiteFacts,
    visitors: Sequence[tuple[int, int]],
    now_ms: int,
    source: str,
) -> Told:
    """Tell these visitors (person id, start of their first stay in the window) about the site."""
    told = Told(visitors=len(visitors))
    if not visitors:
        return told
    created = await notices.write_many(ctx, [(pid, notice_of(site, at, now_ms)) for pid, at in visitors])
    told.notified = len(created)
    if not created:
        return told
    ctx.metrics.inc(NOTICES, len(created), source=source)
    if site.level == "isolate" and ctx.settings.exposure_isolate_yellow:
        told.turned_yellow = await _turn_yellow(ctx, created, now_ms)
    first = dict(visitors)
    phones = await persons.phones_of(ctx, created)
    langs = await template.languages_of(ctx, list(phones))
    tz, base = ctx.settings.tz, ctx.settings.public_base_url
    texts = [
        (phone, template.sms_text(notice_of(site, first[pid], now_ms), tz, base, langs[pid]))
        for pid, phone in phones.items()
    ]
    await _text_all(ctx, gateway, texts, told)
    return told
