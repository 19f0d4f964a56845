"""Store reads from the event loop, typed: :func:`in_thread` runs a blocking query in a worker thread
and times it (``trace_query_seconds`` by kind). A failed read raises :class:`StoreUnavailable` (a
:class:`~tracing.storage.store.StoreError` naming the store), which the tracing app answers with 503
(:mod:`tracing.app`): no route turns store errors into HTTP by hand."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from checkin.platform.context import Context
from tracing.storage.store import StoreError

P = ParamSpec("P")
R = TypeVar("R")

QUERY_SECONDS = "trace_query_seconds"


class StoreUnavailable(StoreError):
    """A read an answer needed failed; ``store`` names it in the 503's detail (trace, statistics, stay)."""

    def __init__(self, store: str, cause: StoreError) -> None:
        super().__init__(str(cause), cause.code)
        self.store = store


async def in_thread(ctx: Context, kind: str, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """``fn(*args, **kwargs)`` in a worker thread, timed as a trace query of this ``kind``."""
    start = time.perf_counter()
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except StoreUnavailable:
        raise
    except StoreError as exc:
        raise StoreUnavailable("trace", exc) from exc
    finally:
        ctx.metrics.observe(QUERY_SECONDS, time.perf_counter() - start, kind=kind)


async def read(store_name: str, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """``fn(*args, **kwargs)`` in a worker thread, untimed; a failure names ``store_name`` in the 503."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except StoreUnavailable:
        raise
    except StoreError as exc:
        raise StoreUnavailable(store_name, exc) from exc


async def awaited(store_name: str, pending: Awaitable[R]) -> R:
    """The result of ``pending`` (a read shared with other requests); a failure names ``store_name``."""
    try:
        return await pending
    except StoreUnavailable:
        raise
    except StoreError as exc:
        raise StoreUnavailable(store_name, exc) from exc
