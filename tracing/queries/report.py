"""The command-centre report: one local day or month, per district, from ClickHouse.

``checkin report --period day|month --date YYYY-MM-DD [--scope CODE] --out DIR`` writes, for the command
centre of ``scope`` (its level from the code's length: 12 digits community, 9 street, 6 district, empty city)

* ``scans_by_district.csv``: district, scans (stays), distinct persons, denied at the door, alerts;
* ``alerts_by_kind.csv``: district, kind, alerts;
* ``top_venues.csv``: rank, venue_id, name, district, scans, persons, alerts;
* ``scans_over_time.csv``: scans per local hour (day report) or local day (month report);
* ``alerts.csv``: every alert of the period in the scope (up to 10,000, oldest first) with its disposition:
  level reached, who acknowledged and resolved it, when, the outcome;
* ``dispositions.csv``: per level, alerts held there, acknowledged, resolved, median time to acknowledge;
* ``report.html``: the same as tables and inline SVG charts (self-contained: no scripts, no CDN).

Periods are local (settings ``tz``). Scans are stays read with ``FINAL`` (a check-out does not count
twice); alerts are the ClickHouse history. CSV cells that a spreadsheet would run as a formula are
neutralised, and each file starts with a UTF-8 byte-order mark (Excel then reads the Chinese). The files
are written by :mod:`tracing.queries.report_files`; this module reads the figures.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from typing import Any, Literal
from zoneinfo import ZoneInfo

import msgspec

from tracing.rules import alerts as al
from tracing.storage.store import Store

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


_RANGE = (
    "at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC') "
    "AND at < fromUnixTimestamp64Milli({until:Int64}, 'UTC') AND startsWith(community, {scope:String})"
)
ALERT_ROWS = 10_000


def _local(value: Any, zone: ZoneInfo) -> str:
    if value is None:
        return ""
    when = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return str(when.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"))


def build_report(
    store: Store, period: Period, day: dt.date, tz: str, top: int = 20, scope: str = ""
) -> Report:
    """Blocking: every figure of the report for the command centre of ``scope``, from ClickHouse."""
    since_ms, until_ms, label = period_bounds(period, day, tz)
    p: dict[str, Any] = {"since": since_ms, "until": until_ms, "tz": tz, "top": top, "scope": scope}
    scans, alerts, venues = store.table("scans"), store.table("alerts"), store.table("venues")

    alert_rows = store.rows(
        f"SELECT district, kind, count() FROM {alerts} FINAL WHERE {_RANGE} GROUP BY district, kind "
        "ORDER BY district, kind",
        p,
    )
    kinds = [KindRow(district=str(d), kind=str(k), alerts=int(n)) for d, k, n in alert_rows]
    alerts_by_district: dict[str, int] = {}
    for row in kinds:
        alerts_by_district[row.district] = alerts_by_district.get(row.district, 0) + row.alerts

    district_rows = store.rows(
        f"SELECT district, count(), uniqExact(person_id), countIf(verdict = 'deny') FROM {scans} FINAL "
        f"WHERE {_RANGE} GROUP BY district ORDER BY district",
        p,
    )
    districts = [
        DistrictRow(
            district=str(d),
            scans=int(n),
            persons=int(u),
            denied=int(x),
            alerts=alerts_by_district.get(str(d), 0),
        )
        for d, n, u, x in district_rows
    ]
    for district, count in sorted(alerts_by_district.items()):
        if not any(r.district == district for r in districts):
            districts.append(DistrictRow(district=district, scans=0, persons=0, denied=0, alerts=count))
    districts.sort(key=lambda r: r.district)

    top_rows = store.rows(
        f"SELECT venue_id, any(district), count() AS n, uniqExact(person_id) FROM {scans} FINAL "
        f"WHERE {_RANGE} GROUP BY venue_id ORDER BY n DESC, venue_id LIMIT {{top:UInt32}}",
        p,
    )
    ids = [int(r[0]) for r in top_rows]
    names: dict[int, str] = {}
    venue_alerts: dict[int, int] = {}
    if ids:
        names = {
            int(v): str(n)
            for v, n in store.rows(
                f"SELECT venue_id, name FROM {venues} FINAL WHERE venue_id IN {{ids:Array(UInt32)}}",
                {"ids": ids},
            )
        }
        venue_alerts = {
            int(v): int(n)
            for v, n in store.rows(
                f"SELECT venue_id, count() FROM {alerts} FINAL WHERE {_RANGE} "
                "AND venue_id IN {ids:Array(UInt32)} GROUP BY venue_id",
                {**p, "ids": ids},
            )
        }
    top_venues = [
        VenueRow(
            rank=i + 1,
            venue_id=int(v),
            name=names.get(int(v), ""),
            district=str(d),
            scans=int(n),
            persons=int(u),
            alerts=venue_alerts.get(int(v), 0),
        )
        for i, (v, d, n, u) in enumerate(top_rows)
    ]

    if period == "day":
        bucket_sql = "formatDateTime(toStartOfHour(toTimeZone(at, {tz:String})), '%H:00')"
        all_buckets = [f"{h:02d}:00" for h in range(24)]
    else:
        bucket_sql = "formatDateTime(toDate(toTimeZone(at, {tz:String})), '%Y-%m-%d')"
        days = calendar.monthrange(day.year, day.month)[1]
        all_buckets = [dt.date(day.year, day.month, d).isoformat() for d in range(1, days + 1)]
    counts = {
        str(b): int(n)
        for b, n in store.rows(
            f"SELECT {bucket_sql} AS b, count() FROM {scans} FINAL WHERE {_RANGE} GROUP BY b", p
        )
    }
    timeline = [TimeRow(bucket=b, scans=counts.get(b, 0)) for b in all_buckets]
    zone = ZoneInfo(tz)
    alert_list = [
        AlertRow(
            alert_id=str(r["alert_id"]),
            at=_local(r["at"], zone),
            kind=str(r["kind"]),
            severity=str(r["severity"]),
            venue_id=int(r["venue_id"]),
            venue_name=str(r["venue_name"] or ""),
            community=str(r["community"]),
            level=str(r["level"]),
            acked_by=str(r["acked_by"]),
            acked_at=_local(r["acked_at"], zone),
            resolved_by=str(r["resolved_by"]),
            resolved_at=_local(r["resolved_at"], zone),
            outcome=str(r["outcome"]),
            note=str(r["note"]),
        )
        for r in store.dicts(
            "SELECT a.alert_id AS alert_id, a.at AS at, a.kind AS kind, toString(a.severity) AS severity, "
            "a.venue_id AS venue_id, v.name AS venue_name, a.community AS community, "
            "toString(a.level) AS level, a.acked_by AS acked_by, a.acked_at AS acked_at, "
            "a.resolved_by AS resolved_by, a.resolved_at AS resolved_at, a.outcome AS outcome, "
            f"a.note AS note FROM (SELECT * FROM {alerts} FINAL WHERE {_RANGE}) AS a "
            f"LEFT JOIN (SELECT venue_id, name FROM {venues} FINAL WHERE venue_id IN "
            f"(SELECT venue_id FROM {alerts} WHERE {_RANGE})) AS v ON v.venue_id = a.venue_id "
            f"ORDER BY a.at, a.alert_id LIMIT {ALERT_ROWS}",
            p,
        )
    ]
    by_level = {
        str(r[0]): r
        for r in store.rows(
            "SELECT toString(level), count(), countIf(acked = 1), countIf(resolved = 1), "
            "medianIf((toUnixTimestamp64Milli(acked_at) - toUnixTimestamp64Milli(at)) / 1000, acked = 1) "
            f"FROM {alerts} FINAL WHERE {_RANGE} GROUP BY level",
            p,
        )
    }
    dispositions = []
    for lvl in al.LEVELS:
        got = by_level.get(lvl)
        acked = int(got[2]) if got else 0
        median = round(float(got[4]), 1) if got and acked else None
        dispositions.append(
            LevelRow(lvl, int(got[1]) if got else 0, acked, int(got[3]) if got else 0, median)
        )
    return Report(
        period=period,
        label=label,
        tz=tz,
        since_ms=since_ms,
        until_ms=until_ms,
        districts=districts,
        kinds=kinds,
        venues=top_venues,
        timeline=timeline,
        scope=scope,
        level=al.level_of_scope(scope),
        alerts=alert_list,
        dispositions=dispositions,
    )
