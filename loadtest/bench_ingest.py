"""Ingest hot-path benchmark: ``POST /v1/checkins`` against a bare Litestar no-op app,
side by side in one run, plus the batch endpoint's scans/s and the resident import rate.

Both apps are served the same way (granian, ASGI, the same worker count) on free ports,
one after the other under the same load generator: ``wrk`` (Debian package ``wrk``, a C
keep-alive HTTP/1.1 client, so the generator takes little of the machine's two cores),
driven by a generated Lua script that sends valid resident tokens, venue codes and
unique client ids. The ingest app uses a private ``redis-server`` (AOF everysec, as
``checkin up`` runs it) on a free port, its own key prefix, and is deleted afterwards.

    .venv/bin/python -m loadtest.bench_ingest            # full run, records docs/bench/ingest.json
    .venv/bin/python -m loadtest.bench_ingest --quick    # short smoke run (not recorded)

Figures: no-op and check-in throughput (and their ratio), check-in p99 latency at the
measured concurrency, batch scans/s, resident import lines/s (CLI path, pipelined).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import redis

from loadtest.redis_proc import RedisProcess

if TYPE_CHECKING:
    from checkin.platform.context import Context
    from checkin.residents.service import Identity
from loadtest.results import Figure, record

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PREFIX = "bench:ingest:"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class WrkResult:
    requests: int
    seconds: float
    non2xx: int
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return (self.requests - self.non2xx - self.errors) / self.seconds


def _ms(text: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s)", text)
    if not match:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def run_wrk(url: str, script: Path, seconds: int, connections: int, threads: int = 2) -> WrkResult:
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "--timeout",
            "5s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    requests = int(re.search(r"(\d+) requests in ([\d.]+)(\w+)", out).group(1))  # type: ignore[union-attr]
    dur = re.search(r"requests in ([\d.]+)(m?s|m)", out)
    seconds_f = float(dur.group(1)) if dur else float(seconds)  # type: ignore[union-attr]
    if dur and dur.group(2) == "ms":
        seconds_f /= 1000
    elif dur and dur.group(2) == "m":
        seconds_f *= 60
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    p50 = re.search(r"\s50%\s+(\S+)", out)
    p99 = re.search(r"\s99%\s+(\S+)", out)
    return WrkResult(
        requests=requests,
        seconds=seconds_f,
        non2xx=int(non2xx.group(1)) if non2xx else 0,
        errors=sum(int(x) for x in errs.groups()) if errs else 0,
        p50_ms=_ms(p50.group(1)) if p50 else float("nan"),
        p99_ms=_ms(p99.group(1)) if p99 else float("nan"),
    )


@dataclass
class CpuPerRequest:
    """CPU microseconds per answered request, by process: the HTTP server (all its workers), Redis, wrk."""

    server_us: float
    redis_us: float
    wrk_us: float


def _cpu_s(pid: int) -> float:
    """CPU seconds of a process and its children still alive."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def measured_wrk(
    url: str, script: Path, seconds: int, connections: int, server_pid: int, redis_pid: int
) -> tuple[WrkResult, CpuPerRequest]:
    """A wrk run, with the CPU each side of it spent per answered request."""
    server0, redis0, own0 = _cpu_s(server_pid), _cpu_s(redis_pid), os.times()
    result = run_wrk(url, script, seconds, connections)
    server1, redis1, own1 = _cpu_s(server_pid), _cpu_s(redis_pid), os.times()
    answered = max(1.0, result.rps * result.seconds)
    wrk_s = (own1.children_user + own1.children_system) - (own0.children_user + own0.children_system)
    return result, CpuPerRequest(
        (server1 - server0) / answered * 1e6, (redis1 - redis0) / answered * 1e6, wrk_s / answered * 1e6
    )


def wait_http(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port}")


def granian_command(target: str, port: int, workers: int, factory: bool, *options: str) -> list[str]:
    """``python -m granian`` serving ``target`` (ASGI) on 127.0.0.1:``port``; ``options`` go before it."""
    cmd = [PYTHON, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", str(workers), "--no-access-log", "--log-level", "warning", *options]
    if factory:
        cmd.append("--factory")
    cmd.append(target)
    return cmd


def granian(
    target: str, port: int, workers: int, env: dict[str, str], factory: bool
) -> subprocess.Popen[bytes]:
    cmd = granian_command(target, port, workers, factory, "--backlog", "2048")
    return subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 10) -> None:
    """SIGTERM to the server's process group, SIGKILL after ``timeout_s``."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


# --- seeding --------------------------------------------------------------------------------------


def lua_list(name: str, values: list[str]) -> str:
    return f"local {name} = {{" + ",".join(json.dumps(v) for v in values) + "}\n"


def wrk_threads_lua(seed_factor: int) -> str:
    """wrk script preamble: numbers the threads (``tid``) and seeds each one's random generator."""
    return WRK_THREADS_LUA.replace("SEED_FACTOR", str(seed_factor))


