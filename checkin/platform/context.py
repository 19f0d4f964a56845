"""What a running service holds: settings, Redis, key names, keyring, metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from litestar.datastructures import State

from checkin.platform.keyring import Keyring
from checkin.platform.metrics import Metrics
from checkin.platform.redis_keys import RedisKeys
from checkin.platform.settings import Settings
from checkin.platform.stop_signal import StopSignal

T = TypeVar("T")


@dataclass
class Context:
    settings: Settings
    redis: Any
    keys: RedisKeys
    keyring: Keyring
    metrics: Metrics
    extras: dict[str, Any] = field(default_factory=dict)
    stop_signal: StopSignal = field(default_factory=StopSignal)
    """Responses that never end by themselves (the alerts feed) end on it; see its module."""

    @classmethod
    def build(cls, settings: Settings, redis: Any, service: str) -> Context:
        return cls(
            settings=settings,
            redis=redis,
            keys=RedisKeys(settings.key_prefix, settings.stream_shards, settings.is_redis_cluster),
            keyring=Keyring.parse(settings.keyring),
            metrics=Metrics(service),
        )

    def shared(self, name: str, make: Callable[[], T]) -> T:
        """The per-service object kept under ``name`` in :attr:`extras`, made on first use."""
        found = self.extras.get(name)
        if found is None:
            found = self.extras[name] = make()
        return found  # type: ignore[no-any-return]


def get_ctx(state: State) -> Context:
    ctx: Context = state["ctx"]
    return ctx
