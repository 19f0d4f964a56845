"""Notices for the visitors of one exposure site: stored for the phone page, texted to the phone on
record (through the outbox, :mod:`tracing.notices.texts`), and for level ``isolate`` with
``CHECKIN_EXPOSURE_ISOLATE_YELLOW`` a yellow colour.

A person is told once per site (the notice's id is the site's); a text goes only with a notice that
is new, so telling the same visitors twice (a re-screen, a later visit, a restarted worker) sends
nothing twice. A visitor who is someone's dependant (a confirmed guardian link: the guardian may
check them in) is also told to each guardian: a copy in the guardian's notices naming the dependant
(masked), with its own text to the guardian's phone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from checkin.platform import notices, persons
from checkin.platform.context import Context
from checkin.platform.instants import format_ms
from checkin.platform.notices import Level, Notice
from tracing.notices import texts

log = logging.getLogger("tracing.notices")

NOTICES = "notices_created_total"
TEXTS = texts.TEXTS


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
    """Notices that were new (guardians' copies included)."""
    family: int = 0
    """Of those, copies to guardians about their dependants."""
    texted: int = 0
    text_failures: int = 0
    turned_yellow: int = 0


def declare_metrics(ctx: Context) -> None:
    ctx.metrics.counter(NOTICES, "Exposure notices written, by source (flag, visit)")
    ctx.metrics.counter(TEXTS, "Exposure notice text messages, by outcome (sent, duplicate, failed, refused)")


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


def family_copy(notice: Notice, dependant: int, name_masked: str) -> Notice:
    """A guardian's copy of a dependant's notice: its own id, naming the dependant."""
    return msgspec.structs.replace(
        notice,
        notice_id=notices.copy_id(notice.notice_id, dependant),
        for_person_id=dependant,
        for_name_masked=name_masked,
    )


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
    site: SiteFacts,
    visitors: Sequence[tuple[int, int]],
    now_ms: int,
    source: str,
) -> Told:
    """Tell these visitors (person id, start of their first stay in the window) about the site, and
    each dependant's guardians about them. Texts are queued in the outbox (before the notices are
    stored); the caller sends them (:meth:`texts.TextSender.drain`)."""
    told = Told(visitors=len(visitors))
    if not visitors:
        return told
    own = [(pid, notice_of(site, at, now_ms)) for pid, at in visitors]
    guardians = await notices.guardians_of(ctx, [pid for pid, _ in own])
    names = await persons.masked_names(ctx, list(guardians)) if guardians else {}
    copies = [
        (guardian, family_copy(notice, pid, names.get(pid, "*")))
        for pid, notice in own
        for guardian in guardians.get(pid, ())
    ]
    new = await notices.missing(ctx, own + copies)
    if not new:
        return told
    await texts.enqueue(ctx, new)
    created = await notices.write_many(ctx, new)
    told.notified = len(created)
    told.family = sum(1 for _, n in new if n.for_person_id is not None)
    if created:
        ctx.metrics.inc(NOTICES, len(created), source=source)
    if site.level == "isolate" and ctx.settings.exposure_isolate_yellow:
        exposed = sorted({pid for pid, n in new if n.for_person_id is None})
        told.turned_yellow = await _turn_yellow(ctx, exposed, now_ms)
    return told
