"""Exposure notices: what a resident is told after being at an exposure site (docs/ARCHITECTURE.md,
"Notices to residents").

One hash per person (``person:<id>:notices``), field = the notice's id, so a person gets one
notice per site however often they were there, and writing it twice (a flag and a later visit, or a
worker restarted half way) changes nothing. The tracing service writes notices (and texts them:
``tracing.notices.template``); the ingest API reads and acknowledges them for the resident.

A person's own notice has the exposure site's id. A dependant's notice goes to each of their
guardians too (the persons who may check them in, confirmed links): the guardian's copy has the id
``<site id>-<dependant's person id>`` and names the dependant (``for_person_id``,
``for_name_masked``); acknowledging it marks the dependant's own notice read as well
(``acked_by`` = the guardian), since the guardian answers for them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import msgspec

from checkin.platform.context import Context
from checkin.platform.errors import BadInput, NotFound
from checkin.platform.instants import format_ms

Level = Literal["inform", "test", "isolate"]
NOTICE_ID_RE = r"^[0-9a-f]{18}(-[1-9][0-9]{0,19})?$"
"""A site's id, or a guardian's copy of a dependant's notice (``<site id>-<dependant>``)."""
CHUNK = 2_000
"""Persons per pipeline when a flag tells thousands at once."""


class Notice(msgspec.Struct, kw_only=True, omit_defaults=True):
    notice_id: str
    """The exposure site's id."""
    venue_id: int
    venue_name: str
    since: str
    until: str
    """The exposure window at the venue (RFC 3339)."""
    level: Level
    message: str = ""
    """The tracer's words, beside the level's standard advice."""
    visited_at: str
    """When the person's stay there began (the first one inside the window)."""
    at: str
    """When the notice was made."""
    acked_at: str | None = None
    for_person_id: int | None = None
    """A guardian's copy: the dependant the notice is about (absent: the reader themselves)."""
    for_name_masked: str | None = None
    """The dependant's masked name (张*)."""
    acked_by: int | None = None
    """Set when a guardian acknowledged the notice for this person."""


class NoticeList(msgspec.Struct):
    notices: list[Notice]
    """Unread first, then newest first."""
    unread: int


_decode = msgspec.json.Decoder(Notice)


async def write_many(ctx: Context, notices: Sequence[tuple[int, Notice]]) -> list[int]:
    """Store these notices (person id, notice); the persons whose notice is new (not yet told)."""
    ttl = ctx.settings.retention_days * 86_400
    created: list[int] = []
    for start in range(0, len(notices), CHUNK):
        chunk = notices[start : start + CHUNK]
        pipe = ctx.redis.pipeline(transaction=False)
        for pid, notice in chunk:
            key = ctx.keys.notices(pid)
            pipe.hsetnx(key, notice.notice_id, msgspec.json.encode(notice))
            pipe.expire(key, ttl)
        replies = await pipe.execute()
        created += [pid for (pid, _), new in zip(chunk, replies[::2], strict=True) if new]
    return created


async def read(ctx: Context, person_id: int) -> NoticeList:
    raw: dict[bytes, bytes] = await ctx.redis.hgetall(ctx.keys.notices(person_id))
    found = [_decode.decode(v) for v in raw.values()]
    found.sort(key=lambda n: n.at, reverse=True)
    found.sort(key=lambda n: n.acked_at is not None)
    return NoticeList(notices=found, unread=sum(n.acked_at is None for n in found))


def copy_id(site_id: str, dependant: int) -> str:
    """The id of a guardian's copy of a dependant's notice."""
    return f"{site_id}-{dependant}"


async def guardians_of(ctx: Context, person_ids: Sequence[int]) -> dict[int, list[int]]:
    """Each person's confirmed guardians (links still waiting for the person's confirmation are left
    out: that guardian may not check them in, and is not told about them either)."""
    ids = list(dict.fromkeys(person_ids))
    if not ids:
        return {}
    out: dict[int, list[int]] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        pipe = ctx.redis.pipeline(transaction=False)
        for pid in chunk:
            pipe.smembers(ctx.keys.guardians(pid))
            pipe.smembers(ctx.keys.pending_guardians(pid))
        replies = await pipe.execute()
        for n, pid in enumerate(chunk):
            confirmed = {int(g) for g in replies[2 * n]} - {int(g) for g in replies[2 * n + 1]}
            if confirmed:
                out[pid] = sorted(confirmed)
    return out


async def missing(ctx: Context, notices: Sequence[tuple[int, Notice]]) -> list[tuple[int, Notice]]:
    """The notices (person id, notice) not yet stored: the ones whose person is still to be told."""
    out: list[tuple[int, Notice]] = []
    for start in range(0, len(notices), CHUNK):
        chunk = notices[start : start + CHUNK]
        pipe = ctx.redis.pipeline(transaction=False)
        for pid, notice in chunk:
            pipe.hexists(ctx.keys.notices(pid), notice.notice_id)
        out += [item for item, there in zip(chunk, await pipe.execute(), strict=True) if not there]
    return out


async def acknowledge(ctx: Context, person_id: int, notice_id: str, now_ms: int) -> Notice:
    """Mark a notice read (once; acking again answers the first ack). 404 for anyone else's. A
    guardian's copy marks the dependant's own notice read too."""
    if not re.fullmatch(NOTICE_ID_RE, notice_id):
        raise BadInput(
            f"notice_id: expected 18 lowercase hex digits (and -<person id> for a family member's), "
            f"got {notice_id[:40]!r}"
        )
    key = ctx.keys.notices(person_id)
    raw = await ctx.redis.hget(key, notice_id)
    if raw is None:
        raise NotFound(f"no notice {notice_id} of yours")
    notice = _decode.decode(raw)
    if notice.acked_at is None:
        notice.acked_at = format_ms(now_ms)
        await ctx.redis.hset(key, notice_id, msgspec.json.encode(notice))
    if notice.for_person_id is not None:
        site_id = notice_id.split("-", 1)[0]
        theirs_key = ctx.keys.notices(notice.for_person_id)
        theirs = await ctx.redis.hget(theirs_key, site_id)
        if theirs is not None:
            own = _decode.decode(theirs)
            if own.acked_at is None:
                own.acked_at, own.acked_by = notice.acked_at, person_id
                await ctx.redis.hset(theirs_key, site_id, msgspec.json.encode(own))
    return notice
