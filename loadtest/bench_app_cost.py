"""The ingest service's own cost of a check-in, counted in instructions: the same on a busy machine
as on an idle one, so two versions of the app can be compared in one run.

For each source tree given (this one by default; ``--tree`` another checkout, e.g. the commit before
a change), the tree's ingest app is served by granian (one worker) under
``valgrind --tool=callgrind``, against a private ``redis-server`` seeded by the tree's own
``loadtest/bench_ingest.py`` (its venues, residents and tokens). Counting is switched on only
around a ``wrk`` run of ``POST /v1/checkins`` (``callgrind_control -i on`` / ``-i off``), so
start-up and imports are not counted, and the same length of time with nothing sent is counted
on its own and taken out (timers and the event loop's own work, which under valgrind's slowness
would otherwise weigh per request far more than they do at full speed). The figure is the
instructions of the server process (granian, the app, the Redis client; Redis itself is
``loadtest/bench_script_cost.py``'s) per answered check-in. granian runs its single-threaded
runtime here: threads that wait for one another spin for as long as valgrind makes them wait.
``--noop`` adds the bare Litestar no-op app of ``loadtest/noop_app.py`` as a reference.

    .venv/bin/python -m loadtest.bench_app_cost --tree /path/to/checkout-before --tree .

Needs ``valgrind`` (Debian package), ``wrk`` and ``redis-server``. A tree takes a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from loadtest.bench_ingest import CHECKIN_LUA, free_port, granian_command, lua_list, run_wrk, stop, wait_http
from loadtest.redis_proc import RedisProcess

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "bench:appcost:"

SEED = r"""
import asyncio, json, os, sys
from loadtest.bench_ingest import seed
tokens, codes = asyncio.run(seed(dict(os.environ), int(sys.argv[1]), int(sys.argv[2])))
json.dump({"tokens": tokens, "codes": codes}, open(sys.argv[3], "w"))
"""


@dataclass(frozen=True)
class Cost:
    label: str
    instructions: int
    """Counted while check-ins were sent, less a quiet stretch as long (work the server does anyway)."""
    answered: int
    idle: int

    @property
    def per_request(self) -> float:
        return self.instructions / max(1, self.answered)


def _env(tree: Path, redis_url: str, work: Path) -> dict[str, str]:
    from checkin.platform.keyring import Keyring

    return {
        **os.environ,
        "CHECKIN_REDIS_URL": redis_url,
        "CHECKIN_KEY_PREFIX": PREFIX,
        "CHECKIN_DATA_DIR": str(work / "var"),
        "CHECKIN_KEYRING": Keyring.generate(1),
        "CHECKIN_ADMIN_KEY": "bench-admin-key-" + "x" * 16,
        "CHECKIN_RATE_RESIDENT_PER_MIN": "1000000",
        "CHECKIN_RATE_IP_PER_MIN": "100000000",
        "CHECKIN_BACKLOG_LIMIT": "100000000",
        "PYTHONPATH": str(tree),
    }


def _totals(work: Path, dump: int) -> int:
    """Instructions in dump number ``dump`` of every process of the server (threads summed)."""
    total = 0
    for path in work.glob(f"callgrind.out.*.{dump}"):
        text = path.read_text(errors="replace")
        counts = [int(n) for n in re.findall(r"^(?:totals|summary):\s*(\d+)", text, re.MULTILINE)]
        total += max(counts, default=0)
    return total


def _control(pids: list[int], *option: str) -> None:
    for pid in pids:
        subprocess.run(["callgrind_control", *option, str(pid)], check=False, capture_output=True)


def _served(
    target: str, factory: bool, tree: Path, env: dict[str, str], work: Path
) -> subprocess.Popen[bytes]:
    port = int(env["BENCH_PORT"])
    callgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--trace-children=yes"]
    callgrind.append(f"--callgrind-out-file={work}/callgrind.out.%p")
    command = callgrind + granian_command(target, port, 1, factory, "--runtime-mode", "st")
    log = (work / "server.log").open("wb")
    return subprocess.Popen(command, env=env, cwd=tree, stdout=log, stderr=log, start_new_session=True)


def measure(
    label: str, tree: Path, target: str, factory: bool, args: argparse.Namespace, parent: Path
) -> Cost:
    work = Path(tempfile.mkdtemp(prefix="app-cost-", dir=parent))
    rproc = RedisProcess(free_port(), work / "redis").start()
    server: subprocess.Popen[bytes] | None = None
    try:
        env = _env(tree, rproc.url, work)
        seeded = work / "seeded.json"
        subprocess.run(
            [sys.executable, "-c", SEED, str(args.venues), str(args.residents), str(seeded)],
            env=env,
            cwd=tree,
            check=True,
        )
        data = json.loads(seeded.read_text())
        script = work / "checkin.lua"
        script.write_text(lua_list("tokens", data["tokens"]) + lua_list("codes", data["codes"]) + CHECKIN_LUA)
        port = free_port()
        env["BENCH_PORT"] = str(port)
        server = _served(target, factory, tree, env, work)
        wait_http(port, timeout_s=600)
        url = f"http://127.0.0.1:{port}"
        run_wrk(url, script, 5, args.connections)  # warm: the first requests compile and load the scripts
        pids = [server.pid, *_children(server.pid)]
        _control(pids, "-i", "on")
        result = run_wrk(url, script, args.seconds, args.connections)
        _control(pids, "-d")  # dump 1: the check-ins
        time.sleep(result.seconds)
        _control(pids, "-d")  # dump 2: as long again with nothing sent (timers, the loop's own work)
        _control(pids, "-i", "off")
        answered = result.requests - result.non2xx - result.errors
        if result.non2xx or result.errors:
            print(f"{label}: {result.non2xx} non-2xx, {result.errors} socket errors", file=sys.stderr)
        stop(server, timeout_s=120)
        server = None
        loaded, idle = _totals(work, 1), _totals(work, 2)
        if not loaded:
            raise RuntimeError(f"{label}: no callgrind dump (see {work / 'server.log'})")
        return Cost(label, loaded - idle, answered, idle)
    finally:
        if server is not None:
            stop(server, timeout_s=120)
        rproc.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _children(pid: int) -> list[int]:
    import psutil

    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", type=Path, help="a checkout to measure (repeatable)")
    parser.add_argument("--noop", action="store_true", help="also the bare Litestar no-op app")
    parser.add_argument("--seconds", type=int, default=20, help="length of the counted wrk run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--venues", type=int, default=2000)
    parser.add_argument("--residents", type=int, default=5000)
    parser.add_argument("--keep", action="store_true", help="keep the callgrind dumps")
    args = parser.parse_args(argv)
    for tool in ("valgrind", "callgrind_control", "wrk", "redis-server"):
        if shutil.which(tool) is None:
            print(f"error: {tool} is not installed", file=sys.stderr)
            return 2
    trees = [t.resolve() for t in (args.tree or [ROOT])]
    for tree in trees:
        if not (tree / "checkin" / "app.py").exists():
            print(f"error: {tree} is not a checkout of this project", file=sys.stderr)
            return 2
    parent = Path(tempfile.mkdtemp(prefix="bench-app-cost-"))
    costs: list[Cost] = []
    try:
        if args.noop:
            costs.append(measure("no-op", ROOT, "loadtest.noop_app:app", False, args, parent))
            print(f"no-op: {costs[-1].per_request:,.0f} instructions per request", flush=True)
        for tree in trees:
            started = time.monotonic()
            cost = measure(str(tree), tree, "checkin.app:create_app", True, args, parent)
            costs.append(cost)
            print(
                f"{tree}: {cost.per_request:,.0f} instructions per check-in "
                f"({cost.answered:,} answered; {cost.idle:,} instructions in as long a quiet stretch, "
                f"taken out; {time.monotonic() - started:.0f} s)",
                flush=True,
            )
    finally:
        if args.keep:
            print(f"callgrind dumps kept in {parent}", file=sys.stderr)
        else:
            shutil.rmtree(parent, ignore_errors=True)
    apps = [c for c in costs if c.label != "no-op"]
    for cost in apps[1:]:
        print(f"{cost.label} / {apps[0].label}: {cost.per_request / apps[0].per_request:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
