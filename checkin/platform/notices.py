"""Exposure notices: what a resident is told after being at an exposure site (docs/ARCHITECTURE.md,
"Notices to residents").

One hash per person (``person:<id>:notices``), field = the exposure site's id, so a person gets one
notice per site however often they were there, and writing it twice (a flag and a later visit, or a
worker restarted half way) changes nothing. The tracing service writes notices (and texts them:
``tracing.notices.template``); the ingest API reads and acknowledges them for the resident.
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
NOTICE_ID_RE = r"^[0-9a-f]{18}$"
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


async def acknowledge(ctx: Context, person_id: int, notice_id: str, now_ms: int) -> Notice:
    """Mark a notice read (once; acking again answers the first ack). 404 for anyone else's."""
    if not re.fullmatch(NOTICE_ID_RE, notice_id):
        raise BadInput(f"notice_id: expected 18 lowercase hex digits, got {notice_id[:40]!r}")
    key = ctx.keys.notices(person_id)
    raw = await ctx.redis.hget(key, notice_id)
    if raw is None:
        raise NotFound(f"no notice {notice_id} of yours")
    notice = _decode.decode(raw)
    if notice.acked_at is None:
        notice.acked_at = format_ms(now_ms)
        await ctx.redis.hset(key, notice_id, msgspec.json.encode(notice))
    return notice
