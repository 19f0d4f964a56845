"""`checkin settings` and `checkin status` run in a fresh folder as a newcomer would: they say what
they use, say what they hide, and never write secrets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import redis

from checkin.platform.redis_keys import RedisKeys
from tests.support.values import REDIS_URL


def _checkin(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder)}
    return subprocess.run(
        [sys.executable, "-m", "checkin.cli", *args],
        cwd=folder,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_settings_prints_the_embedded_dsn_and_says_secrets_are_hidden(tmp_path: Path) -> None:
    proc = _checkin(tmp_path, "settings", CHECKIN_ADMIN_KEY="adm_do-not-print-me")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert f"CHECKIN_CLICKHOUSE_DSN=chdb://{tmp_path.resolve() / 'var' / 'clickhouse'}" in lines
    assert any(line.startswith("# secrets hidden:") and "CHECKIN_ADMIN_KEY" in line for line in lines)
    assert "adm_do-not-print-me" not in proc.stdout
    assert not (tmp_path / "var" / "secrets.json").exists()


def test_settings_hides_the_password_of_an_http_dsn(tmp_path: Path) -> None:
    proc = _checkin(tmp_path, "settings", CHECKIN_CLICKHOUSE_DSN="https://reader:s3cret@ch.example:8443/db")
    assert proc.returncode == 0, proc.stderr
    assert "s3cret" not in proc.stdout
    assert "CHECKIN_CLICKHOUSE_DSN=https://reader:***@ch.example:8443/db" in proc.stdout.splitlines()


def test_status_with_nothing_running_says_so_and_creates_no_secrets(tmp_path: Path) -> None:
    proc = _checkin(tmp_path, "status", CHECKIN_REDIS_URL=f"redis://127.0.0.1:{_closed_port()}/0")
    assert proc.returncode == 1
    assert proc.stdout.startswith("nothing is running: no Redis answers at redis://127.0.0.1:")
    assert "checkin up" in proc.stdout
    assert not (tmp_path / "var").exists()


def test_status_against_a_redis_without_our_keys_says_so(tmp_path: Path, prefix: str) -> None:
    proc = _checkin(tmp_path, "status", CHECKIN_REDIS_URL=REDIS_URL, CHECKIN_KEY_PREFIX=prefix)
    assert proc.returncode == 0, proc.stderr
    assert "holds none of this project's keys" in proc.stdout and repr(prefix) in proc.stdout
    assert "shard" not in proc.stdout
    assert not (tmp_path / "var").exists()


def test_status_with_our_keys_prints_the_shard_table(tmp_path: Path, prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.xadd(RedisKeys(prefix, 4).stream(2), {"v": "1"})
        client.xadd(RedisKeys(prefix, 4).stream(2), {"v": "2"})
    finally:
        client.close()
    proc = _checkin(tmp_path, "status", CHECKIN_REDIS_URL=REDIS_URL, CHECKIN_KEY_PREFIX=prefix)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()]
    assert rows[0][:2] == ["shard", "length"]
    assert ["2", "2", "-", "-", "-", "-"] in rows
    assert rows[-1] == ["dead", "letters:", "0"]
    assert not (tmp_path / "var").exists()
