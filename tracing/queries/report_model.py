"""The command-centre report's figures as values (:mod:`tracing.queries.report` reads them from ClickHouse,
:mod:`tracing.queries.report_files` writes them as CSV and HTML) and its local periods."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from typing import Literal
from zoneinfo import ZoneInfo

import msgspec

Period = Literal["day", "month"]
KIND_COLOURS = {
    "red_code_entry": "#c62828",
    "yellow_code_entry": "#f9a825",
    "test_expired_entry": "#6a1b9a",
    "watchlist_entry": "#ad1457",
    "exposure_site_visit": "#e65100",
    "capacity_exceeded": "#1565c0",
    "impossible_travel": "#00838f",
    "remote_scan": "#4e342e",
}


class DistrictRow(msgspec.Struct):
    district: str
    scans: int
    persons: int
    denied: int
    alerts: int


class KindRow(msgspec.Struct):
    district: str
    kind: str
    alerts: int


class VenueRow(msgspec.Struct):
    rank: int
    venue_id: int
    name: str
    district: str
    scans: int
    persons: int
    alerts: int


class TimeRow(msgspec.Struct):
    bucket: str
    scans: int


class AlertRow(msgspec.Struct):
    alert_id: str
    at: str
    """Local time, ``YYYY-MM-DD HH:MM:SS``."""
    kind: str
    severity: str
    venue_id: int
    venue_name: str
    community: str
    level: str
    acked_by: str
    acked_at: str
    resolved_by: str
    resolved_at: str
    outcome: str
    note: str


class LevelRow(msgspec.Struct):
    level: str
    alerts: int
    acked: int
    resolved: int
    median_ack_s: float | None


class Report(msgspec.Struct, kw_only=True):
    period: str
    label: str
    tz: str
    since_ms: int
    until_ms: int
    districts: list[DistrictRow]
    kinds: list[KindRow]
    venues: list[VenueRow]
    timeline: list[TimeRow]
    scope: str = ""
    level: str = "city"
    alerts: list[AlertRow] = msgspec.field(default_factory=list)
    dispositions: list[LevelRow] = msgspec.field(default_factory=list)

    @property
    def total_scans(self) -> int:
        return sum(d.scans for d in self.districts)

    @property
    def total_alerts(self) -> int:
        return sum(k.alerts for k in self.kinds)


def report_day(text: str, period: str) -> dt.date:
    """YYYY-MM-DD (any day of the month for a month report; YYYY-MM is accepted there too)."""
    try:
        if period == "month" and re.fullmatch(r"[0-9]{4}-[0-9]{2}", text):
            return dt.date.fromisoformat(text + "-01")
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):  # fromisoformat takes more forms
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected YYYY-MM-DD, got {text!r}") from None


def period_bounds(period: Period, day: dt.date, tz: str) -> tuple[int, int, str]:
    """[start, end) of the local day or month containing ``day``, as unix ms, and a label."""
    zone = ZoneInfo(tz)
    if period == "day":
        start = dt.datetime(day.year, day.month, day.day, tzinfo=zone)
        nxt = day + dt.timedelta(days=1)
        end = dt.datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
        label = day.isoformat()
    else:
        start = dt.datetime(day.year, day.month, 1, tzinfo=zone)
        days = calendar.monthrange(day.year, day.month)[1]
        last = dt.date(day.year, day.month, days) + dt.timedelta(days=1)
        end = dt.datetime(last.year, last.month, last.day, tzinfo=zone)
        label = f"{day.year:04d}-{day.month:02d}"
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000), label
