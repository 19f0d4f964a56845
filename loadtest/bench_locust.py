"""Headless Locust run against a real `checkin up`: every user class, zero failures expected.

Starts `checkin up` with its own data dir, ports and Redis key prefix (on
CHECKIN_REDIS_URL, default 127.0.0.1:6379), generates a city, seeds it through
the public API, runs ``checkin loadtest run`` and records the figures; then stops
the system and deletes its Redis keys.

    python loadtest/bench_locust.py [--preset small] [--users 50] [--run-time 60s] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

from loadtest.city import PRESETS, write_city
from loadtest.cli import parse_run_time, read_stats
from loadtest.results import Figure, record

ROOT = Path(__file__).resolve().parent.parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*args: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "checkin.cli", *args],
        env=env,
        cwd=ROOT,
        text=True,
        timeout=timeout,
        stdout=subprocess.PIPE,
        stderr=None,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="headless Locust run against checkin up")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--spawn-rate", type=float, default=10.0)
    parser.add_argument("--run-time", default="60s")
    parser.add_argument("--shape", default="none")
    parser.add_argument("--workers", type=int, default=2, help="ingest worker processes")
    parser.add_argument("--processes", type=int, default=0, help="Locust worker processes")
    args = parser.parse_args(argv)
    run_s = parse_run_time(args.run_time)

    work = Path(tempfile.mkdtemp(prefix="bench-locust-"))
    prefix = f"bench:{uuid.uuid4().hex[:10]}:"
    redis_url = os.environ.get("CHECKIN_REDIS_URL", "redis://127.0.0.1:6379/0")
    ingest_port, tracing_port = _port(), _port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CHECKIN_")},
        "CHECKIN_DATA_DIR": str(work / "var"),
        "CHECKIN_REDIS_URL": redis_url,
        "CHECKIN_KEY_PREFIX": prefix,
        "CHECKIN_ADMIN_KEY": "adm_bench_" + uuid.uuid4().hex,
        "CHECKIN_INGEST_PORT": str(ingest_port),
        "CHECKIN_TRACING_PORT": str(tracing_port),
        "CHECKIN_INGEST_WORKERS": str(args.workers),
        "CHECKIN_PUBLIC_BASE_URL": f"http://127.0.0.1:{ingest_port}",
        "CHECKIN_RATE_IP_PER_MIN": "10000000",
        "CHECKIN_RATE_REGISTER_PER_MIN": "10000000",
    }
    log = (work / "up.log").open("wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "checkin.cli", "up"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 120
        while b"ready." not in (work / "up.log").read_bytes():
            if up.poll() is not None or time.monotonic() > deadline:
                print((work / "up.log").read_text(errors="replace")[-3000:], file=sys.stderr)
                return 1
            time.sleep(0.5)
        started = time.monotonic()
        write_city(PRESETS[args.preset], 1, work / "city", scan_days=0)
        seed_file = work / "seed.json"
        seeded = _cli(
            "loadtest", "seed", "--city", str(work / "city"), "--out", str(seed_file), env=env, timeout=3600
        )
        if seeded.returncode != 0:
            return 1
        seed_s = time.monotonic() - started
        out_dir = work / "runs"
        run_args = [
            "loadtest",
            "run",
            "--seed-file",
            str(seed_file),
            "--users",
            str(args.users),
            "--spawn-rate",
            str(args.spawn_rate),
            "--run-time",
            args.run_time,
            "--shape",
            args.shape,
            "--out",
            str(out_dir),
        ]
        if args.processes:
            run_args += ["--processes", str(args.processes)]
        run = _cli(*run_args, env=env, timeout=run_s + 300)
        print(run.stdout)
        stats = sorted(out_dir.glob("run-*_stats.csv"))
        if not stats:
            return 1
        summary = read_stats(stats[-1].parent / stats[-1].name.removesuffix("_stats.csv"))
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()
        log.close()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
        client.close()
        shutil.rmtree(work, ignore_errors=True)

    by_name = {row["Name"]: row for row in summary.per_name}
    checkins = by_name.get("/v1/checkins", {})
    setup = (
        f"preset {args.preset}, {args.users} users, {args.run_time}, shape {args.shape}, "
        f"{args.workers} ingest workers, Locust and the system on one machine"
    )
    figures = [
        Figure(figure="load test requests", value=summary.rps, unit="req/s", note=setup),
        Figure(
            figure="load test failures",
            value=float(summary.failures),
            unit="requests",
            target="0",
            met=summary.failures == 0,
            note=f"of {summary.requests:,}",
        ),
        Figure(figure="load test p50, all requests", value=summary.median_ms, unit="ms"),
        Figure(figure="load test p95, all requests", value=summary.p95_ms, unit="ms"),
        Figure(figure="load test p99, all requests", value=summary.p99_ms, unit="ms"),
        Figure(figure="check-ins under load", value=float(checkins.get("Requests/s", 0) or 0), unit="req/s"),
        Figure(figure="check-in p95 under load", value=float(checkins.get("95%", 0) or 0), unit="ms"),
        Figure(figure="seeding (generate + import + keys + codes)", value=round(seed_s, 1), unit="s"),
    ]
    command = (
        f"python loadtest/bench_locust.py --preset {args.preset} --users {args.users} "
        f"--run-time {args.run_time} --shape {args.shape} --workers {args.workers}"
    )
    record("locust" if args.shape == "none" else f"locust_{args.shape}", command, figures)
    return 0 if summary.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
