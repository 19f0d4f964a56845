"""Benchmark: QR-code PNGs for every venue of the city, on every core.

Imports the synthetic city's venues (239,000 for the ``city`` preset) under a
private Redis key prefix, then runs the same export as ``checkin venues posters
--qr-only --format png`` (registry read from Redis, signing, fixed-mask QR
encoding, PNG, ZIP) with a process pool, and records codes per second. A sample
of the archive is decoded with zxing-cpp to check the codes are right. Side
figures on the same machine: one process, the ``qrcode`` package with the same
fixed mask (the ratio is the speed-up of our encoder), and full A4 posters.

Libraries (``--libraries-only`` runs just this part): the project's encoder
(:mod:`venues.qr`) against ``segno`` and zxing-cpp's writer on the same check-in
URLs, level M, PNG of 8 pixels a module with a 4-module quiet zone (every PNG is
checked to have the same side and to decode to its URL with zxing-cpp). Two
figures each: the matrix alone, and matrix + PNG bytes. segno is given the same
fixed mask; zxing-cpp chooses its mask (it has no option for it).

    .venv/bin/python -m loadtest.bench_qr [--preset city] [--workers 0]
    .venv/bin/python -m loadtest.bench_qr --libraries-only [--urls 2000]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import qrcode
import redis
import segno
import zxingcpp
from PIL import Image

from checkin.platform.keyring import Keyring
from checkin.platform.redis_keys import RedisKeys
from loadtest.bench_venue_import import drop_prefix, write_venues_csv
from loadtest.results import Figure, record
from venues import codes, export, importer, poster, qr

TARGET = 2000.0
BASE = "http://127.0.0.1:8000"
SCALE = 8
"""Pixels per module of every PNG compared."""
ADOPT_WITHIN = 1.5
"""A library is adopted when the encoder is less than this many times as fast."""


def _urls(keyring: Keyring, n: int) -> list[str]:
    return [codes.checkin_url(BASE, codes.sign(keyring, vid, 1)) for vid in range(1, n + 1)]


def _ours_matrix(url: str) -> object:
    return qr.encode(url)


def _ours_png(url: str) -> bytes:
    return qr.png(qr.encode(url), scale=SCALE, quiet_zone=qr.QUIET_ZONE)


def _segno_matrix(url: str) -> object:
    return segno.make_qr(url, error="m", mask=qr.DEFAULT_MASK, boost_error=False).matrix


def _segno_png(url: str) -> bytes:
    buf = io.BytesIO()
    code = segno.make_qr(url, error="m", mask=qr.DEFAULT_MASK, boost_error=False)
    code.save(buf, kind="png", scale=SCALE, border=qr.QUIET_ZONE)
    return buf.getvalue()


def _zxing_matrix(url: str) -> object:
    return zxingcpp.create_barcode(url, zxingcpp.BarcodeFormat.QRCode, ec_level="M").to_image(
        scale=1, add_quiet_zones=False
    )


def _zxing_png(url: str) -> bytes:
    """zxing-cpp has no PNG writer: its one-pixel-a-module image, scaled up without smoothing and
    saved by Pillow as a 1-bit PNG (the fastest of the ways tried: scaling in zxing-cpp, or saving
    8-bit gray, are slower)."""
    code = zxingcpp.create_barcode(url, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    small = Image.fromarray(np.asarray(code.to_image(scale=1, add_quiet_zones=True)))
    big = small.resize((small.width * SCALE, small.height * SCALE), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    big.convert("1", dither=Image.Dither.NONE).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


LIBRARIES: dict[str, tuple[Any, Any]] = {
    "venues.qr (project encoder)": (_ours_matrix, _ours_png),
    f"segno {segno.__version__}": (_segno_matrix, _segno_png),
    f"zxing-cpp {getattr(zxingcpp, '__version__', '')} writer".replace("  ", " "): (
        _zxing_matrix,
        _zxing_png,
    ),
}


def _rate(fn: Any, urls: list[str], repeats: int = 3) -> float:
    """Best of ``repeats`` runs, items per second (the machine is shared)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for url in urls:
            fn(url)
        best = min(best, time.perf_counter() - started)
    return len(urls) / best


def _check_png(data: bytes, url: str) -> int:
    """The side of a PNG that decodes to ``url`` (raises otherwise)."""
    image = Image.open(io.BytesIO(data))
    found = zxingcpp.read_barcodes(image)
    if [b.text for b in found] != [url]:
        raise AssertionError(f"PNG does not decode to {url}: {[b.text for b in found]}")
    if image.width != image.height:
        raise AssertionError(f"PNG is not square: {image.size}")
    return int(image.width)