WRK_THREADS_LUA = """local counter = 0
local tid = 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  math.randomseed(tid * SEED_FACTOR + os.time())
end
"""


CHECKIN_LUA = (
    wrk_threads_lua(7919)
    + """
request = function()
  counter = counter + 1
  local t = tokens[math.random(#tokens)]
  local c = codes[math.random(#codes)]
  local body = '{"code":"' .. c .. '","client_id":"w' .. tid .. '-' .. counter .. '"}'
  return wrk.format("POST", "/v1/checkins", {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. t}, body)
end
"""
)

BATCH_LUA = (
    wrk_threads_lua(104729)
    + """
request = function()
  counter = counter + 1
  local t = tokens[math.random(#tokens)]
  local now = os.time()
  local parts = {}
  for i = 1, ITEMS do
    local c = codes[math.random(#codes)]
    local at = os.date("!%Y-%m-%dT%H:%M:%S", now - 3600 - i * 61 - math.random(0, 60)) .. ".000Z"
    parts[i] = '{"code":"' .. c .. '","scanned_at":"' .. at .. '","client_id":"b' .. tid .. '-'
      .. counter .. '-' .. i .. '"}'
  end
  local body = '{"items":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format("POST", "/v1/checkins/batch", {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. t}, body)
end
"""
)


def bench_identities(ctx: Context, count: int, serial_digits: int) -> list[Identity]:
    """Registry identities of ``count`` synthetic residents (phone ``139`` + number), ready for
    ``claim_persons``; ``serial_digits`` keeps the id numbers of earlier recorded runs."""
    from checkin.platform.persons import id_hash, mask_name, phone_cipher, phone_hash
    from checkin.residents.service import Identity

    cipher = phone_cipher(ctx.keyring)
    idents = []
    for i in range(count):
        idn = f"110105{19700101 + i % 28:08d}{i:0{serial_digits}d}"[:17] + "X"
        idh = id_hash(ctx.keyring, f"{idn}{i}")
        phone = f"139{i:08d}"
        name = f"居民{i}"
        idents.append(
            Identity(name, mask_name(name), cipher.encrypt(phone, idh), idh, phone_hash(ctx.keyring, phone))
        )
    return idents


async def seed(env: dict[str, str], venues: int, residents: int) -> tuple[list[str], list[str]]:
    """Write venues and residents straight into Redis; return (resident tokens, venue codes)."""
    from checkin.platform import resident_tokens
    from checkin.platform.context import Context
    from checkin.platform.redis_conn import connect
    from checkin.platform.settings import load_settings
    from checkin.residents.service import claim_persons
    from venues import codes
    from venues.model import Venue

    settings = load_settings(env)
    client = await connect(settings)
    ctx = Context.build(settings, client, "bench")
    pipe = client.pipeline(transaction=False)
    for vid in range(1, venues + 1):
        venue = Venue(
            venue_id=vid,
            name=f"场所 {vid}",
            district="110105",
            street="110105001",
            community="110105001001",
            lat=39.9,
            lon=116.4,
            requires_negative_test_hours=48 if vid % 10 == 0 else None,
        )
        pipe.hset(ctx.keys.venue(vid), mapping=venue.to_hash())
    await pipe.execute()
    idents = bench_identities(ctx, residents, serial_digits=4)
    tokens: list[str] = []
    ttl = 86400
    for start in range(0, residents, 5000):
        chunk = await claim_persons(ctx, idents[start : start + 5000], update_existing=True)
        for pid, _created in chunk:
            tokens.append(resident_tokens.issue(ctx.keyring, pid, ttl)[0])
    codes_ = [codes.sign(ctx.keyring, vid, 1) for vid in range(1, venues + 1)]
    await client.aclose()
    return tokens, codes_


