"""Waiting on a condition instead of a fixed time: poll it until it holds or a deadline passes; wait
for a rate window with time left."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from checkin.protection import window_now


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (what it answers last)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return condition()
        time.sleep(interval)
    return True


async def eventually(
    condition: Callable[[], Awaitable[bool]], timeout: float = 10.0, interval: float = 0.05
) -> bool:
    """:func:`wait_until` for a condition that is awaited, without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() >= deadline:
            return await condition()
        await asyncio.sleep(interval)
    return True


def _window_left_s() -> int:
    return window_now(int(time.time() * 1000))[1]


def fresh_window() -> int:
    """Now in ms, at least 10 s before the one-minute rate window turns (budgets are counted per
    window): waits for the next window when less is left."""
    left = _window_left_s()
    if left < 10:
        time.sleep(left + 0.2)
    return int(time.time() * 1000)


async def fresh_window_async() -> int:
    """:func:`fresh_window` without blocking the event loop."""
    left = _window_left_s()
    if left < 10:
        await asyncio.sleep(left + 0.2)
    return int(time.time() * 1000)
