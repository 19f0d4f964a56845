"""The stream runner without a store: a scripted step and a clock that records the waits it is
asked for instead of sleeping."""

from __future__ import annotations

import asyncio

import pytest
import redis.exceptions

from tracing.streams.retry import RetryPolicy
from tracing.streams.runner import Runner


class SteppedClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    async def wait(self, stop: asyncio.Event, seconds: float) -> None:
        await self.sleep(seconds)


class Scripted:
    """Each round takes the next outcome: an exception to raise, or whether there was work."""

    name = "scripted"

    def __init__(self, stop: asyncio.Event, rounds: list[object], joins: list[object] | None = None) -> None:
        self.stop, self.rounds, self.joins = stop, rounds, joins or [True]
        self.polled = self.joined = 0
        self.set_up = False

    async def setup(self) -> None:
        self.set_up = True

    async def poll(self, stop: asyncio.Event) -> bool:
        self.polled += 1
        outcome = self.rounds.pop(0)
        if not self.rounds:
            self.stop.set()
        if isinstance(outcome, BaseException):
            raise outcome
        return bool(outcome)

    async def join(self, stop: asyncio.Event) -> bool:
        self.joined += 1
        outcome = self.joins.pop(0) if self.joins else True
        if isinstance(outcome, BaseException):
            raise outcome
        return bool(outcome)

    async def close(self) -> None:
        pass


POLICY = RetryPolicy(first_delay_s=0.1, max_delay_s=0.3, attempts_after_stop=3)


async def test_retried_errors_wait_the_policy_and_a_success_resets_it() -> None:
    stop, clock = asyncio.Event(), SteppedClock()
    down = redis.exceptions.ConnectionError("away")
    step = Scripted(stop, [down, down, down, True, down, True])
    errors: list[BaseException] = []
    await Runner(step, POLICY, clock, on_error=errors.append).run(stop)
    assert step.set_up and step.polled == 6 and step.joined == 1
    assert clock.waits == pytest.approx([0.1, 0.2, 0.3, 0.1])
    assert len(errors) == 4


async def test_an_idle_round_waits_on_the_clock_and_a_busy_one_does_not() -> None:
    stop, clock = asyncio.Event(), SteppedClock()
    await Runner(Scripted(stop, [True, False, True]), POLICY, clock, idle_s=1.5).run(stop)
    assert clock.waits == [1.5]


async def test_other_errors_stop_the_runner_unless_it_is_told_to_retry_them() -> None:
    stop = asyncio.Event()
    with pytest.raises(ZeroDivisionError):
        await Runner(Scripted(stop, [ZeroDivisionError(), True]), POLICY, SteppedClock()).run(stop)
    stop, clock = asyncio.Event(), SteppedClock()
    step = Scripted(stop, [ZeroDivisionError(), True])
    await Runner(step, POLICY, clock, any_error=True).run(stop)
    assert step.polled == 2 and clock.waits == [0.1]


async def test_a_failing_last_flush_is_tried_the_policys_attempts_after_stop() -> None:
    stop, clock = asyncio.Event(), SteppedClock()
    step = Scripted(stop, [True], joins=[False, OSError("gone"), True])
    await Runner(step, POLICY, clock).run(stop)
    assert step.joined == 3 and clock.waits == pytest.approx([0.1, 0.2])
    stop, clock = asyncio.Event(), SteppedClock()
    step = Scripted(stop, [True], joins=[False, False, False, True])
    await Runner(step, POLICY, clock).run(stop)
    assert step.joined == 3  # then the held entries stay pending for the next start
