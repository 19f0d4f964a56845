"""``checkin report``: the command-centre report (CSV + HTML with inline SVG charts) from ClickHouse.

With the embedded engine only one process may open the data path: run the report while the tracing
service is stopped, or against a ClickHouse server (``CHECKIN_CLICKHOUSE_DSN=http://...``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

from checkin.platform.settings import Settings


def parse_date(text: str, period: str) -> dt.date:
    """YYYY-MM-DD (any day of the month for a month report; YYYY-MM is accepted there too)."""
    try:
        if period == "month" and len(text) == 7:
            return dt.date.fromisoformat(text + "-01")
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--date: expected YYYY-MM-DD, got {text!r}") from None


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from tracing.queries.report import build_report, write_report
    from tracing.storage.store import Store, StoreError

    try:
        day = parse_date(args.date, args.period)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.top < 1 or args.top > 10_000:
        print(f"error: --top: expected 1..10000, got {args.top}", file=sys.stderr)
        return 2
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"error: --out: {out} exists and is not a directory", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        store = Store.from_settings(settings)
    except StoreError as exc:
        hint = (
            " (the embedded engine's data path may be open in the running tracing service: stop it, "
            "or point CHECKIN_CLICKHOUSE_DSN at a ClickHouse server)"
            if settings.embedded_clickhouse
            else ""
        )
        print(f"error: {exc}{hint}", file=sys.stderr)
        return 1
    try:
        if settings.clickhouse_database not in {
            str(r[0]) for r in store.rows("SELECT name FROM system.databases")
        }:
            print(f"error: no database {settings.clickhouse_database} at {store.safe_dsn}", file=sys.stderr)
            return 1
        report = build_report(store, args.period, day, settings.tz, top=args.top)
    except StoreError as exc:
        print(f"error: reading ClickHouse failed: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    written = write_report(report, out)
    print(
        f"{args.period} report {report.label}: {report.total_scans:,} scans, {report.total_alerts:,} alerts, "
        f"{len(report.districts)} districts -> {out} ({', '.join(p.name for p in written)}) "
        f"in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report",
        help="command-centre report: per-district scans, alerts by kind, top venues (CSV + HTML)",
    )
    p.add_argument("--period", choices=["day", "month"], required=True, help="a local day or month")
    p.add_argument("--date", required=True, help="YYYY-MM-DD (a month report takes the month of this date)")
    p.add_argument("--out", required=True, help="directory to write the CSV files and report.html into")
    p.add_argument("--top", type=int, default=20, help="how many top venues (default 20)")
    p.set_defaults(handler=cmd_report)
