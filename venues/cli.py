"""``checkin venues ...``: CSV import, bulk poster export (``posters``; ``export``: a jurisdiction's PDFs
for a print shop), keyring rotation.

These commands talk to Redis directly (no running service needed).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import msgspec

from checkin.platform.keyring import Keyring, KeyringError
from checkin.platform.progress import Progress
from checkin.platform.redis_conn import sync_client
from checkin.platform.redis_keys import RedisKeys
from checkin.platform.settings import Settings
from venues import csv_rows, export, importer, poster

MAX_PRINTED_ERRORS = 20


def _keys(settings: Settings) -> RedisKeys:
    return RedisKeys(settings.key_prefix, settings.stream_shards, settings.is_redis_cluster)


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    path = Path(args.file)
    if not path.is_file():
        return _error(f"no such file {path}")
    size = path.stat().st_size
    client = sync_client(settings)
    bar = Progress("import", size, "bytes", in_bytes=True)
    try:
        with path.open("rb") as fh:
            report = importer.import_stream(
                client,
                _keys(settings),
                fh,
                strict=args.strict,
                progress=lambda rows, nbytes: bar.update(nbytes),
            )
    except csv_rows.HeaderError as exc:
        return _error(f"{path}: {exc.detail}")
    except (OSError, ConnectionError) as exc:
        return _error(f"{exc}")
    finally:
        bar.close()
        client.close()
    bar.update(size)
    bar.finish(report.rows, "rows")
    rate = report.rows / report.seconds if report.seconds else 0.0
    print(
        f"{report.rows:,} rows in {report.seconds:.1f} s ({rate:,.0f} rows/s): {report.created:,} created, "
        f"{report.updated:,} updated, {report.unchanged:,} unchanged, {report.rejected:,} rejected"
    )
    for err in report.errors[:MAX_PRINTED_ERRORS]:
        print(f"  line {err.line}: {err.reason}", file=sys.stderr)
    if report.rejected > MAX_PRINTED_ERRORS:
        print(f"  ... and {report.rejected - MAX_PRINTED_ERRORS:,} more", file=sys.stderr)
    if args.report:
        Path(args.report).write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2))
    if not report.written:
        print("strict import: nothing was written because of the rejected rows", file=sys.stderr)
    return 1 if report.rejected else 0


def cmd_posters(args: argparse.Namespace, settings: Settings) -> int:
    if args.district and (len(args.district) not in (6, 9, 12) or not args.district.isdigit()):
        return _error(
            f"--district expects a 6-digit district code (or a street/community code), got {args.district!r}"
        )
    if args.qr_only and args.format == "pdf":
        return _error("--qr-only writes png or svg codes; use a poster format for pdf")
    out = Path(args.out)
    if out.suffix.lower() != ".zip":
        return _error(f"--out must name a .zip file, got {out}")
    keys = _keys(settings)
    client = sync_client(settings)
    try:
        ids = export.venue_ids(client, keys, args.district)
        if not ids:
            where = f" in {args.district}" if args.district else ""
            return _error(f"no venues{where} to export")
        with Progress("posters" if not args.qr_only else "codes", len(ids), "files") as bar:
            result = export.export_zip(
                export.read_rows(client, keys, ids, args.include_inactive, settings.tz),
                len(ids),
                out,
                keyring_text=settings.keyring,
                base_url=settings.public_base_url,
                fmt=args.format,
                qr_only=args.qr_only,
                workers=args.workers,
                progress=lambda done, total, _s: bar.update(done),
                size=args.size,
                step_s=settings.rotating_step_s,
            )
            bar.finish()
    except (OSError, ConnectionError) as exc:
        return _error(str(exc))
    finally:
        client.close()
    print(f"{result.count:,} files in {result.seconds:.1f} s ({result.per_second:,.0f}/s) -> {result.path}")
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    """The PDF posters of a jurisdiction, for a print shop: ``venues posters --format pdf`` by another
    name, with the jurisdiction required and the paper size named."""
    if not args.jurisdiction.isdigit() or len(args.jurisdiction) not in (6, 9, 12):
        return _error(
            "--jurisdiction expects a district (6 digits), street (9) or community (12) code, "
            f"got {args.jurisdiction!r}"
        )
    args.district, args.format, args.qr_only = args.jurisdiction, "pdf", False
    return cmd_posters(args, settings)


def cmd_rotate_keyring(args: argparse.Namespace, settings: Settings) -> int:
    from checkin.platform.secrets import save_keyring

    if os.environ.get("CHECKIN_KEYRING"):
        return _error(
            "the keyring comes from CHECKIN_KEYRING; rotate it there by adding a new id:secret pair "
            "with a higher id (old pairs must stay so printed posters keep verifying)"
        )
    try:
        rotated = Keyring.parse(settings.keyring).rotated()
    except KeyringError as exc:
        return _error(str(exc))
    save_keyring(settings.data_path, rotated)
    print(
        f"added key {rotated.active_id} to the keyring in {settings.data_path}; it signs new codes after the "
        f"services restart; keys {', '.join(str(k) for k in sorted(rotated.keys) if k != rotated.active_id)} "
        "still verify existing posters"
    )
    return 0


def register(subparsers: Any) -> None:
    venues = subparsers.add_parser("venues", help="venue registry: CSV import, posters, keyring")
    sub = venues.add_subparsers(dest="venues_command", required=True)

    p = sub.add_parser(
        "import", help="import venues from a CSV file (header: " + ",".join(csv_rows.COLUMNS) + ")"
    )
    p.add_argument("file", help="CSV file")
    p.add_argument("--strict", action="store_true", help="write nothing if any row is bad")
    p.add_argument("--report", help="write the full report (every rejected line) to this JSON file")
    p.set_defaults(handler=cmd_import)

    p = sub.add_parser("posters", help="export posters (or QR codes) of every venue into a ZIP")
    p.add_argument("--out", required=True, help="ZIP file to write")
    p.add_argument("--format", choices=poster.FORMATS, default="png")
    p.add_argument("--district", default="", help="only venues in this district (6-digit code)")
    p.add_argument("--qr-only", action="store_true", help="only the QR code image, not the whole poster")
    p.add_argument("--include-inactive", action="store_true", help="also deactivated venues")
    p.add_argument("--workers", type=int, default=0, help="render processes (default: every core)")
    p.add_argument("--size", choices=poster.PAPER_SIZES, default="a4", help="paper of PDF posters")
    p.set_defaults(handler=cmd_posters)

    p = sub.add_parser(
        "export",
        help="write the PDF posters of a jurisdiction into a ZIP for a print shop (vector text and QR code; "
        "a venue with a door screen gets its screen notice, a closed one its closed notice)",
    )
    p.add_argument(
        "--jurisdiction", required=True, help="district (6 digits), street (9) or community (12) code"
    )
    p.add_argument("--out", required=True, help="ZIP file to write")
    p.add_argument("--size", choices=poster.PAPER_SIZES, default="a4", help="paper size (default a4)")
    p.add_argument("--include-inactive", action="store_true", help="also closed venues (their closed notice)")
    p.add_argument("--workers", type=int, default=0, help="render processes (default: every core)")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("rotate-keyring", help="add a new signing key; old keys keep verifying")
    p.set_defaults(handler=cmd_rotate_keyring)
