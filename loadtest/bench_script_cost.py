"""Redis's cost of the check-in script, counted in instructions: the same on a busy machine as on an
idle one, so two versions of the script can be compared in one run.

For each source tree given (this one by default; ``--tree`` another checkout, e.g. the commit before
a change), a private ``redis-server`` runs under ``valgrind --tool=callgrind`` and a driver process
that imports that tree's own call builder and script runner sends it check-ins: rounds of single
check-ins (each person once a round, an hour apart) and 500-item batches of one person's queued
scans 61 s apart, newest first (as ``loadtest/bench_ingest.py``'s batch) or, with ``--oldest-first``,
in the order a phone's offline queue sends them. The figures are
instructions of redis-server per check-in and per batch item, the start-up and venue loading taken
out by a run that sends nothing.

    .venv/bin/python -m loadtest.bench_script_cost --tree /path/to/checkout-before --tree .

Needs ``valgrind`` (Debian package) and ``redis-server``. A run takes a few minutes per tree.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DRIVER = r"""
import asyncio, os, random, sys, time
import redis as sync_redis
import redis.asyncio as aioredis
try:  # the call builder and the script runner, wherever the tree keeps them
    from checkin.checkins import calls as build, scripts as run
except ImportError:
    from checkin.checkins import service as build
    run = build
from checkin.platform.context import Context
from checkin.platform.keyring import Keyring
from checkin.platform.settings import load_settings
from venues.model import Venue

port, rounds, persons, batches, oldest_first = (int(x) for x in sys.argv[1:6])
env = {"CHECKIN_KEYRING": Keyring.generate(1), "CHECKIN_REDIS_URL": f"redis://127.0.0.1:{port}/0",
       "CHECKIN_KEY_PREFIX": "bench:script:", "CHECKIN_DATA_DIR": sys.argv[6], "CHECKIN_ADMIN_KEY": "x" * 32}

async def main():
    s = load_settings(env)
    r = aioredis.Redis.from_url(s.redis_url)
    ctx = Context.build(s, r, "bench")
    plain = sync_redis.Redis.from_url(s.redis_url)
    for vid in range(1, 2001):
        v = Venue(venue_id=vid, name=f"V{vid}", district="110105", street="110105001",
                  community="110105001001", lat=39.9, lon=116.4)
        plain.hset(ctx.keys.venue(vid), mapping=v.to_hash())
    await run.load_scripts(ctx)
    scripts = run.scripts(ctx)
    if scripts.hot is not None:
        scripts.hot.timeout_s = 600  # valgrind is slow
    rng = random.Random(7)
    now = int(time.time() * 1000)
    for round_ in range(rounds):
        calls = []
        for pid in range(1, persons + 1):
            vid = rng.randrange(1, 2001)
            call = build.start_call(ctx, ctx.keys.shard_of(vid), now, "", None)
            at = now - (rounds - round_) * 3_600_000 + pid
            build.add_item(ctx, call, build.Item(0, vid, "", at, [pid], "phone"))
            calls.append(call)
        for i in range(0, len(calls), 10):
            await asyncio.gather(*(scripts.run("checkin", c.keys, c.args) for c in calls[i:i + 10]))
    for b in range(batches):
        pid = 100_000 + b
        by_shard = {}
        for i in range(1, 501):
            vid = rng.randrange(1, 2001)
            shard = ctx.keys.shard_of(vid)
            # a tree with call_group runs the items of every shard that share a group in one call
            group = build.call_group(ctx, vid) if hasattr(build, "call_group") else shard
            call = by_shard.get(group)
            if call is None:
                call = by_shard[group] = build.start_call(ctx, shard, now, "b", None)
            step = 501 - i if oldest_first else i
            at = now - 3_600_000 - step * 61_000 - rng.randrange(0, 60_000)
            build.add_item(ctx, call, build.Item(i, vid, "", at, [pid], "batch", client_id=f"b{b}-{i}"))
        await asyncio.gather(*(scripts.run("checkin", c.keys, c.args) for c in by_shard.values()))
    await r.aclose()

asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def instructions(
    tree: Path, rounds: int, persons: int, batches: int, work: Path, oldest_first: bool = False
) -> int:
    """Instructions redis-server ran for this workload (start-up and venue loading included)."""
    port = free_port()
    out = work / f"callgrind.{port}.out"
    server = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            "redis-server",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            # the server's timer runs hz times a second of wall time, and under valgrind a run takes
            # minutes: at the default 10 its work would grow with the machine's load, not the script's
            "--hz",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        driver = work / "driver.py"
        driver.write_text(DRIVER)
        env = {**os.environ, "PYTHONPATH": str(tree)}
        subprocess.run(
            [
                sys.executable,
                str(driver),
                str(port),
                str(rounds),
                str(persons),
                str(batches),
                str(int(oldest_first)),
                str(work / "var"),
            ],
            check=True,
            cwd=tree,
            env=env,
        )
        subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True, check=False)
        server.wait(timeout=120)
    finally:
        if server.poll() is None:
            server.kill()
    text = out.read_text(errors="replace")
    found = re.search(r"^totals:\s*(\d+)", text, re.MULTILINE) or re.search(
        r"^summary:\s*(\d+)", text, re.MULTILINE
    )
    if not found:
        raise SystemExit(f"no instruction total in {out}")
    return int(found.group(1))


def keep_profiles(work: Path, into: Path, tree: Path) -> None:
    """Move this tree's callgrind files to ``into`` (start-up, single check-ins, batch, in order)."""
    into.mkdir(parents=True, exist_ok=True)
    runs = sorted(work.glob("callgrind.*.out"), key=lambda p: p.stat().st_mtime)
    for name, run in zip(("base", "single", "batch"), runs, strict=False):
        run.rename(into / f"{tree.name}.{name}.callgrind")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", type=Path, help="source tree to measure (repeatable)")
    parser.add_argument("--persons", type=int, default=1000, help="persons of each round of single check-ins")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=6, help="500-item batches, one person each")
    parser.add_argument(
        "--oldest-first", action="store_true", help="send each batch's scans oldest first, as a phone does"
    )
    parser.add_argument(
        "--profiles",
        type=Path,
        help="keep each run's callgrind file here (read them with callgrind_annotate)",
    )
    args = parser.parse_args()
    trees = [t.resolve() for t in (args.tree or [ROOT])]
    singles = args.rounds * args.persons
    items = args.batches * 500
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for tree in trees:
            base = instructions(tree, 0, 1, 0, work)
            single = instructions(tree, args.rounds, args.persons, 0, work)
            batch = instructions(tree, 0, 1, args.batches, work, args.oldest_first)
            per_single = (single - base) / singles
            per_item = (batch - base) / items
            results.append((tree, per_single, per_item))
            if args.profiles:
                keep_profiles(work, args.profiles, tree)
            print(
                f"{tree}: {per_single:,.0f} instructions per check-in, {per_item:,.0f} per batch item",
                flush=True,
            )
    if len(results) > 1:
        first = results[0]
        for tree, per_single, per_item in results[1:]:
            ratio_single, ratio_item = per_single / first[1], per_item / first[2]
            print(f"{tree} / {first[0]}: check-in {ratio_single:.2f}x, batch item {ratio_item:.2f}x")


if __name__ == "__main__":
    main()
