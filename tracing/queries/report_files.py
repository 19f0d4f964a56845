"""The command-centre report as files: one CSV per table (every cell through the one spreadsheet-cell
rule, :func:`tracing.queries.spreadsheet.csv_cell`) and ``report.html`` with tables and inline SVG
charts (self-contained: no scripts, no CDN)."""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Sequence
from pathlib import Path

from tracing.queries.report import KIND_COLOURS, AlertRow, Report
from tracing.queries.spreadsheet import csv_cell
from tracing.rules.kinds import RULE_KINDS

# --- CSV ----------------------------------------------------------------------------------------------


def _csv(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])
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
