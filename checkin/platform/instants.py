"""Time, in one place: instants are unix milliseconds (UTC) inside the product, RFC 3339 UTC with
milliseconds on the wire (``2026-11-29T08:15:00.123Z``), and local days (``YYYYMMDD`` in
``CHECKIN_TZ``) where people think in days (alert dedupe, operators' counts, reports).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from checkin.platform.errors import BadInput

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def now_us() -> int:
    return time.time_ns() // 1000


_formatted_second: list[object] = [None, ""]


def format_ms(ms: int) -> str:
    """RFC 3339 UTC with milliseconds (the formatted second is reused: answers cluster in time)."""
    sec, milli = divmod(ms, 1000)
    if _formatted_second[0] != sec:
        _formatted_second[:] = [sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))]
    return f"{_formatted_second[1]}.{milli:03d}Z"


def now_rfc3339() -> str:
    return format_ms(now_ms())


def to_ms(value: dt.datetime) -> int:
    """Unix ms of a datetime, exactly (no float rounding); a naive one is UTC (what ClickHouse
    rows hold)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return (value - EPOCH) // dt.timedelta(milliseconds=1)


def from_ms(ms: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=ms)


RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
"""The shape of an RFC 3339 date-time (what the OpenAPI documents call ``format: date-time``)."""


def parse_instant(name: str, value: str) -> int:
    """Unix ms of an RFC 3339 instant; a clear 400 naming the parameter otherwise."""
    try:
        parsed: dt.datetime | None = dt.datetime.fromisoformat(value.upper())
    except ValueError:
        parsed = None
    if parsed is not None and parsed.tzinfo is None:
        raise BadInput(f"{name}: the instant needs a UTC offset (Z or +08:00), got {value!r}")
    if parsed is None or not RFC3339.fullmatch(value):
        raise BadInput(f"{name}: expected an RFC 3339 instant like 2026-11-29T08:15:00Z, got {value!r}")
    return to_ms(parsed)


@dataclass
class _Day:
    start: int = 0
    end: int = 0
    text: str = ""


_days: dict[str, _Day] = {}


def local_day(at_ms: int, tz: str) -> str:
    """YYYYMMDD of this instant in the local zone (cached for the current day: the hot path asks
    it for every check-in)."""
    day = _days.get(tz)
    if day is not None and day.start <= at_ms < day.end:
        return day.text
    zone = ZoneInfo(tz)
    local = dt.datetime.fromtimestamp(at_ms / 1000, zone)
    start = dt.datetime(local.year, local.month, local.day, tzinfo=zone)
    nxt = (start + dt.timedelta(days=1, hours=2)).replace(hour=0)
    text = local.strftime("%Y%m%d")
    _days[tz] = _Day(int(start.timestamp() * 1000), int(nxt.timestamp() * 1000), text)
    return text


def seconds_to_local_day_end(at_ms: int, tz: str) -> int:
    zone = ZoneInfo(tz)
    local = dt.datetime.fromtimestamp(at_ms / 1000, zone)
    next_day = (local + dt.timedelta(days=1)).date()
    end = dt.datetime(next_day.year, next_day.month, next_day.day, tzinfo=zone)
    return max(1, math.ceil(end.timestamp() - at_ms / 1000))
