"""A store whose next requests fail, for the tests of what the workers do when ClickHouse fails.

The ``store`` fixture is one of these; the product's :class:`tracing.storage.store.Store` has no test
hook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tracing.storage.store import Store, StoreError


def injected_failure() -> Exception:
    return StoreError("injected failure", 999)


class FailingStore(Store):
    """A :class:`Store` whose next ``count`` requests raise (each counted in ``calls`` as made)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fail_next = 0
        self._fail_factory: Callable[[], Exception] = injected_failure

    def fail_next(self, count: int, factory: Callable[[], Exception] = injected_failure) -> None:
        """The next ``count`` requests raise ``factory()`` (by default a StoreError, code 999)."""
        with self._lock:
            self._fail_next = count
            self._fail_factory = factory

    def _run(self, fn: Callable[[], Any]) -> Any:
        with self._lock:
            if self._fail_next > 0:
                self._fail_next -= 1
                self.calls += 1
                raise self._fail_factory()
        return super()._run(fn)
