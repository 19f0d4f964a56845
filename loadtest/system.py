"""The whole system as the long runs drive it: ``checkin up`` on its own data dir, free ports and a
private redis-server, a small city seeded through the public API, stopped as an operator would."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import redis
import redis.asyncio as aioredis

from checkin.launcher import answers
from checkin.platform.redis_conn import with_password
from checkin.platform.redis_keys import RedisKeys
from checkin.platform.secrets import private_redis_password
from loadtest.bench_ingest import free_port
from loadtest.seed import SeedFile, read_seed
from tracing.streams.gauges import stream_stats

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PREFIX = "checkin:"  # the default key prefix: `checkin up` runs on defaults
SHARDS = 4


@dataclass
class System:
    """A running ``checkin up``: its launcher process and where to reach it."""

    work: Path
    env: dict[str, str]
    proc: subprocess.Popen[str]
    ingest: str
    tracing: str
    redis_url: str
    """With the private redis-server's password (from the data dir's secrets file)."""
    admin_key: str
    lines: list[str]
    """What the launcher printed, as it printed it (restarts included)."""

    def healthy(self) -> bool:
        """Both services answer their health check."""
        return all(answers(f"{url}/healthz", 2.0) for url in (self.ingest, self.tracing))

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, socket_timeout=5)


def system_env(work: Path, workers: int, **extra: str) -> dict[str, str]:
    """Environment of a ``checkin up`` on free ports whose Redis URL points at a closed port, so the
    launcher starts (and supervises) its own redis-server under ``work/var``."""
    ingest_port, tracing_port, redis_port = free_port(), free_port(), free_port()
    return {
        **os.environ,
        "CHECKIN_DATA_DIR": str(work / "var"),
        "CHECKIN_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "CHECKIN_INGEST_PORT": str(ingest_port),
        "CHECKIN_TRACING_PORT": str(tracing_port),
        "CHECKIN_INGEST_WORKERS": str(workers),
        "CHECKIN_PUBLIC_BASE_URL": f"http://127.0.0.1:{ingest_port}",
        # the whole load comes from one address and a sample of residents
        "CHECKIN_RATE_IP_PER_MIN": "100000000",
        "CHECKIN_RATE_REGISTER_PER_MIN": "100000000",
        **extra,
    }


def start_system(work: Path, env: dict[str, str], timeout_s: float = 180) -> System:
    proc = subprocess.Popen(
        [PYTHON, "-m", "checkin.cli", "up"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    admin = ""
    lines: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if "admin key" in line:
            admin = line.split("admin key", 1)[1].strip()
        if line.startswith("ready."):
            threading.Thread(target=_keep_reading, args=(proc.stdout, lines), daemon=True).start()
            data = Path(env["CHECKIN_DATA_DIR"])
            return System(
                work=work,
                env=env,
                proc=proc,
                ingest=f"http://127.0.0.1:{env['CHECKIN_INGEST_PORT']}",
                tracing=f"http://127.0.0.1:{env['CHECKIN_TRACING_PORT']}",
                redis_url=with_password(env["CHECKIN_REDIS_URL"], private_redis_password(data)),
                admin_key=admin,
                lines=lines,
            )
    stop_system(proc)
    tail = "\n".join(lines[-20:])
    raise RuntimeError(f"`checkin up` did not become ready; see {work / 'var' / 'logs'}\n{tail}")


def _keep_reading(out: IO[str], lines: list[str]) -> None:
    for line in out:
        lines.append(line.rstrip("\n"))


def stop_system(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def seed_city(
    system: System, venues: int, residents: int, sample: int, companions: int = 100, devices: int = 20
) -> SeedFile:
    """A small city through `checkin loadtest city` + `checkin loadtest seed` (the public API)."""
    city = system.work / "city"
    seed_file = system.work / "seed.json"
    subprocess.run(
        [PYTHON, "-m", "checkin.cli", "loadtest", "city", "--preset", "small", "--venues", str(venues),
         "--residents", str(residents), "--scan-days", "0", "--out", str(city)],
        env=system.env, cwd=ROOT, check=True,
    )  # fmt: skip
    subprocess.run(
        [PYTHON, "-m", "checkin.cli", "loadtest", "seed", "--city", str(city), "--out", str(seed_file),
         "--ingest", system.ingest, "--tracing", system.tracing, "--admin-key", system.admin_key,
         "--residents-sample", str(sample), "--venues-sample", str(sample),
         "--companions", str(companions), "--devices", str(devices)],
        env=system.env, cwd=ROOT, check=True,
    )  # fmt: skip
    return read_seed(seed_file)


def scan_backlog(redis_url: str) -> int:
    """Scans the sink has not written yet (undelivered or unacknowledged), over every shard, read
    as the tracing service's gauges read it."""
    return asyncio.run(_scan_backlog(redis_url))


async def _scan_backlog(redis_url: str) -> int:
    client = aioredis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        shards = await stream_stats(client, RedisKeys(PREFIX, SHARDS))
    finally:
        await client.aclose()
    sink = [g for shard in shards for g in shard.groups.values() if g.group == "sink"]
    return sum(g.pending + (g.lag or 0) for g in sink)