def bench_import(env: dict[str, str], lines: int, work: Path) -> tuple[float, int]:
    """Import ``lines`` synthetic residents with the CLI; return (seconds, lines)."""
    path = work / "residents.ndjson"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(lines):
            body = f"3201{i % 90 + 10:02d}{19500101 + (i * 7) % 500000:08d}"[:14] + f"{i % 1000:03d}"
            check = "10X98765432"[sum(int(c) * w for c, w in zip(body, weights, strict=True)) % 11]
            fh.write(
                f'{{"name":"居民{i}","phone":"13{i % 10}{(i * 7919) % 100_000_000:08d}",'
                f'"id_number":"{body}{check}"}}\n'
            )
    started = time.perf_counter()
    subprocess.run(
        [PYTHON, "-m", "checkin.cli", "residents", "import", str(path)],
        env=env,
        cwd=ROOT,
        check=True,
    )
    return time.perf_counter() - started, lines


# --- the run --------------------------------------------------------------------------------------


def _launcher_appendfsync() -> str:
    """The AOF fsync policy `checkin up` gives its private redis-server by default."""
    import msgspec

    from checkin.platform.settings import Settings

    field = next(f for f in msgspec.structs.fields(Settings) if f.name == "redis_appendfsync")
    return str(field.default)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20, help="length of each measured wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--venues", type=int, default=2000)
    parser.add_argument("--residents", type=int, default=50_000)
    parser.add_argument("--batch-items", type=int, default=500)
    parser.add_argument("--import-lines", type=int, default=3_850_000)
    parser.add_argument("--quick", action="store_true", help="short smoke run; nothing recorded")
    parser.add_argument(
        "--appendfsync",
        choices=("always", "everysec", "no"),
        default=_launcher_appendfsync(),
        help="the private redis-server's AOF fsync policy (default: what `checkin up` runs)",
    )
    parser.add_argument("--name", default="ingest", help="result file docs/bench/<name>.json")
    parser.add_argument("--skip-import", action="store_true")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("error: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    if args.quick:
        args.seconds, args.residents, args.venues, args.import_lines = 3, 2000, 200, 20_000
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    rproc = RedisProcess(free_port(), work / "redis", appendfsync=args.appendfsync).start()
    from checkin.platform.keyring import Keyring

    env = {
        **os.environ,
        "CHECKIN_REDIS_URL": rproc.url,
        "CHECKIN_KEY_PREFIX": PREFIX,
        "CHECKIN_DATA_DIR": str(work / "var"),
        "CHECKIN_KEYRING": Keyring.generate(1),
        "CHECKIN_ADMIN_KEY": "bench-admin-key",
        "CHECKIN_RATE_RESIDENT_PER_MIN": "1000000",
        "CHECKIN_RATE_IP_PER_MIN": "100000000",
        "CHECKIN_BACKLOG_LIMIT": "100000000",
        "PYTHONPATH": str(ROOT),
    }
    procs: list[subprocess.Popen[bytes]] = []
    figures: list[Figure] = []
    try:
        tokens, codes_ = asyncio.run(seed(env, args.venues, args.residents))
        header = lua_list("tokens", tokens) + lua_list("codes", codes_)
        checkin_script = work / "checkin.lua"
        checkin_script.write_text(header + CHECKIN_LUA)
        batch_script = work / "batch.lua"
        batch_script.write_text(header + f"local ITEMS = {args.batch_items}\n" + BATCH_LUA)
        noop_port, ingest_port = free_port(), free_port()
        procs.append(granian("loadtest.noop_app:app", noop_port, args.workers, env, factory=False))
        procs.append(granian("checkin.app:create_app", ingest_port, args.workers, env, factory=True))
        wait_http(noop_port)
        wait_http(ingest_port)
        time.sleep(1.0)
        noop_url = f"http://127.0.0.1:{noop_port}"
        ingest_url = f"http://127.0.0.1:{ingest_port}"
        # warm up both, then alternate: no-op, ingest, no-op, ingest; keep the better of each pair
        run_wrk(noop_url, checkin_script, 2, args.connections)
        run_wrk(ingest_url, checkin_script, 2, args.connections)
        noops = []
        ingests = []
        noop_proc, ingest_proc = procs
        assert rproc.proc is not None
        redis_pid = rproc.proc.pid
        for _ in range(2):
            noops.append(
                measured_wrk(
                    noop_url, checkin_script, args.seconds, args.connections, noop_proc.pid, redis_pid
                )
            )
            ingests.append(
                measured_wrk(
                    ingest_url, checkin_script, args.seconds, args.connections, ingest_proc.pid, redis_pid
                )
            )
        noop, noop_cpu = max(noops, key=lambda r: r[0].rps)
        ingest, ingest_cpu = max(ingests, key=lambda r: r[0].rps)
        for name, res, cpu in (("noop", noop, noop_cpu), ("ingest", ingest, ingest_cpu)):
            print(
                f"{name}: {res.rps:,.0f} req/s ok, {res.non2xx} non-2xx, {res.errors} socket errors, "
                f"p50 {res.p50_ms:.1f} ms, p99 {res.p99_ms:.1f} ms; CPU per request: server "
                f"{cpu.server_us:.0f} us, redis {cpu.redis_us:.0f} us, wrk {cpu.wrk_us:.0f} us",
                flush=True,
            )
        batch, batch_cpu = measured_wrk(ingest_url, batch_script, args.seconds, 4, ingest_proc.pid, redis_pid)
        scans = batch.rps * args.batch_items
        print(f"batch: {batch.rps:,.1f} req/s ({scans:,.0f} scans/s), p99 {batch.p99_ms:.0f} ms", flush=True)
        client = redis.Redis.from_url(rproc.url)
        entries = sum(int(client.xlen(f"{PREFIX}scans:{{{n}}}")) for n in range(4))
        print(f"stream entries written: {entries:,}", flush=True)
        client.close()
        for proc in procs:
            stop(proc)
        ratio = ingest.rps / noop.rps if noop.rps else 0.0
        redis_item_us = batch_cpu.redis_us / args.batch_items
        figures += [
            Figure(
                "no-op Litestar POST, 2 granian workers", noop.rps, "req/s", note=f"wrk -c{args.connections}"
            ),
            Figure(
                "POST /v1/checkins, 2 granian workers",
                ingest.rps,
                "check-ins/s",
                target=">= 8,000 and >= 0.6 x no-op",
                met=ingest.rps >= 8000 and ratio >= 0.6,
                ratio=ratio,
                note=f"wrk -c{args.connections}, {ingest.non2xx} non-2xx",
            ),
            Figure(
                "POST /v1/checkins p99 latency",
                ingest.p99_ms,
                "ms",
                target="< 50 ms",
                met=ingest.p99_ms < 50,
                note=f"at saturation, {args.connections} connections; p50 {ingest.p50_ms:.1f} ms",
            ),
            Figure(
                "POST /v1/checkins/batch",
                scans,
                "scans/s",
                target=">= 50,000",
                met=scans >= 50_000,
                note=f"{args.batch_items} items a request, 4 connections, p99 {batch.p99_ms:.0f} ms",
            ),
            Figure(
                "CPU per no-op request: granian + app",
                noop_cpu.server_us,
                "us",
                note=f"same run; wrk {noop_cpu.wrk_us:.0f} us",
            ),
            Figure(
                "CPU per check-in: granian + app",
                ingest_cpu.server_us,
                "us",
                note=f"same run; redis-server {ingest_cpu.redis_us:.0f} us, wrk {ingest_cpu.wrk_us:.0f} us",
            ),
            Figure(
                "CPU per batch item: redis-server",
                redis_item_us,
                "us",
                note=f"granian + app {batch_cpu.server_us / args.batch_items:.1f} us per item; "
                f"one Redis core caps batches at ~{1e6 / max(redis_item_us, 1e-9):,.0f} items/s",
            ),
        ]
        if not args.skip_import:
            seconds, lines = bench_import(env, args.import_lines, work)
            rate = lines / seconds
            full = 3_850_000 / rate
            figures.append(
                Figure(
                    "checkin residents import (NDJSON, pipelined)",
                    rate,
                    "residents/s",
                    target="3.85 M in < 300 s",
                    met=full < 300,
                    note=f"{lines:,} lines in {seconds:.0f} s; 3.85 M would take {full:.0f} s",
                )
            )
    finally:
        for proc in procs:
            stop(proc)
        rproc.stop()
        shutil.rmtree(work, ignore_errors=True)
    if args.quick:
        for f in figures:
            print(f"{f.figure}: {f.value:,.1f} {f.unit}" + (f" ratio {f.ratio:.2f}" if f.ratio else ""))
        return 0
    command = " ".join(["python -m loadtest.bench_ingest", *(argv if argv is not None else sys.argv[1:])])
    record(args.name, command, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
