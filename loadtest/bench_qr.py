"""Benchmark: QR-code PNGs for every venue of the city, on every core.

Imports the synthetic city's venues (239,000 for the ``city`` preset) under a
private Redis key prefix, then runs the same export as ``checkin venues posters
--qr-only --format png`` (registry read from Redis, signing, fixed-mask QR
encoding, PNG, ZIP) with a process pool, and records codes per second. A sample
of the archive is decoded with zxing-cpp to check the codes are right. Side
figures on the same machine: one process, the ``qrcode`` package with the same
fixed mask (the ratio is the speed-up of our encoder), and full A4 posters.

    .venv/bin/python -m loadtest.bench_qr [--preset city] [--workers 0]
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

import qrcode
import redis
from PIL import Image

from checkin.platform.keyring import Keyring
from checkin.platform.redis_keys import RedisKeys
from loadtest.bench_venue_import import drop_prefix, write_venues_csv
from loadtest.results import Figure, record
from venues import codes, export, importer, poster, qr

TARGET = 2000.0
BASE = "http://127.0.0.1:8000"


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
    args = parser.parse_args(argv)
    workers = args.workers or os.cpu_count() or 1
    keyring = Keyring.parse(Keyring.generate(1))
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
