"""Real servers for the tests: the ingest API (granian subprocess, own data dir and key prefix) and the
tracing app (granian subprocess of a test's settings, with chosen background workers)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from checkin.platform.keyring import Keyring
from checkin.platform.settings import Settings
from tests.support.processes import stop_group
from tests.support.values import ADMIN_KEY, REDIS_URL, free_port


@contextmanager
def ingest_server(tmp_path: Path, prefix: str, **extra_env: str) -> Iterator[tuple[str, str, Path]]:
    """Serve the ingest API on a free port with its own data dir and key prefix.

    Yields (base URL, keyring text, log path); the server is stopped on exit.
    """
    port = free_port()
    keyring = Keyring.generate(1)
    env = {
        **os.environ,
        "CHECKIN_DATA_DIR": str(tmp_path / "var"),
        "CHECKIN_REDIS_URL": REDIS_URL,
        "CHECKIN_CLICKHOUSE_DSN": f"chdb://{tmp_path / 'clickhouse'}",
        "CHECKIN_INGEST_PORT": str(port),
        "CHECKIN_KEY_PREFIX": prefix,
        "CHECKIN_ADMIN_KEY": ADMIN_KEY,
        "CHECKIN_KEYRING": keyring,
        "CHECKIN_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        **extra_env,
    }
    log = tmp_path / "ingest.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "checkin.cli", "serve-ingest", "--workers", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ingest server did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)
        yield base, keyring, log
    finally:
        stop_group(proc, timeout=15)


@contextmanager
def ingest_server_of(settings: Settings, log: Path) -> Iterator[str]:
    """Serve the ingest API of ``settings`` (port ``ingest_port``), e.g. beside a
    :func:`tracing_server` of the same settings; yields its base URL, stops it on exit."""
    env = {**os.environ, **settings.to_env()}
    base = f"http://127.0.0.1:{settings.ingest_port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "checkin.cli", "serve-ingest", "--workers", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"ingest server exited:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("ingest server did not become healthy")
            time.sleep(0.1)
        yield base
    finally:
        stop_group(proc, timeout=15)


@contextmanager
def tracing_server(settings: Settings, workers: str, log: Path) -> Iterator[str]:
    """Serve the tracing app of ``settings`` (its own ClickHouse path, port ``tracing_port``) in a
    granian process running the background ``workers``; yields its base URL, stops it on exit."""
    env = {**os.environ, **settings.to_env(), "CHECKIN_TRACING_WORKERS": workers}
    base = f"http://127.0.0.1:{settings.tracing_port}"
    granian = str(Path(sys.executable).with_name("granian"))
    args = ["--interface", "asgi", "--factory", "--host", "127.0.0.1", "--port", str(settings.tracing_port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [granian, *args, "tracing.app:create_app"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"tracing server exited:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("tracing app did not become healthy")
            time.sleep(0.2)
        yield base
    finally:
        stop_group(proc, timeout=20)
