"""Retry policy and clock of the sink: small objects, injectable so tests do not sleep."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

from tracing.storage.store import StoreError

PERMANENT_CODES = frozenset({6, 26, 27, 32, 33, 36, 38, 41, 53, 69, 70, 72, 117, 321, 691})
"""ClickHouse error codes that say "this data cannot be inserted": retrying the same rows cannot help."""


class Clock(Protocol):
    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for ClickHouse writes; entries stay pending in Redis meanwhile."""

    first_delay_s: float = 0.1
    max_delay_s: float = 5.0
    multiplier: float = 2.0
    attempts_after_stop: int = 3
    """Once stopping, give up after this many failed attempts (the entries stay pending)."""

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.max_delay_s, self.first_delay_s * self.multiplier ** max(0, attempt - 1)))

    def is_permanent(self, exc: BaseException) -> bool:
        return isinstance(exc, StoreError) and exc.code in PERMANENT_CODES
