"""``checkin residents import FILE.ndjson``: bulk registration straight into Redis.

Reads the file in chunks of lines, validates and protects each line (keyed id hash,
AES-GCM phone) and writes with pipelined commands (:func:`checkin.residents.service.import_chunk`,
three round trips a chunk). A progress bar with rate and ETA goes to stderr on a terminal and a
summary line always (:mod:`checkin.platform.progress`); bad lines are reported with their line
numbers (the first 20, then a count) and good lines are kept.
Exit code 0 when every line was imported, 1 when some lines were refused, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from checkin.platform.context import Context
from checkin.platform.progress import Progress
from checkin.platform.redis_conn import connect
from checkin.platform.settings import Settings
from checkin.residents.service import LineResult, import_chunk

SHOWN_ERRORS = 20


def _chunks(fh: IO[bytes], size: int) -> Iterator[tuple[list[tuple[int, bytes]], int]]:
    """(chunk of (line number, line), bytes read so far)."""
    chunk: list[tuple[int, bytes]] = []
    number = 0
    for line in fh:
        number += 1
        chunk.append((number, line.rstrip(b"\r\n")))
        if len(chunk) >= size:
            yield chunk, fh.tell()
            chunk = []
    if chunk:
        yield chunk, fh.tell()


async def run_import(settings: Settings, path: Path, chunk_lines: int, stream: IO[str]) -> tuple[int, int]:
    """Import a file; returns (imported lines, refused lines)."""
    client = await connect(settings)
    ctx = Context.build(settings, client, "residents-import")
    size = path.stat().st_size  # noqa: ASYNC240 - one stat call
    progress = Progress("residents import", size, "bytes", stream, in_bytes=True)
    good = bad = 0
    pending: asyncio.Task[list[LineResult]] | None = None

    def account(results: list[LineResult]) -> None:
        nonlocal good, bad
        for r in results:
            if r.error is None:
                good += 1
                continue
            bad += 1
            if bad <= SHOWN_ERRORS:
                progress.note(f"line {r.line}: {r.error}")

    try:
        with path.open("rb") as fh:
            for chunk, done in _chunks(fh, chunk_lines):
                # keep one chunk in flight while the next one is parsed and encrypted
                task = asyncio.create_task(import_chunk(ctx, chunk))
                if pending is not None:
                    account(await pending)
                pending = task
                progress.update(done)
                await asyncio.sleep(0)
            if pending is not None:
                account(await pending)
    finally:
        progress.close()
        hot = ctx.extras.get("hot_redis")
        if hot is not None:
            hot.close()
        await client.aclose()
    progress.update(size)
    progress.finish(good + bad, "lines")
    if bad > SHOWN_ERRORS:
        stream.write(f"... and {bad - SHOWN_ERRORS:,} more refused lines\n")
    return good, bad


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    path = Path(args.file)
    if not path.is_file() or not os.access(path, os.R_OK):
        print(f"error: cannot read {path}", file=sys.stderr)
        return 2
    if args.chunk < 1:
        print("error: --chunk must be at least 1", file=sys.stderr)
        return 2
    try:
        good, bad = asyncio.run(run_import(settings, path, args.chunk, sys.stderr))
    except ConnectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"imported {good:,} residents; {bad:,} lines refused")
    return 1 if bad else 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("residents", help="resident registry bulk jobs")
    sub = p.add_subparsers(dest="residents_command", required=True)
    imp = sub.add_parser(
        "import",
        help='bulk-register residents from NDJSON ({"name", "phone", "id_number"} a line)',
    )
    imp.add_argument("file", help="NDJSON file")
    imp.add_argument("--chunk", type=int, default=5_000, help="lines written per pipelined batch")
    imp.set_defaults(handler=cmd_import)
