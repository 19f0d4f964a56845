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
neutralised, and each file starts with a UTF-8 byte-order mark (Excel then reads the Chinese).
"""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import html
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import msgspec

from checkin.platform.settings import RULE_KINDS
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


# --- CSV ----------------------------------------------------------------------------------------------


def safe_cell(value: object) -> str:
    """Neutralise spreadsheet formulas (a cell starting with = + - @ tab or CR gets a leading quote)."""
    text = str(value)
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


def _csv(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return buf.getvalue()


def csv_files(report: Report) -> dict[str, str]:
    return {
        "scans_by_district.csv": _csv(
            ["district", "scans", "persons", "denied", "alerts"],
            [[r.district, r.scans, r.persons, r.denied, r.alerts] for r in report.districts],
        ),
        "alerts_by_kind.csv": _csv(
            ["district", "kind", "alerts"], [[r.district, r.kind, r.alerts] for r in report.kinds]
        ),
        "top_venues.csv": _csv(
            ["rank", "venue_id", "name", "district", "scans", "persons", "alerts"],
            [[r.rank, r.venue_id, r.name, r.district, r.scans, r.persons, r.alerts] for r in report.venues],
        ),
        "scans_over_time.csv": _csv(
            ["local_hour" if report.period == "day" else "local_day", "scans"],
            [[r.bucket, r.scans] for r in report.timeline],
        ),
        "alerts.csv": _csv(ALERT_HEADER, [alert_cells(a) for a in report.alerts]),
        "dispositions.csv": _csv(
            ["level", "alerts", "acked", "resolved", "median_ack_s"],
            [
                [d.level, d.alerts, d.acked, d.resolved, "" if d.median_ack_s is None else d.median_ack_s]
                for d in report.dispositions
            ],
        ),
    }


ALERT_HEADER = [
    "alert_id",
    "local_time",
    "kind",
    "severity",
    "venue_id",
    "venue",
    "community",
    "level",
    "acked_by",
    "acked_at",
    "resolved_by",
    "resolved_at",
    "outcome",
    "note",
]


def alert_cells(a: AlertRow) -> list[object]:
    return [
        a.alert_id,
        a.at,
        a.kind,
        a.severity,
        a.venue_id,
        a.venue_name,
        a.community,
        a.level,
        a.acked_by,
        a.acked_at,
        a.resolved_by,
        a.resolved_at,
        a.outcome,
        a.note,
    ]


# --- HTML with inline SVG -------------------------------------------------------------------------------

_e = html.escape


def bar_chart(title: str, labels: Sequence[str], values: Sequence[int], colour: str = "#1565c0") -> str:
    """Horizontal bars, one per label."""
    width, label_w, row_h = 720, 170, 22
    height = 30 + row_h * max(1, len(labels))
    top = max([1, *values])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{_e(title)}</title>'
    ]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = 20 + i * row_h
        w = (width - label_w - 80) * value / top
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" font-size="12">{_e(label)}</text>'
            f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{row_h - 6}" fill="{colour}"/>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + 14}" font-size="12">{value:,}</text>'
        )
    if not labels:
        parts.append('<text x="10" y="40" font-size="12">no data</text>')
    parts.append("</svg>")
    return "".join(parts)


def stacked_chart(report: Report) -> str:
    """Alerts per district, stacked by kind, with a legend."""
    districts = sorted({r.district for r in report.kinds})
    per: dict[str, dict[str, int]] = {d: {} for d in districts}
    for r in report.kinds:
        per[r.district][r.kind] = r.alerts
    width, label_w, row_h = 720, 170, 22
    legend_h = 20 * ((len(RULE_KINDS) + 2) // 3)
    height = 30 + row_h * max(1, len(districts)) + legend_h
    top = max([1, *(sum(v.values()) for v in per.values())])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>Alerts by district and kind</title>'
    ]
    for i, district in enumerate(districts):
        y = 20 + i * row_h
        x = float(label_w)
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" font-size="12">{_e(district)}</text>'
        )
        for kind in RULE_KINDS:
            n = per[district].get(kind, 0)
            if not n:
                continue
            w = (width - label_w - 80) * n / top
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row_h - 6}" '
                f'fill="{KIND_COLOURS[kind]}"><title>{_e(kind)}: {n}</title></rect>'
            )
            x += w
        parts.append(
            f'<text x="{x + 4:.1f}" y="{y + 14}" font-size="12">{sum(per[district].values()):,}</text>'
        )
    if not districts:
        parts.append('<text x="10" y="40" font-size="12">no alerts</text>')
    base = 30 + row_h * max(1, len(districts))
    for i, kind in enumerate(RULE_KINDS):
        x, y = 10 + (i % 3) * 235, base + (i // 3) * 20
        parts.append(
            f'<rect x="{x}" y="{y}" width="12" height="12" fill="{KIND_COLOURS[kind]}"/>'
            f'<text x="{x + 18}" y="{y + 11}" font-size="12">{_e(kind)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def column_chart(title: str, labels: Sequence[str], values: Sequence[int]) -> str:
    """Vertical columns over time."""
    width, height, pad = 720, 220, 30
    n = max(1, len(labels))
    top = max([1, *values])
    col = (width - 2 * pad) / n
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{_e(title)}</title>',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#555"/>',
        f'<text x="{pad}" y="14" font-size="12">max {top:,}</text>',
    ]
    step = max(1, n // 12)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = (height - 2 * pad - 10) * value / top
        x = pad + i * col
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{height - pad - h:.1f}" width="{max(1.0, col - 2):.1f}" '
            f'height="{h:.1f}" fill="#2e7d32"><title>{_e(label)}: {value:,}</title></rect>'
        )
        if i % step == 0:
            parts.append(
                f'<text x="{x + col / 2:.1f}" y="{height - pad + 14}" font-size="10" '
                f'text-anchor="middle">{_e(label[-5:])}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(f'{v:,}' if isinstance(v, int) else str(v))}</td>" for v in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: Report) -> str:
    kind_totals: dict[str, int] = {}
    for r in report.kinds:
        kind_totals[r.kind] = kind_totals.get(r.kind, 0) + r.alerts
    what = "Daily" if report.period == "day" else "Monthly"
    over = "hour" if report.period == "day" else "day"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{what} command-centre report {_e(report.label)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1.5rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; }}
td:not(:first-child) {{ font-variant-numeric: tabular-nums; }}
.totals span {{ display: inline-block; margin-right: 2rem; font-size: 1.2rem; }}
</style></head><body>
<h1>{what} command-centre report: {_e(report.label)}</h1>
<p>Command centre: {_e(report.level)} {_e(report.scope or "(whole city)")}.
Local time zone {_e(report.tz)}. Scans are stays (check-ins); alerts are the rule engine's history.</p>
<p class="totals"><span>Scans <b>{report.total_scans:,}</b></span><span>Alerts <b>{
        report.total_alerts:,}</b></span>
<span>Districts <b>{len(report.districts)}</b></span></p>
<h2>Scans per district</h2>
{bar_chart("Scans per district", [r.district for r in report.districts], [r.scans for r in report.districts])}
{
        _table(
            ["district", "scans", "persons", "denied", "alerts"],
            [[r.district, r.scans, r.persons, r.denied, r.alerts] for r in report.districts],
        )
    }
<h2>Scans per {over}</h2>
{column_chart(f"Scans per {over}", [r.bucket for r in report.timeline], [r.scans for r in report.timeline])}
<h2>Alerts by kind</h2>
{bar_chart("Alerts by kind", list(kind_totals), list(kind_totals.values()), "#c62828")}
{stacked_chart(report)}
{_table(["district", "kind", "alerts"], [[r.district, r.kind, r.alerts] for r in report.kinds])}
<h2>Dispositions per level</h2>
{
        _table(
            ["level", "alerts", "acknowledged", "resolved", "median time to ack (s)"],
            [
                [d.level, d.alerts, d.acked, d.resolved, "" if d.median_ack_s is None else d.median_ack_s]
                for d in report.dispositions
            ],
        )
    }
<h2>Alerts and their dispositions</h2>
{_table(ALERT_HEADER, [alert_cells(a) for a in report.alerts])}
<h2>Top venues</h2>
{
        _table(
            ["rank", "venue", "name", "district", "scans", "persons", "alerts"],
            [[r.rank, r.venue_id, r.name, r.district, r.scans, r.persons, r.alerts] for r in report.venues],
        )
    }
</body></html>
"""


def write_report(report: Report, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in {**csv_files(report), "report.html": render_html(report)}.items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8-sig" if name.endswith(".csv") else "utf-8")
        written.append(path)
    return written
