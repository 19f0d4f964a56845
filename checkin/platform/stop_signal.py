"""Knowing that the server was asked to stop while its connections are still open.

granian, like most ASGI servers, runs the lifespan shutdown only after every open response has
ended, so a response that never ends by design (the alerts feed) would hold a stopping service
forever. Responses like that register here and end themselves on SIGTERM or SIGINT; the server then
drains, runs the shutdown hooks and exits.

The server's own handling of those signals goes through the event loop (``loop.add_signal_handler``:
CPython's C handler writes the signal number to the loop's wake-up fd and calls the Python-level
handler, which for the loop is a no-op). A Python-level handler installed beside it is called instead
of that no-op, and the wake-up fd is still written, so the server and this module both see the
signal; the handler found at install time is called too and put back on :meth:`StopSignal.restore`.
A signal nobody handles in Python (the default action, exit) is left alone.
Signals can be handled only in the main thread: elsewhere (an app under a test client) nothing is
installed and stopping is the lifespan shutdown alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger("checkin.platform.stop_signal")

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignal:
    """Callbacks run once, on the event loop, when the process is asked to stop."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[], None]] = []
        self.fired = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: dict[int, Any] = {}

    def when_stopping(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when a stop signal arrives (at once if one already has)."""
        if self.fired:
            callback()
        else:
            self.callbacks.append(callback)

    def install(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Listen for SIGTERM and SIGINT beside the server's own handling; False off the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return False
        self._loop = loop
        for sig in SIGNALS:
            previous = signal.getsignal(sig)
            if not callable(previous):  # nobody handles it in Python: the default (exit) stays
                continue
            self._previous[sig] = previous
            signal.signal(sig, self._on_signal)
        return True

    def restore(self) -> None:
        """Put back the handlers found at :meth:`install`, where this one is still the handler (a
        handler installed later stays, and this one then only passes signals on)."""
        self._loop = None
        for sig, previous in self._previous.items():
            if signal.getsignal(sig) == self._on_signal:
                with contextlib.suppress(ValueError, TypeError):
                    signal.signal(sig, previous)

    def fire(self) -> None:
        if self.fired:
            return
        self.fired = True
        callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("a stop callback failed")

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.fire)
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, frame)
