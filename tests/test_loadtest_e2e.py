"""A 60-second Locust run against a real `checkin up`: seeded through the public API with a
small synthetic city, every user class active, zero failures, and the scans reach ClickHouse."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from loadtest import cli as lt_cli
from loadtest.city import PRESETS, write_city
from loadtest.seed import missing_routes, read_seed
from tests.support.values import ADMIN_KEY, REDIS_URL, free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def _assert_required_routes(settings: Any) -> None:
    """Both apps serve every route the load test calls."""
    from checkin.app import create_app as ingest_app
    from tracing.app import create_app as tracing_app

    missing = missing_routes(ingest_app(settings), tracing_app(settings, workers=()))
    assert missing == [], "the load test needs routes the services do not serve: " + ", ".join(missing)


@dataclass
class System:
    ingest: str
    tracing: str
    env: dict[str, str]


@pytest.fixture
def system(tmp_path: Path, prefix: str, settings: Any) -> Iterator[System]:
    """`checkin up` with its own data dir, ports and key prefix on the shared Redis."""
    _assert_required_routes(settings)
    ingest_port, tracing_port = free_port(), free_port()
    env = {
        **os.environ,
        "CHECKIN_DATA_DIR": str(tmp_path / "var"),
        "CHECKIN_REDIS_URL": REDIS_URL,
        "CHECKIN_KEY_PREFIX": prefix,
        "CHECKIN_ADMIN_KEY": ADMIN_KEY,
        "CHECKIN_INGEST_PORT": str(ingest_port),
        "CHECKIN_TRACING_PORT": str(tracing_port),
        "CHECKIN_INGEST_WORKERS": "1",
        "CHECKIN_PUBLIC_BASE_URL": f"http://127.0.0.1:{ingest_port}",
        # one load generator is one IP: lift the per-IP limits (per-resident limits stay)
        "CHECKIN_RATE_IP_PER_MIN": "1000000",
        "CHECKIN_RATE_REGISTER_PER_MIN": "1000000",
        "CHECKIN_SINK_BATCH_MS": "500",
    }
    for key in ("CHECKIN_CONFIG", "CHECKIN_CLICKHOUSE_DSN", "CHECKIN_CLICKHOUSE_DATABASE", "CHECKIN_KEYRING"):
        env.pop(key, None)
    log = (tmp_path / "up.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "checkin.cli", "up"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
    )
    try:
        ingest, tracing = f"http://127.0.0.1:{ingest_port}", f"http://127.0.0.1:{tracing_port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if b"ready." in (tmp_path / "up.log").read_bytes():
                break
            time.sleep(0.5)
        assert b"ready." in (tmp_path / "up.log").read_bytes(), (tmp_path / "up.log").read_text()[-3000:]
        yield System(ingest, tracing, env)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def test_sixty_second_locust_run_has_zero_failures(system: System, tmp_path: Path) -> None:
    city = tmp_path / "city"
    write_city(PRESETS["small"], 11, city, scan_days=0, progress=False)
    seed_file = tmp_path / "seed.json"
    env = system.env
    seeded = subprocess.run(
        [
            sys.executable,
            "-m",
            "checkin.cli",
            "loadtest",
            "seed",
            "--city",
            str(city),
            "--out",
            str(seed_file),
            "--ingest",
            system.ingest,
            "--tracing",
            system.tracing,
            "--residents-sample",
            "300",
            "--venues-sample",
            "200",
            "--devices",
            "3",
            "--companions",
            "20",
            "--chunk-rows",
            "700",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert seeded.returncode == 0, seeded.stderr[-3000:]
    seed = read_seed(seed_file)
    assert len(seed.residents) == 300 and len(seed.venues) == 200 and len(seed.devices) == 3
    assert sum(1 for r in seed.residents if r.companions) == 20
    assert len({r.person_id for r in seed.residents}) == 300

    out_dir = tmp_path / "runs"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "checkin.cli",
            "loadtest",
            "run",
            "--seed-file",
            str(seed_file),
            "--users",
            "20",
            "--spawn-rate",
            "10",
            "--run-time",
            "60s",
            "--out",
            str(out_dir),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    stats = sorted(out_dir.glob("run-*_stats.csv"))
    assert stats, run.stderr[-3000:]
    summary = lt_cli.read_stats(stats[-1].parent / stats[-1].name.removesuffix("_stats.csv"))
    failures = (stats[-1].parent / stats[-1].name.replace("_stats.csv", "_failures.csv")).read_text()
    assert summary.failures == 0, failures
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert summary.requests > 500, summary
    names = {row["Name"]: int(row["Request Count"]) for row in summary.per_name}
    for name in (
        "/v1/checkins",
        "/v1/checkins/[id]/checkout",
        "/v1/checkins/batch",
        "/v1/sentinel/scans",
        "/v1/venues/[id]/poster.png",
        "/v1/trace/persons/[id]/visits",
        "/v1/alerts",
    ):
        assert names.get(name, 0) > 0, (name, names)

    # the scans went through the streams and the sink into ClickHouse: every check-in request made a
    # stay (companions, offline batches and sentinels add more) except a repeat within 60 s (rare here)
    analyst = {"Authorization": f"Bearer {seed.analyst_key}"}
    expected = int(0.9 * names["/v1/checkins"])
    deadline = time.monotonic() + 30
    total = 0
    while time.monotonic() < deadline:
        resp = httpx.get(f"{system.tracing}/v1/stats/districts", headers=analyst, timeout=30)
        assert resp.status_code == 200, resp.text
        total = sum(int(r["scans"]) for r in resp.json()["rows"])
        if total >= expected:
            break
        time.sleep(1)
    assert total >= expected, (total, names["/v1/checkins"])
