"""Serving a service app with granian (ASGI), the same way for ingest and tracing.

A worker never outlives its server: granian stops its workers when it stops, but a worker it
started again after one died was seen still serving after its server had exited (SIGTERM while
the new worker started). Each served worker therefore watches its parent and stops itself once
the parent is gone (:func:`exit_with_parent`, started by the app in a served worker).
"""

from __future__ import annotations

import os
import signal
import threading
import time

from checkin.platform.settings import Settings

SERVED_WORKER_ENV = "CHECKIN_SERVED_WORKER"
"""Set by :func:`serve` for the processes granian starts: the app knows it runs in a served worker."""
PARENT_POLL_S = 1.0


def exit_with_parent(poll_s: float = PARENT_POLL_S) -> threading.Thread:
    """Watch this process's parent and send this process SIGTERM (its normal stop) once the parent is
    gone. A thread polling the parent id: the kernel's parent-death signal fires when the forking
    thread ends, which in granian may be a short-lived one."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread


def serve(target: str, settings: Settings, port: int, workers: int) -> int:
    """Serve ``module:factory`` until stopped; granian restarts a worker that dies."""
    from granian import Granian
    from granian.constants import Interfaces

    os.environ[SERVED_WORKER_ENV] = "1"
    Granian(
        target,
        address=settings.bind,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        factory=True,
        respawn_failed_workers=True,
        log_access=False,
        backlog=2048,
    ).serve()
    return 0