def compare_libraries(keyring: Keyring, n: int) -> list[Figure]:
    """Codes per second of each library on the same ``n`` URLs (matrix; matrix + PNG)."""
    urls = _urls(keyring, n)
    sides = {
        name: {_check_png(png_fn(u), u) for u in urls[:: max(1, n // 50)]}
        for name, (_, png_fn) in LIBRARIES.items()
    }
    if len({frozenset(v) for v in sides.values()}) != 1:
        raise AssertionError(f"PNG sides differ: {sides}")
    side = next(iter(next(iter(sides.values()))))
    rates = {name: (_rate(m, urls), _rate(p, urls)) for name, (m, p) in LIBRARIES.items()}
    ours_matrix, ours_png = rates["venues.qr (project encoder)"]
    figures: list[Figure] = []
    for name, (matrix_rate, png_rate) in rates.items():
        figures.append(
            Figure(
                figure=f"QR matrix, {name}",
                value=matrix_rate,
                unit="codes/s",
                ratio=ours_matrix / matrix_rate,
            )
        )
        figures.append(
            Figure(
                figure=f"QR PNG bytes, {name}",
                value=png_rate,
                unit="codes/s",
                ratio=ours_png / png_rate,
                note=f"{side} x {side} px, level M, {n:,} URLs; ratio = encoder speed / this",
            )
        )
    return figures


def _qrcode_reference(keyring: Keyring, n: int) -> float:
    """Codes per second of the qrcode package (fixed mask, PNG via its Pillow factory)."""
    started = time.perf_counter()
    for vid in range(1, n + 1):
        url = codes.checkin_url(BASE, codes.sign(keyring, vid, 1))
        code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, mask_pattern=qr.DEFAULT_MASK)
        code.add_data(url)
        code.make(fit=True)
        buf = io.BytesIO()
        code.make_image().save(buf)
    return n / (time.perf_counter() - started)


def _posters_per_second(keyring: Keyring, n: int) -> float:
    started = time.perf_counter()
    for vid in range(1, n + 1):
        url = codes.checkin_url(BASE, codes.sign(keyring, vid, 1))
        poster.render(
            "png", poster.PosterData(venue_id=vid, name=f"兰州牛肉面 {vid} 号店", address="城关区", url=url)
        )
    return n / (time.perf_counter() - started)


def _decode_sample(path: Path, keyring: Keyring, sample: int = 50) -> bool:
    import zxingcpp

    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        step = max(1, len(names) // sample)
        for name in names[::step]:
            found = zxingcpp.read_barcodes(Image.open(io.BytesIO(zf.read(name))))
            if len(found) != 1:
                return False
            claims = codes.verify(keyring, found[0].text.rsplit("/", 1)[1])
            if not name.endswith(f"/{claims.venue_id}-v{claims.code_version}.png"):
                return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="city")
    parser.add_argument("--workers", type=int, default=0, help="render processes (0 = every core)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--urls", type=int, default=2000, help="URLs for the library comparison")
    parser.add_argument("--libraries-only", action="store_true", help="only compare the QR libraries")
    args = parser.parse_args(argv)
    workers = args.workers or os.cpu_count() or 1
    keyring = Keyring.parse(Keyring.generate(1))
    libraries = compare_libraries(keyring, args.urls)
    record("qr_libraries", f"python -m loadtest.bench_qr --libraries-only --urls {args.urls}", libraries)
    for f in libraries:
        print(f"{f.figure:<50} {f.value:>10,.0f} {f.unit}  encoder is {f.ratio:.2f}x", file=sys.stderr)
    if args.libraries_only:
        return 0
    client = redis.Redis.from_url(args.redis_url)
    prefix = f"bench:qr:{uuid.uuid4().hex[:8]}:"
    keys = RedisKeys(prefix)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            csv_path = Path(tmp) / "venues.csv"
            rows = write_venues_csv(csv_path, args.preset)
            with csv_path.open("rb") as fh:
                report = importer.import_stream(client, keys, fh)
            print(f"imported {report.created:,} venues in {report.seconds:.1f} s", file=sys.stderr)

            out = Path(tmp) / "codes.zip"
            started = time.perf_counter()
            ids = export.venue_ids(client, keys)
            result = export.export_zip(
                export.read_rows(client, keys, ids),
                len(ids),
                out,
                keyring_text=keyring.serialize(),
                base_url=BASE,
                fmt="png",
                qr_only=True,
                workers=workers,
            )
            total_s = time.perf_counter() - started
            rate = result.count / total_s
            zip_mb = out.stat().st_size / 1e6
            decoded = _decode_sample(out, keyring)

            sample_rows = list(export.read_rows(client, keys, ids[:20_000]))
            started = time.perf_counter()
            one = export.export_zip(
                iter(sample_rows),
                len(sample_rows),
                Path(tmp) / "one.zip",
                keyring_text=keyring.serialize(),
                base_url=BASE,
                fmt="png",
                qr_only=True,
                workers=1,
            )
            one_rate = one.count / (time.perf_counter() - started)
    finally:
        drop_prefix(client, prefix)
        client.close()
    reference = _qrcode_reference(keyring, 1000)
    posters = _posters_per_second(keyring, 50)
    ok = result.count == rows and decoded
    record(
        "qr_export",
        f"python -m loadtest.bench_qr --preset {args.preset} --workers {args.workers}",
        [
            Figure(
                figure=f"QR PNG export of {result.count:,} venues, {workers} processes",
                value=rate,
                unit="codes/s",
                target=f">= {TARGET:,.0f}",
                met=rate >= TARGET and ok,
                note=(
                    f"{total_s:.1f} s end to end from the Redis registry to a {zip_mb:.0f} MB ZIP; "
                    f"sample decoded by zxing-cpp: {decoded}"
                ),
            ),
            Figure(
                figure="QR PNG export, one process",
                value=one_rate,
                unit="codes/s",
                ratio=one_rate / reference,
                note="ratio = speed-up over the qrcode package with the same fixed mask",
            ),
            Figure(figure="qrcode package, fixed mask, PNG (reference)", value=reference, unit="codes/s"),
            Figure(figure="A4 poster PNG with CJK text, one process", value=posters, unit="posters/s"),
        ],
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
