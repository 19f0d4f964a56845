"""Poster rendering rate, one process: the PDF a print shop takes (vector text in the embedded, subset
CJK font; the QR code as vector paths) beside the PNG (A4 at 150 dpi, for screens) and the SVG.

Each format renders the same venues (CJK names, addresses, signed check-in URLs) in one process, after
one warm-up poster (the font is read once per process: its cost is reported on its own). Rates are per
CPU second of the process (what it renders on a core of its own), with the wall-clock rate beside. Run::

    python -m loadtest.bench_posters --posters 300

and the figures go to ``docs/bench/posters.json`` (``docs/BENCHMARKS.md`` lists them).
"""

from __future__ import annotations

import argparse
import sys
import time

from checkin.platform.keyring import Keyring
from loadtest.results import Figure, record
from venues import codes, poster

BASE = "https://checkin.example.cn"


def _data(keyring: Keyring, n: int) -> list[poster.PosterData]:
    return [
        poster.PosterData(
            venue_id=vid,
            name=f"兰州牛肉拉面 {vid} 号店（张掖路）",
            address=f"城关区张掖路 {vid % 300} 号",
            url=codes.checkin_url(BASE, codes.sign(keyring, vid, 1)),
        )
        for vid in range(1, n + 1)
    ]


def _rate(fmt: str, size: str, data: list[poster.PosterData]) -> tuple[float, float, float]:
    """(posters per CPU second of this process, per wall-clock second, mean bytes a poster). The CPU
    rate is what one process renders on a core of its own; on a shared machine the wall rate is lower."""
    started, cpu = time.perf_counter(), time.process_time()
    total = 0
    for item in data:
        total += len(poster.render(fmt, item, size))
    cpu_s, wall_s = time.process_time() - cpu, time.perf_counter() - started
    return len(data) / cpu_s, len(data) / wall_s, total / len(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--posters", type=int, default=300, help="posters per format")
    parser.add_argument("--no-record", action="store_true", help="print only, write no docs/bench file")
    args = parser.parse_args(argv)
    keyring = Keyring.parse(Keyring.generate(1))
    data = _data(keyring, args.posters)

    started = time.perf_counter()
    poster.render("pdf", data[0], "a4")
    poster.render("png", data[0])
    first_s = time.perf_counter() - started

    png_rate, png_wall, png_bytes = _rate("png", "a4", data)
    pdf_rate, pdf_wall, pdf_bytes = _rate("pdf", "a4", data)
    a3_rate, a3_wall, a3_bytes = _rate("pdf", "a3", data)
    svg_rate, svg_wall, svg_bytes = _rate("svg", "a4", data)
    n = f"{args.posters:,} posters, one process, per CPU second"
    figures = [
        Figure(
            figure="poster PNG, A4 150 dpi (for screens and quick prints)",
            value=png_rate,
            unit="posters/s",
            ratio=1.0,
            note=f"{n} ({png_wall:.1f}/s wall); {png_bytes / 1024:.0f} KiB each",
        ),
        Figure(
            figure="poster PDF A4 for a print shop (vector text, embedded subset CJK font, vector QR)",
            value=pdf_rate,
            unit="posters/s",
            ratio=pdf_rate / png_rate,
            note=f"{n} ({pdf_wall:.1f}/s wall); {pdf_bytes / 1024:.0f} KiB each; ratio = PDF rate / PNG rate",
        ),
        Figure(
            figure="poster PDF A3 (same drawing, larger page)",
            value=a3_rate,
            unit="posters/s",
            ratio=a3_rate / png_rate,
            note=f"{n} ({a3_wall:.1f}/s wall); {a3_bytes / 1024:.0f} KiB each",
        ),
        Figure(
            figure="poster SVG",
            value=svg_rate,
            unit="posters/s",
            ratio=svg_rate / png_rate,
            note=f"{n} ({svg_wall:.1f}/s wall); {svg_bytes / 1024:.0f} KiB each",
        ),
        Figure(
            figure="first poster of a process (reads the CJK font for Pillow and the PDF)",
            value=first_s * 1000,
            unit="ms",
        ),
    ]
    command = f"python -m loadtest.bench_posters --posters {args.posters}"
    if args.no_record:
        for f in figures:
            print(f"{f.figure}: {f.value:,.1f} {f.unit} ({f.note})", file=sys.stderr)
        return 0
    record("posters", command, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
