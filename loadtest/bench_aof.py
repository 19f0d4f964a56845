"""Redis AOF durability: the cost of ``appendfsync always`` against ``everysec``,
measured side by side in one run, and what a killed redis-server keeps.

Each mode runs on its own private redis-server; writers XADD scan-sized
entries one round trip at a time (as the check-in path does) from several
concurrent connections. After the timed part the server is killed with
SIGKILL mid-stream and restarted: every acknowledged entry must be there.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from checkin.platform.scan_stream import ScanEvent, encode_scan
from loadtest.redis_proc import RedisProcess
from loadtest.results import Figure, record

FIELDS: dict[Any, Any] = encode_scan(
    ScanEvent(
        entry_id="",
        kind="in",
        checkin_id="x" * 20,
        person_id=123456789,
        venue_id=4242,
        at_ms=1764400000000,
        district="620102",
        street="620102001",
        community="620102001001",
        venue_lat=36.06,
        venue_lon=103.83,
        received_ms=1764400000100,
    )
)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _write(url: str, seconds: float, concurrency: int) -> tuple[int, list[Any]]:
    client = aioredis.Redis.from_url(url, max_connections=concurrency)
    acked: list[Any] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            entry_id = await client.xadd("bench:aof", FIELDS)
            acked.append(entry_id)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await client.aclose()
    return len(acked), acked


async def _kill_mid_stream(proc: RedisProcess, concurrency: int) -> tuple[int, int]:
    """Write until SIGKILL hits; return (acknowledged, found after restart)."""
    client = aioredis.Redis.from_url(proc.url, max_connections=concurrency)
    acked: list[Any] = []
    stop = asyncio.Event()

    async def worker() -> None:
        while not stop.is_set():
            try:
                acked.append(await client.xadd("bench:aof:kill", FIELDS))
            except Exception:
                return

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.sleep(1.0)
    proc.kill9()
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    await client.aclose()
    proc.start()
    entries: list[Any] = proc.client().xrange("bench:aof:kill") or []
    survivors = {e for e, _ in entries}
    found = sum(1 for e in acked if e in survivors)
    return len(acked), found


def run(seconds: float, concurrency: int) -> list[Figure]:
    figures: list[Figure] = []
    rates: dict[str, float] = {}
    root = Path(tempfile.mkdtemp(prefix="bench-aof-"))
    try:
        for mode in ("everysec", "always"):
            proc = RedisProcess(_port(), root / mode, appendfsync=mode).start()
            try:
                count, _ = asyncio.run(_write(proc.url, seconds, concurrency))
                rates[mode] = count / seconds
                acked, found = asyncio.run(_kill_mid_stream(proc, concurrency))
                figures.append(
                    Figure(
                        f"redis kill -9, appendfsync {mode}: acknowledged XADDs lost",
                        acked - found,
                        "entries",
                        target="0",
                        met=acked == found,
                        note=f"{acked} acknowledged before SIGKILL",
                    )
                )
            finally:
                proc.stop()
        figures.insert(
            0,
            Figure(
                "XADD rate, appendfsync everysec",
                rates["everysec"],
                "entries/s",
                note=f"{concurrency} connections, one round trip each",
            ),
        )
        figures.insert(
            1,
            Figure(
                "XADD rate, appendfsync always",
                rates["always"],
                "entries/s",
                ratio=rates["always"] / rates["everysec"],
                note="ratio = always / everysec, same run",
            ),
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    record(
        "redis_aof",
        f"python -m loadtest.bench_aof --seconds {args.seconds:g} --concurrency {args.concurrency}",
        run(args.seconds, args.concurrency),
    )


if __name__ == "__main__":
    main()
