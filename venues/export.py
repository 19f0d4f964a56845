"""Bulk poster export: every (active) venue's poster or QR code into one ZIP.

Each venue gets the poster its state calls for (:func:`venues.poster.kind_of`): the check-in poster, or
for a venue whose code is on a screen at the door the screen notice, or for a closed venue (with
``include_inactive``) the closed notice. PDFs are A4 or A3 (``size``), vector text and QR code.

Venues are read from Redis in pipelined batches; rendering runs on every core
(a process pool, each worker holding the keyring); the parent writes the ZIP.
The archive is written to ``FILE.zip.partial`` and renamed when complete, so an
interrupted run leaves no truncated archive behind and re-running is safe.
Entries are named ``{district}/{community}/{venue_id}-v{code_version}.{ext}`` (a notice:
``{venue_id}-screen-notice.{ext}``, ``{venue_id}-closed-notice.{ext}``).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checkin.platform.keyring import Keyring
from checkin.platform.redis_keys import RedisKeys
from venues import codes, poster, qr
from venues.model import Venue
from venues.scanned_code import closed_on

CHUNK = 500
READ_BATCH = 5000

Row = tuple[Any, ...]
"""venue_id, code_version, name, address, district, community, and optionally the poster kind
(:data:`venues.poster.KINDS`, default ``checkin``) and the local date a closed venue closed on."""


@dataclass
class ExportResult:
    path: Path
    count: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


def venue_ids(client: Any, keys: RedisKeys, district: str = "") -> list[int]:
    if not district:
        return [int(x) for x in client.zrange(keys.venue_index(), 0, -1)]
    prefix = district.encode()
    communities = client.zrangebylex(keys.venue_communities(), b"[" + prefix, b"[" + prefix + b"\xff")
    pipe = client.pipeline(transaction=False)
    for community in communities:
        pipe.smembers(keys.venue_scope_index(community.decode()))
    ids: set[int] = set()
    for members in pipe.execute() if communities else []:
        ids.update(int(x) for x in members)
    return sorted(ids)


def read_rows(
    client: Any,
    keys: RedisKeys,
    ids: Sequence[int],
    include_inactive: bool = False,
    tz: str = "Asia/Shanghai",
) -> Iterator[Row]:
    for start in range(0, len(ids), READ_BATCH):
        chunk = ids[start : start + READ_BATCH]
        pipe = client.pipeline(transaction=False)
        for vid in chunk:
            pipe.hgetall(keys.venue(vid))
        for vid, raw in zip(chunk, pipe.execute(), strict=True):
            if not raw:
                continue
            venue = Venue.from_hash(vid, raw)
            if venue.active or include_inactive:
                kind = poster.kind_of(venue.active, venue.code_mode)
                yield (
                    vid,
                    venue.code_version,
                    venue.name,
                    venue.address,
                    venue.district,
                    venue.community,
                    kind,
                    closed_on(venue, tz),
                )


# --- worker side -------------------------------------------------------------------

_worker: dict[str, Any] = {}


def _init_worker(keyring_text: str, base_url: str, fmt: str, qr_only: bool, size: str, step_s: int) -> None:
    _worker["keyring"] = Keyring.parse(keyring_text)
    _worker["base_url"] = base_url
    _worker["fmt"] = fmt
    _worker["qr_only"] = qr_only
    _worker["size"] = size
    _worker["step_s"] = step_s


def render_one(
    keyring: Keyring, base_url: str, fmt: str, qr_only: bool, row: Row, size: str = "a4", step_s: int = 30
) -> tuple[str, bytes]:
    venue_id, version, name, address, district, community = row[:6]
    kind: poster.Kind = row[6] if len(row) > 6 else "checkin"
    closed = row[7] if len(row) > 7 else ""
    folder = f"{district}/{community}"
    if kind != "checkin":
        data = poster.PosterData(
            venue_id=venue_id, name=name, address=address, kind=kind, closed_on=closed, step_s=step_s
        )
        return f"{folder}/{venue_id}-{kind}-notice.{fmt}", poster.render(fmt, data, size)
    url = codes.checkin_url(base_url, codes.sign(keyring, venue_id, version))
    arcname = f"{folder}/{venue_id}-v{version}.{fmt}"
    if qr_only:
        matrix = qr.encode(url)
        body = qr.png(matrix) if fmt == "png" else qr.svg(matrix).encode("utf-8")
    else:
        data = poster.PosterData(venue_id=venue_id, name=name, address=address, url=url)
        body = poster.render(fmt, data, size)
    return arcname, body


def _render_chunk(rows: list[Row]) -> list[tuple[str, bytes]]:
    w = _worker
    return [
        render_one(w["keyring"], w["base_url"], w["fmt"], w["qr_only"], row, w["size"], w["step_s"])
        for row in rows
    ]


def _chunks(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --- parent side -----------------------------------------------------------------------


def export_zip(
    rows: Iterator[Row],
    total: int,
    out: Path,
    *,
    keyring_text: str,
    base_url: str,
    fmt: str,
    qr_only: bool = False,
    workers: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
    size: str = "a4",
    step_s: int = 30,
) -> ExportResult:
    """Render every row into ``out`` (atomically); ``workers`` = 0 means every core; ``size`` is the
    paper of a PDF (a4, a3)."""
    if fmt not in poster.FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(poster.FORMATS)}")
    if size not in poster.PAPER_SIZES:
        raise ValueError(f"unknown paper size {size!r}; expected one of {', '.join(poster.PAPER_SIZES)}")
    if qr_only and fmt == "pdf":
        raise ValueError("--qr-only writes png or svg codes; use a poster format for pdf")
    if qr_only:  # a bare code only for venues whose printed code is valid
        rows = (row for row in rows if len(row) <= 6 or row[6] == "checkin")
    workers = workers or os.cpu_count() or 1
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    compression = zipfile.ZIP_DEFLATED if fmt == "svg" else zipfile.ZIP_STORED
    started = time.perf_counter()
    count = 0
    init_args = (keyring_text, base_url, fmt, qr_only, size, step_s)
    try:
        with zipfile.ZipFile(partial, "w", compression=compression, allowZip64=True) as zf:
            stamp = time.localtime()[:6]

            def write(results: list[tuple[str, bytes]]) -> None:
                nonlocal count
                for arcname, body in results:
                    info = zipfile.ZipInfo(arcname, date_time=stamp)
                    info.compress_type = compression
                    zf.writestr(info, body)
                count += len(results)
                if progress is not None:
                    progress(count, total, time.perf_counter() - started)

            if workers == 1:
                _init_worker(*init_args)
                for chunk in _chunks(rows, CHUNK):
                    write(_render_chunk(chunk))
            else:
                ctx = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
                with ctx.Pool(workers, initializer=_init_worker, initargs=init_args) as pool:
                    for results in pool.imap(_render_chunk, _chunks(rows, CHUNK)):
                        write(results)
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return ExportResult(path=out, count=count, seconds=time.perf_counter() - started)
