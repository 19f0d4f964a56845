"""Backfill benchmark: how long ``checkin backfill`` takes to write N days of a city's history.

Runs the backfill into its own embedded engine (a temporary data path unless ``--data-dir`` is
given), with per-day progress on stderr, then records the figure in ``docs/bench/backfill.json``.

    .venv/bin/python -m loadtest.bench_backfill --days 30
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from loadtest.results import Figure, record
from tracing.storage.backfill import BackfillSpec, backfill, print_progress
from tracing.storage.store import Store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--scans-per-day", type=int, default=1_700_000)
    parser.add_argument("--venues", type=int, default=239_000)
    parser.add_argument("--residents", type=int, default=3_850_000)
    parser.add_argument("--data-dir", default="", help="embedded engine path (default: a temporary one)")
    args = parser.parse_args(argv)
    spec = BackfillSpec(
        days=args.days, scans_per_day=args.scans_per_day, venues=args.venues, residents=args.residents
    )
    try:
        spec.validate()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    path = (
        Path(args.data_dir).resolve() if args.data_dir else Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    )
    store = Store(f"chdb://{path}", "bench_backfill")
    try:
        store.apply_schema(max(28, spec.days + 1))
        started = time.perf_counter()
        results = backfill(store, spec, print_progress(spec.days))
        seconds = time.perf_counter() - started
        rows = sum(r.rows for r in results)
        total = int(store.scalar(f"SELECT count() FROM {store.table('scans')}") or 0)
    finally:
        store.close()
        if not args.data_dir:
            shutil.rmtree(path, ignore_errors=True)
    command = "python -m loadtest.bench_backfill " + " ".join(argv if argv is not None else sys.argv[1:])
    record(
        "backfill",
        command.strip(),
        [
            Figure(
                figure=f"backfill {spec.days} days x {spec.scans_per_day:,} check-ins (server-side)",
                value=seconds,
                unit="s",
                target="minutes",
                met=seconds < 600,
                note=f"{rows / seconds:,.0f} check-ins/s; {total:,} rows in scans with check-outs; "
                "chdb engine",
            )
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
