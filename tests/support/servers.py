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
def served(
    name: str, command: list[str], env: dict[str, str], base: str, log: Path, start_s: float, stop_s: float
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` in its own process group, wait until ``base``/healthz answers 200 (its log in
    the error if it exits or takes longer than ``start_s``), yield the process, and stop the group on
    exit (if it still runs)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + start_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} server exited:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{name} server did not become healthy:\n{log.read_text(errors='replace')}"
                )
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            stop_group(proc, timeout=stop_s)


INGEST_COMMAND = [sys.executable, "-m", "checkin.cli", "serve-ingest", "--workers", "1"]


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
    base = f"http://127.0.0.1:{port}"
    with served("ingest", INGEST_COMMAND, env, base, log, start_s=30, stop_s=15):
        yield base, keyring, log


@contextmanager
def ingest_server_of(settings: Settings, log: Path) -> Iterator[str]:
    """Serve the ingest API of ``settings`` (port ``ingest_port``), e.g. beside a
    :func:`tracing_server` of the same settings; yields its base URL, stops it on exit."""
    env = {**os.environ, **settings.to_env()}
    base = f"http://127.0.0.1:{settings.ingest_port}"
    with served("ingest", INGEST_COMMAND, env, base, log, start_s=30, stop_s=15):
        yield base


@contextmanager
def tracing_process(settings: Settings, workers: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Serve the tracing app of ``settings`` (its own ClickHouse path, port ``tracing_port``) in a
    granian process running the background ``workers``; yields the process, stops it on exit."""
    env = {**os.environ, **settings.to_env(), "CHECKIN_TRACING_WORKERS": workers}
    base = f"http://127.0.0.1:{settings.tracing_port}"
    granian = str(Path(sys.executable).with_name("granian"))
    args = ["--interface", "asgi", "--factory", "--host", "127.0.0.1", "--port", str(settings.tracing_port)]
    command = [granian, *args, "tracing.app:create_app"]
    with served("tracing", command, env, base, log, start_s=60, stop_s=20) as proc:
        yield proc


@contextmanager
def tracing_server(settings: Settings, workers: str, log: Path) -> Iterator[str]:
    """:func:`tracing_process`, yielding its base URL."""
    with tracing_process(settings, workers, log):
        yield f"http://127.0.0.1:{settings.tracing_port}"
