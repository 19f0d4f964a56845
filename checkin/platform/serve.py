"""Serving a service app with granian (ASGI), the same way for ingest and tracing."""

from __future__ import annotations

from checkin.platform.settings import Settings


def serve(target: str, settings: Settings, port: int, workers: int) -> int:
    """Serve ``module:factory`` until stopped; granian restarts a worker that dies."""
    from granian import Granian
    from granian.constants import Interfaces

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
