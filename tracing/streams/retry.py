"""One retry policy and one clock for every consumer: small objects, injectable so tests do not sleep.

A consumer keeps a :class:`Backoff` (the policy, a clock, a failure count): after a failure it waits
``policy.delay(failures)``, cut short when the consumer is asked to stop; after a success it resets.
One call repeated in place (an acknowledgement, the last flush at a stop) goes through
:func:`retry_call`, a bounded number of attempts with the policy's delays in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger("tracing.streams.retry")


class Clock(Protocol):
    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    async def wait(self, stop: asyncio.Event, seconds: float) -> None:
        """Sleep ``seconds`` or until ``stop`` is set, whichever comes first."""
        ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait(self, stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)


def never(exc: BaseException) -> bool:
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff; what was being processed stays pending in Redis meanwhile."""

    first_delay_s: float = 0.1
    max_delay_s: float = 5.0
    multiplier: float = 2.0
    attempts_after_stop: int = 3
    """Once stopping, give up after this many failed attempts (the entries stay pending)."""
    call_attempts: int = 5
    """Attempts of one call repeated in place (:func:`retry_call`), e.g. an acknowledgement."""
    permanent: Callable[[BaseException], bool] = field(default=never)
    """Errors that retrying the same input cannot cure (the caller isolates the bad input instead)."""

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.max_delay_s, self.first_delay_s * self.multiplier ** max(0, attempt - 1)))

    def is_permanent(self, exc: BaseException) -> bool:
        return self.permanent(exc)


@dataclass
class Backoff:
    """Failure count of one loop and the pause that follows each failure."""

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    clock: Clock = field(default_factory=SystemClock)
    failures: int = 0

    async def failed(self, stop: asyncio.Event) -> None:
        self.failures += 1
        await self.clock.wait(stop, self.policy.delay(self.failures))

    def succeeded(self) -> None:
        self.failures = 0


async def retry_call(
    call: Callable[[], Awaitable[bool | None]],
    policy: RetryPolicy,
    clock: Clock,
    *,
    attempts: int,
    retry_on: tuple[type[BaseException], ...] = (),
    what: str = "call",
) -> bool:
    """Await ``call`` until it succeeds (returns anything but ``False`` without raising one of
    ``retry_on``), at most ``attempts`` times, pausing ``policy.delay(n)`` after failed attempt n.
    True once it succeeded."""
    for attempt in range(1, attempts + 1):
        try:
            if await call() is not False:
                return True
        except retry_on as exc:
            log.warning("%s failed (%s), attempt %d", what, exc, attempt)
        await clock.sleep(policy.delay(attempt))
    return False
