"""Waiting on a condition instead of a fixed time: poll it until it holds or a deadline passes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


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
