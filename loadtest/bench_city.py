"""Synthetic city generation speed: the reference city (239,000 venues, 3.85 M residents,
one day of ~1.7 M planned scans) written to disk, and its byte-for-byte determinism.

    python loadtest/bench_city.py [--preset city|megacity|small] [--seed N]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

from loadtest.city import PRESETS, write_city
from loadtest.results import Figure, record

TARGET_S = 180.0


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="city")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    spec = PRESETS[args.preset]
    work = Path(tempfile.mkdtemp(prefix="bench-city-"))
    try:
        started = time.perf_counter()
        manifest = write_city(spec, args.seed, work / "a", scan_days=1)
        total = time.perf_counter() - started
        size_mb = sum(p.stat().st_size for p in (work / "a").iterdir()) / 1e6
        # determinism: the small preset twice, every file compared
        small = PRESETS["small"]
        write_city(small, args.seed, work / "s1", progress=False)
        write_city(small, args.seed, work / "s2", progress=False)
        same = all(_sha(p) == _sha(work / "s2" / p.name) for p in (work / "s1").iterdir())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    secs = manifest.seconds
    note = f"{spec.venues:,} venues, {spec.residents:,} residents, {spec.scans_per_day:,} scans"
    figures = [
        Figure(
            figure=f"city generation, preset {args.preset}",
            value=round(total, 1),
            unit="s",
            target=f"< {TARGET_S:.0f} s",
            met=total < TARGET_S,
            note=f"{note}, {size_mb:,.0f} MB",
        ),
        Figure(figure="venues written", value=round(spec.venues / secs["venues"]), unit="venues/s"),
        Figure(
            figure="residents written", value=round(spec.residents / secs["residents"]), unit="residents/s"
        ),
        Figure(figure="scan plan written", value=round(spec.scans_per_day / secs["scans"]), unit="scans/s"),
        Figure(
            figure="same seed, same bytes",
            value=1.0 if same else 0.0,
            unit="",
            target="1",
            met=same,
            note="small preset generated twice",
        ),
    ]
    command = "checkin loadtest bench --only city"
    if args.preset != "city":
        command = f"python loadtest/bench_city.py --preset {args.preset}"
    record(f"city_{args.preset}" if args.preset != "city" else "city", command, figures)
    return 0 if same and total < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
