"""`checkin up` end to end: a private redis-server when CHECKIN_REDIS_URL is closed,
both services healthy, and nothing left running after SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
import redis

from tests.support.processes import running
from tests.support.values import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status)
    except Exception:
        return 0


def test_up_starts_private_redis_and_stops_everything(tmp_path: Path) -> None:
    redis_port, ingest_port, tracing_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "CHECKIN_DATA_DIR": str(tmp_path / "var"),
        "CHECKIN_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "CHECKIN_INGEST_PORT": str(ingest_port),
        "CHECKIN_TRACING_PORT": str(tracing_port),
        "CHECKIN_INGEST_WORKERS": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "checkin.cli", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("ready."):
                break
        output = "".join(lines)
        assert "ready." in output, output
        assert f"private redis-server on 127.0.0.1:{redis_port}" in output
        assert "admin key adm_" in output
        assert _get(f"http://127.0.0.1:{ingest_port}/healthz") == 200
        assert _get(f"http://127.0.0.1:{tracing_port}/healthz") == 200
        assert (tmp_path / "var" / "redis" / "appendonlydir").exists()
        descendants = psutil.Process(proc.pid).children(recursive=True)
        assert any("redis-server" in " ".join(p.cmdline()) for p in descendants)
        # the private server wants the password generated into the secrets file; the data dir is ours only
        data = tmp_path / "var"
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        password = json.loads((data / "secrets.json").read_text())["redis_password"]
        assert len(password) >= 24 and password not in output
        anonymous = redis.Redis(port=redis_port, socket_timeout=2)
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        anonymous.close()
        wrong = redis.Redis(port=redis_port, password="guess", socket_timeout=2)
        with pytest.raises(redis.AuthenticationError):
            wrong.ping()
        wrong.close()
        owner = redis.Redis(port=redis_port, password=password, socket_timeout=2)
        assert owner.ping() is True
        # every write fsynced before it is answered: under everysec Redis answers while it holds
        # its AOF writes back behind a running fsync, and a kill -9 then loses answered check-ins
        assert owner.config_get("appendfsync") == {"appendfsync": "always"}
        owner.close()
        # a command run beside it finds the server through the secrets file, and shows no password
        shown = subprocess.run(
            [sys.executable, "-m", "checkin.cli", "settings"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 0, shown.stderr
        assert password not in shown.stdout and ":***@" in shown.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)

    def alive() -> list[psutil.Process]:
        return [p for p in descendants if running(p)]

    wait_until(lambda: not alive(), timeout=10)
    left = alive()
    assert left == [], [p.cmdline() for p in left]
    assert _get(f"http://127.0.0.1:{ingest_port}/healthz") == 0
