"""The stop signal beside a server's own handler: both see SIGTERM, the handler found is put back,
and a signal with its default action (exit) is left alone."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from checkin.platform.stop_signal import StopSignal


@pytest.fixture
def saved_sigterm() -> Iterator[None]:
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)


async def test_a_stop_signal_reaches_the_callbacks_and_the_handler_before_it(saved_sigterm: None) -> None:
    seen: list[str] = []

    def server_handler(signum: int, frame: FrameType | None) -> None:
        seen.append("server")

    signal.signal(signal.SIGTERM, server_handler)
    stop = StopSignal()
    stop.when_stopping(lambda: seen.append("feeds end"))
    assert stop.install(asyncio.get_running_loop())
    signal.raise_signal(signal.SIGTERM)
    for _ in range(50):
        if "feeds end" in seen:
            break
        await asyncio.sleep(0.01)
    assert seen == ["server", "feeds end"]
    stop.when_stopping(lambda: seen.append("late"))  # after the signal: at once
    assert seen[-1] == "late"
    stop.restore()
    assert signal.getsignal(signal.SIGTERM) is server_handler


async def test_a_signal_left_to_its_default_action_is_not_taken_over(saved_sigterm: None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    stop = StopSignal()
    stop.install(asyncio.get_running_loop())
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    stop.restore()


def test_off_the_main_thread_nothing_is_installed() -> None:
    import threading

    results: list[bool] = []
    loop = asyncio.new_event_loop()
    try:
        thread = threading.Thread(target=lambda: results.append(StopSignal().install(loop)))
        thread.start()
        thread.join()
    finally:
        loop.close()
    assert results == [False]
