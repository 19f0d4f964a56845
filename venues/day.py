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
    tz = ctx.settings.tz
    today = dt.datetime.fromtimestamp(now_ms() / 1000, ZoneInfo(tz)).date()
    fields, _ = day_fields(str(venue_id), today, tz)
    values = await ctx.redis.hmget(
        ctx.keys.venue_entries(ctx.keys.shard_of(venue_id), today.strftime("%Y%m%d")), fields
    )
    return EntriesToday(venue_id=venue_id, local_day=today.strftime("%Y%m%d"), entries=day_total(values))


def day_fields(vid: str, day: dt.date, tz: str) -> tuple[list[str], list[tuple[int, int]]]:
    """The fields of a venue's day in the day's entries hash: the day's own count (written before the
    check-in script counted per hour only), then every unix hour the local day overlaps (24, or 25 in
    a zone whose offset is not whole hours, or 23 to 25 on a daylight-saving day); and the local hour
    each unix hour stands for in the chart (:func:`day_hours`)."""
    zone = ZoneInfo(tz)
    start = dt.datetime(day.year, day.month, day.day, tzinfo=zone)
    nxt = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    first, last = int(start.timestamp()) * 1000 // HOUR_MS, (int(nxt.timestamp()) * 1000 - 1) // HOUR_MS
    return [vid, *(f"{vid}:{hour}" for hour in range(first, last + 1))], day_hours(day, tz)


def day_total(values: list[bytes | None]) -> int:
    """A day's entries from :func:`day_fields`' values: the sum of its hours, or the day's own count
    where that is larger (a day that began before the script counted per hour only)."""
    return max(int(values[0] or 0), sum(int(v or 0) for v in values[1:]))


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
    plans: list[tuple[list[str], list[tuple[int, int]]]] = []
    for day in days:
        fields, hours = day_fields(vid, day, tz)
        plans.append((fields, hours))
        pipe.hmget(ctx.keys.venue_entries(shard, day.strftime("%Y%m%d")), fields)
    pipe.zcount(ctx.keys.occupancy(venue_id), f"({now}", "+inf")
    pipe.lrange(ctx.keys.venue_alerts(venue_id), 0, -1)
    *counts, occupancy, raw_alerts = await pipe.execute()
    out: list[DayEntries] = []
    for day, (fields, hours), values in zip(days, plans, counts, strict=True):
        by_unix_hour = {
            int(field.rsplit(":", 1)[1]): int(v or 0) for field, v in zip(fields[1:], values[1:], strict=True)
        }
        out.append(
            DayEntries(
                local_day=day.strftime("%Y%m%d"),
                entries=day_total(values),
                hours=[
                    HourEntries(hour=hour, entries=by_unix_hour.get(unix_hour, 0))
                    for hour, unix_hour in hours
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
