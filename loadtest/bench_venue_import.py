"""Benchmark: CSV import of a city's venues into the Redis registry.

Writes the synthetic city's ``venues.csv`` (239,000 venues for the ``city``
preset), imports it with the same code path as ``checkin venues import`` under
a private key prefix, imports it a second time (must change nothing), records
the figures and removes its keys.

    .venv/bin/python -m loadtest.bench_venue_import [--preset city] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis

from checkin.platform.redis_keys import RedisKeys
from loadtest.city import PRESETS, VENUE_COLUMNS, City
from loadtest.results import Figure, record
from venues import importer

TARGET_S = 30.0


def write_venues_csv(path: Path, preset: str = "city", seed: int = 1) -> int:
    """The synthetic city's venue CSV; returns the number of rows."""
    city = City(PRESETS[preset], seed)
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(VENUE_COLUMNS)
        for row in city.venue_rows():
            writer.writerow(row)
            rows += 1
    return rows


def drop_prefix(client: Any, prefix: str) -> None:
    batch: list[bytes] = []
    for key in client.scan_iter(match=prefix + "*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            client.unlink(*batch)
            batch = []
    if batch:
        client.unlink(*batch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="city", choices=sorted(PRESETS))
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)

    client = redis.Redis.from_url(args.redis_url)
    prefix = f"bench:venues:{uuid.uuid4().hex[:8]}:"
    keys = RedisKeys(prefix)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "venues.csv"
        started = time.perf_counter()
        rows = write_venues_csv(path, args.preset)
        took = time.perf_counter() - started
        size_mb = path.stat().st_size / 1e6
        print(f"wrote {rows:,} venues ({size_mb:.1f} MB) in {took:.1f} s", file=sys.stderr)
        try:
            with path.open("rb") as fh:
                first = importer.import_stream(client, keys, fh)
            with path.open("rb") as fh:
                second = importer.import_stream(client, keys, fh)
            stored = int(client.zcard(keys.venue_index()))
            queued = int(client.zcard(keys.venue_mirror_queue()))
        finally:
            drop_prefix(client, prefix)
            client.close()
    ok = first.created == rows and first.rejected == 0 and stored == rows and queued == rows
    idempotent = second.unchanged == rows and second.created == 0 and second.updated == 0
    record(
        "venue_import",
        f"python -m loadtest.bench_venue_import --preset {args.preset}",
        [
            Figure(
                figure=f"venue CSV import, {rows:,} venues (first import)",
                value=first.seconds,
                unit="s",
                target=f"< {TARGET_S:.0f} s",
                met=first.seconds < TARGET_S and ok,
                note=f"{rows / first.seconds:,.0f} rows/s; all created, indexed, queued for mirror: {ok}",
            ),
            Figure(
                figure=f"venue CSV re-import of the same file, {rows:,} venues",
                value=second.seconds,
                unit="s",
                target="changes nothing",
                met=idempotent,
                note=f"{second.unchanged:,} unchanged, {second.updated} updated, {second.created} created",
            ),
        ],
    )
    return 0 if ok and idempotent else 1


if __name__ == "__main__":
    sys.exit(main())
