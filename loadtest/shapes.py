"""Load shapes for the locustfile, picked by ``LOADTEST_SHAPE`` (or ``checkin loadtest run --shape``).

Each shape scales with the common options: ``--users`` is the peak user count,
``--run-time`` the length of the whole curve and ``--spawn-rate`` the ramp.

- ``steady``: ramp to the peak, hold it to the end.
- ``morning-peak``: the 06:00-10:00 morning rush compressed into the run:
  15 % of the peak at the start, the peak at 45 % of the run, back down after.
- ``spike``: 20 % of the peak, then a flash crowd at full peak (spawned within
  about a second) for the middle fifth of the run, then back to 20 %.
"""

from __future__ import annotations

import math
import time
from typing import ClassVar

from locust import LoadTestShape

DEFAULT_USERS = 20
DEFAULT_RUN_TIME_S = 600
DEFAULT_SPAWN_RATE = 10.0


class _Common(LoadTestShape):
    abstract: ClassVar[bool] = True
    use_common_options: ClassVar[bool] = True

    def options(self) -> tuple[int, float, float]:
        """(peak users, run time s, spawn rate) from the command line, with defaults."""
        opts = getattr(getattr(self.runner, "environment", None), "parsed_options", None)
        users = int(getattr(opts, "num_users", 0) or DEFAULT_USERS)
        run_time = float(getattr(opts, "run_time", 0) or DEFAULT_RUN_TIME_S)
        spawn = float(getattr(opts, "spawn_rate", 0) or DEFAULT_SPAWN_RATE)
        return users, run_time, spawn

    def users_at(self, fraction: float, peak: int) -> int:
        raise NotImplementedError

    def tick(self) -> tuple[int, float] | None:
        peak, run_time, spawn = self.options()
        elapsed = time.perf_counter() - self.start_time
        if elapsed >= run_time:
            return None
        return max(1, self.users_at(elapsed / run_time, peak)), spawn


class SteadyShape(_Common):
    abstract: ClassVar[bool] = False

    def users_at(self, fraction: float, peak: int) -> int:
        return peak


class MorningPeakShape(_Common):
    abstract: ClassVar[bool] = False

    def users_at(self, fraction: float, peak: int) -> int:
        return round(peak * (0.15 + 0.85 * math.exp(-0.5 * ((fraction - 0.45) / 0.15) ** 2)))

    def tick(self) -> tuple[int, float] | None:
        base = super().tick()
        if base is None:
            return None
        peak, _run, spawn = self.options()
        return base[0], max(spawn, peak / 10)


class SpikeShape(_Common):
    abstract: ClassVar[bool] = False

    def users_at(self, fraction: float, peak: int) -> int:
        return peak if 0.4 <= fraction < 0.6 else max(1, round(peak * 0.2))

    def tick(self) -> tuple[int, float] | None:
        base = super().tick()
        if base is None:
            return None
        peak, _run, spawn = self.options()
        return base[0], max(spawn, float(peak))


SHAPES: dict[str, type[LoadTestShape]] = {
    "steady": SteadyShape,
    "morning-peak": MorningPeakShape,
    "spike": SpikeShape,
}


def shape_class(name: str) -> type[LoadTestShape] | None:
    """The shape for ``name`` ("" or "none" = no shape: plain --users/--spawn-rate/--run-time)."""
    key = name.strip().lower()
    if key in ("", "none"):
        return None
    try:
        return SHAPES[key]
    except KeyError:
        raise ValueError(f"unknown load shape {name!r}; choose one of none, {', '.join(SHAPES)}") from None
