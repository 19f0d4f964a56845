"""Purpose binding of contact details (docs/ARCHITECTURE.md, "Integrity of the record").

A tracer may read the name and phone of a person only when that person is the index person of a
contacts, exposure or source-tracing query the same key ran, or was named in such an answer, in the
last :data:`BOUND_MS`. Those answers call :func:`remember`, which adds their persons to a sorted set per
key (score = until when the binding holds); nothing else binds: not a visits timeline (person ids are
sequential, so a timeline per id would open the whole city), not a person lookup.

On top of that each key has an hourly budget of contact details (``CHECKIN_CONTACT_DETAILS_PER_HOUR``,
:func:`spend`): the read that reaches it raises a ``bulk_read`` alert at the city level, the ones after
it get 429 until the hour ends.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from checkin.platform.auth import Principal
from checkin.platform.context import Context
from checkin.platform.errors import Forbidden, TooManyRequests
from checkin.platform.instants import format_ms
from tracing.rules import alerts as al

log = logging.getLogger("tracing.answers.purpose")

HOUR_MS = 3_600_000
BOUND_MS = 24 * HOUR_MS
BULK_READS = "contact_details_bulk_reads_total"
CHUNK = 5_000
"""Members per ZADD (an exposure answer may name tens of thousands)."""


async def remember(ctx: Context, principal: Principal, person_ids: Iterable[int], now_ms: int) -> None:
    """Bind these persons to the caller's key for the next 24 h."""
    key = ctx.keys.answered_persons(principal.key_id)
    until = now_ms + BOUND_MS
    ids = list(dict.fromkeys(person_ids))
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.zremrangebyscore(key, "-inf", now_ms)
    for start in range(0, len(ids), CHUNK):
        pipe.zadd(key, {str(pid): until for pid in ids[start : start + CHUNK]})
    pipe.pexpire(key, BOUND_MS)
    await pipe.execute()


async def check(ctx: Context, principal: Principal, person_id: int, now_ms: int) -> None:
    """403 ``not_traced`` unless a contacts, exposure or source-tracing answer named the person to this
    key lately (or the person was the index of such a query)."""
    until = await ctx.redis.zscore(ctx.keys.answered_persons(principal.key_id), str(person_id))
    if until is None or until <= now_ms:
        raise Forbidden(
            f"person {person_id} was not the subject of, or named in, a trace or exposure answer "
            "given to this key in the last 24 h: run the trace first",
            reason="not_traced",
        )


async def spend(ctx: Context, principal: Principal, now_ms: int) -> None:
    """Count one contact-details read against the key's budget for this clock hour. The read that
    reaches the budget raises the ``bulk_read`` alert; reads beyond it are 429 ``over_budget``."""
    limit = ctx.settings.contact_details_per_hour
    hour = now_ms // HOUR_MS
    key = ctx.keys.rate("contact-details", principal.key_id, hour)
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.incr(key)
    pipe.pexpire(key, HOUR_MS + 60_000)
    used, _ = await pipe.execute()
    if int(used) == limit:
        await al.publish_one(ctx, bulk_read_alert(principal, limit, hour, now_ms))
        ctx.metrics.inc(BULK_READS, role=principal.role)
        log.warning(
            "key %s read %d contact details this hour: bulk_read alert raised", principal.key_id, limit
        )
    if int(used) > limit:
        raise TooManyRequests(
            f"this key has read {limit} contact details this hour (CHECKIN_CONTACT_DETAILS_PER_HOUR); "
            "the city command centre has been alerted",
            retry_after=max(1, -(-((hour + 1) * HOUR_MS - now_ms) // 1000)),
            reason="over_budget",
        )


def bulk_read_alert(principal: Principal, limit: int, hour: int, now_ms: int) -> al.Alert:
    """A key reached its hourly contact-details budget: an alert for the city level (a command centre
    that sees the whole city judges whether the reads had a purpose)."""
    return al.Alert(
        alert_id=al.audit_alert_id(now_ms, "bulk_read", principal.key_id),
        kind="bulk_read",
        severity="critical",
        at=format_ms(now_ms),
        person_id=None,
        venue_id=0,
        district="",
        street="",
        community="",
        details={
            "key_id": principal.key_id,
            "role": principal.role,
            "scope": principal.scope,
            "limit": limit,
            "hour": format_ms(hour * HOUR_MS),
        },
        level="city",
    )


def setup_metrics(metrics: Any) -> None:
    metrics.counter(BULK_READS, "Keys that reached their hourly contact-details budget (bulk_read alerts)")
