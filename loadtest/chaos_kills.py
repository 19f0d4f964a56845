"""The chaos run's faults: kill -9 of one process of a running ``checkin up``, the kinds in turn (an
ingest worker, the tracing service, the private redis-server), the process of a kind picked at
random, and how long the system took to answer again."""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

KINDS = ("ingest worker", "tracing service", "redis-server")


@dataclass
class Kill:
    at: float
    """Seconds into the load."""
    kind: str
    pid: int
    back_after_s: float | None = None
    """Until every process of the system answered again; None if it did not within the wait."""


def candidates(launcher: psutil.Process, kind: str) -> list[psutil.Process]:
    """The launcher's processes of one kind, found by their command lines."""
    out: list[psutil.Process] = []
    for child in launcher.children():
        try:
            cmd = " ".join(child.cmdline())
            if kind == "redis-server" and "redis-server" in cmd:
                out.append(child)
            elif kind == "tracing service" and "serve-tracing" in cmd:
                out.append(child)
            elif kind == "ingest worker" and "serve-ingest" in cmd:
                out.extend(w for w in child.children() if "resource_tracker" not in " ".join(w.cmdline()))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return out


def kill_one(launcher: psutil.Process, kind: str, rng: random.Random, at: float) -> Kill | None:
    """kill -9 one process of this kind, ``at`` seconds into the load; None when none runs (one
    still being started again)."""
    procs = candidates(launcher, kind)
    if not procs:
        return None
    victim = rng.choice(procs)
    try:
        os.kill(victim.pid, signal.SIGKILL)
    except ProcessLookupError:
        return None
    return Kill(at, kind, int(victim.pid))


def replaced(launcher: psutil.Process, kill: Kill, workers: int) -> bool:
    """The killed process has a successor: as many of its kind run as before, none of them it."""
    procs = candidates(launcher, kill.kind)
    want = workers if kill.kind == "ingest worker" else 1
    return len(procs) >= want and all(p.pid != kill.pid for p in procs)


def wait_until_back(
    launcher: psutil.Process, kill: Kill, workers: int, healthy: Callable[[], bool], timeout_s: float
) -> float | None:
    """Seconds until the killed process was replaced and ``healthy()`` held (polled every 0.2 s);
    None after ``timeout_s``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if replaced(launcher, kill, workers) and healthy():
            return time.monotonic() - start
        time.sleep(0.2)
    return None
