"""The kill -9 harness: `checkin` commands as real processes, waited on, SIGKILLed mid-work, restarted
and stopped; and the stop of a server started in its own process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
"""The repository root (the commands run from there)."""


def start_cli(*args: str, env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m checkin.cli ARGS`` from the repository root, its output appended to ``log``."""
    return subprocess.Popen(
        [sys.executable, "-m", "checkin.cli", *args],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )


def wait_for(
    proc: subprocess.Popen[bytes], log: Path, done: Callable[[], bool], timeout: float, interval: float
) -> None:
    """Poll ``done`` every ``interval`` seconds; the process must stay alive and ``timeout`` must not
    pass (either failure shows the log)."""
    deadline = time.monotonic() + timeout
    while not done():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(interval)


def kill_9(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL, and reap the process."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def stop(proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    """SIGTERM; the process must exit cleanly (status 0) within ``timeout`` seconds."""
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout) == 0, log.read_text()


@contextmanager
def reaped(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """Kill the process on the way out if it still runs (a failed assertion leaves nothing behind)."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()


def terminate(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within ``timeout`` seconds."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM to the process group of a server started with ``start_new_session=True`` (its
    workers too), then SIGKILL to the group if it has not exited within ``timeout`` seconds."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def running(proc: psutil.Process) -> bool:
    """Still running: not gone, and not a zombie waiting for whoever adopted it to reap it."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
