"""A venue's day for its operator: the check-ins counted today, entries per hour today and on the
same weekday last week, occupancy now, today's alerts the operator may see. All read from Redis (the
ingest API never opens ClickHouse)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import msgspec

from checkin.platform.auth import Principal
from checkin.platform.context import Context
from checkin.platform.instants import HOUR_MS, format_ms, local_day, now_ms, parse_instant
from venues.model import OPERATOR_ALERT_KINDS, VenueAlert
from venues.registry import get_venue


class EntriesToday(msgspec.Struct):
    venue_id: int
    local_day: str
    """YYYYMMDD in the configured time zone."""
    entries: int


class HourEntries(msgspec.Struct):
    hour: int
    """The local hour (0..23) the hour starts at."""
    entries: int
    """Check-ins whose scan instant falls in this hour (each person of a group counts)."""


class DayEntries(msgspec.Struct):
    local_day: str
    """YYYYMMDD in the configured time zone."""
    entries: int
    """The day's check-ins (what ``/entries`` answers)."""
    hours: list[HourEntries]
    """Every hour of the local day in order (23 or 25 on a day the clocks change)."""


class VenueDay(msgspec.Struct):
    """The venue's day for its operator: entries per hour today and on the same weekday last week,
    occupancy now against the capacity, and today's alerts the operator may see (no persons)."""

    venue_id: int
    as_of: str
    """When this was read (RFC 3339 UTC); the operator page reads it again every minute."""
    tz: str
    """The time zone of the local days and hours (``CHECKIN_TZ``)."""
    today: DayEntries
    last_week: DayEntries
    """The same weekday a week before."""
    capacity: int
    """0 = no capacity rule."""
    occupancy: int | None
    """Stays open at the venue now, as the rule engine counts them; null when the venue has no
    capacity (the rule engine counts only venues with one)."""
    alerts: list[VenueAlert]
    """Today's alerts of the venue that its operator may see (capacity exceeded), newest first."""


async def entries_today(ctx: Context, principal: Principal, venue_id: int) -> EntriesToday:
    await get_venue(ctx, principal, venue_id)
    day = local_day(now_ms(), ctx.settings.tz)
    shard = ctx.keys.shard_of(venue_id)
    raw = await ctx.redis.hget(ctx.keys.venue_entries(shard, day), str(venue_id))
    return EntriesToday(venue_id=venue_id, local_day=day, entries=int(raw or 0))


def day_hours(day: dt.date, tz: str) -> list[tuple[int, int]]:
    """(local hour, unix hour) of every hour of a local day: the check-in script counts a venue's
    entries per unix hour of the scan (``<venue id>:<unix hour>`` in the day's entries hash). In a zone
    whose offset is not whole hours the unix hour holding the local hour's start stands for it."""
    zone = ZoneInfo(tz)
    start = dt.datetime(day.year, day.month, day.day, tzinfo=zone)
    nxt = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    t, end = int(start.timestamp() * 1000), int(nxt.timestamp() * 1000)
    out: list[tuple[int, int]] = []
    while t < end:
        out.append((dt.datetime.fromtimestamp(t / 1000, zone).hour, t // HOUR_MS))
        t += HOUR_MS
    return out


async def venue_day(ctx: Context, principal: Principal, venue_id: int) -> VenueDay:
    """Entries per hour today and on the same weekday last week, occupancy now, today's alerts: all
    from Redis (the ingest API never opens ClickHouse), one round trip."""
    venue = await get_venue(ctx, principal, venue_id)
    tz = ctx.settings.tz
    now = now_ms()
    today = dt.datetime.fromtimestamp(now / 1000, ZoneInfo(tz)).date()
    days = (today, today - dt.timedelta(days=7))
    shard = ctx.keys.shard_of(venue_id)
    vid = str(venue_id)
    pipe = ctx.redis.pipeline(transaction=False)
    plans: list[list[tuple[int, int]]] = []
    for day in days:
        hours = day_hours(day, tz)
        plans.append(hours)
        fields = [vid, *(f"{vid}:{unix_hour}" for _, unix_hour in hours)]
        pipe.hmget(ctx.keys.venue_entries(shard, day.strftime("%Y%m%d")), fields)
    pipe.zcount(ctx.keys.occupancy(venue_id), f"({now}", "+inf")
    pipe.lrange(ctx.keys.venue_alerts(venue_id), 0, -1)
    *counts, occupancy, raw_alerts = await pipe.execute()
    out: list[DayEntries] = []
    for day, hours, values in zip(days, plans, counts, strict=True):
        out.append(
            DayEntries(
                local_day=day.strftime("%Y%m%d"),
                entries=int(values[0] or 0),
                hours=[
                    HourEntries(hour=hour, entries=int(v or 0))
                    for (hour, _), v in zip(hours, values[1:], strict=True)
                ],
            )
        )
    alerts: list[VenueAlert] = []
    today_text = out[0].local_day
    for raw in raw_alerts:
        try:
            alert = msgspec.json.decode(raw, type=VenueAlert)
        except msgspec.DecodeError:
            continue
        if alert.kind in OPERATOR_ALERT_KINDS and local_day(parse_instant("at", alert.at), tz) == today_text:
            alerts.append(alert)
    return VenueDay(
        venue_id=venue_id,
        as_of=format_ms(now),
        tz=tz,
        today=out[0],
        last_week=out[1],
        capacity=venue.capacity,
        occupancy=int(occupancy) if venue.capacity > 0 else None,
        alerts=alerts,
    )
