"""The one stream runner: every tracing worker is a step that this loop drives.

A consumer is built in one factory function (``(ctx, store) -> Runner``), as arroyo builds its
strategies: the step (what reads a group, decodes, hands a batch on and acknowledges only once it
landed), the retry policy and clock, and the dead-letter policy the step was given. The runner
then does the same for every worker:

* ``setup`` once (create the consumer groups);
* ``poll`` until ``stop`` is set: one round of work (read, decode, write, ack). An error the
  runner is told to retry (``retry_on``: Redis away, ClickHouse refusing) waits
  ``policy.delay(n)`` on the clock, cut short by ``stop``; the step keeps what it holds
  (unacknowledged entries stay pending in Redis) and the next round retries it. A step that
  found nothing to do waits ``idle_s`` on the same clock;
* ``join`` once stopping: the step flushes what it holds; a flush that fails is repeated
  ``policy.attempts_after_stop`` times, then the entries stay pending for the next start.

Nothing here sleeps on its own: every wait goes through the injected clock, so tests step it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis import exceptions as redis_errors

from checkin.platform.context import Context
from tracing.storage.store import Store
from tracing.streams.retry import Backoff, Clock, RetryPolicy, SystemClock, retry_call

log = logging.getLogger("tracing.streams.runner")

REDIS_ERRORS: tuple[type[BaseException], ...] = (redis_errors.RedisError, OSError)
"""What every step retries: Redis away or a connection dropped."""


class Step(Protocol):
    """One worker's work, driven by :class:`Runner`."""

    @property
    def name(self) -> str: ...

    async def setup(self) -> None:
        """Before the first round (create the consumer groups)."""
        ...

    async def poll(self, stop: asyncio.Event) -> bool:
        """One round of work; True when there was some (False: the runner waits ``idle_s``)."""
        ...

    async def join(self, stop: asyncio.Event) -> bool:
        """Flush what the step holds (stopping); False when the flush failed and may be retried."""
        ...

    async def close(self) -> None: ...


@dataclass
class Runner:
    step: Step
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    clock: Clock = field(default_factory=SystemClock)
    retry_on: tuple[type[BaseException], ...] = REDIS_ERRORS
    """Errors of a round that are waited out with the policy and retried."""
    any_error: bool = False
    """Also log and retry any other error (a worker that must never stop for good)."""
    idle_s: float = 0.0
    """Wait after a round that found nothing (a step that does not block on a read)."""
    on_error: Callable[[BaseException], None] | None = None
    """Called with each retried error (a counter)."""
    backoff: Backoff = field(init=False)

    def __post_init__(self) -> None:
        self.backoff = Backoff(self.policy, self.clock)

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until ``stop`` is set, then the step's last flush; the step stays open."""
        await self.step.setup()
        try:
            while not stop.is_set():
                try:
                    busy = await self.step.poll(stop)
                except self.retry_on as exc:
                    self._failed(exc)
                    await self.backoff.failed(stop)
                    continue
                except Exception as exc:
                    if not self.any_error:
                        raise
                    log.exception("%s: unexpected error; retrying", self.step.name)
                    self._failed(exc, logged=True)
                    await self.backoff.failed(stop)
                    continue
                self.backoff.succeeded()
                if not busy and self.idle_s > 0:
                    await self.clock.wait(stop, self.idle_s)
        finally:
            await retry_call(
                lambda: self.step.join(stop),
                self.policy,
                self.clock,
                attempts=self.policy.attempts_after_stop,
                retry_on=self.retry_on,
                what=f"{self.step.name}: the last flush",
            )

    def _failed(self, exc: BaseException, logged: bool = False) -> None:
        if not logged:
            log.warning("%s: %s (%s); retrying", self.step.name, type(exc).__name__, exc)
        if self.on_error is not None:
            self.on_error(exc)


Factory = Callable[[Context, Store], Runner]
"""Builds one consumer: its step with the retry and dead-letter policies handed in."""
Worker = Callable[[Context, Store, asyncio.Event], Coroutine[Any, Any, None]]
"""``run(ctx, store, stop)``, what :mod:`tracing.workers` starts and stops."""


def served(*factories: Factory) -> Worker:
    """A worker running the runners the factories build side by side, until ``stop``."""

    async def run(ctx: Context, store: Store, stop: asyncio.Event) -> None:
        runners = [factory(ctx, store) for factory in factories]
        try:
            results = await asyncio.gather(*(r.run(stop) for r in runners), return_exceptions=True)
        finally:
            for runner in runners:
                await runner.step.close()
        failed = [r for r in results if isinstance(r, BaseException)]
        for extra in failed[1:]:
            log.error("worker step failed", exc_info=extra)
        if failed:
            raise failed[0]

    return run
