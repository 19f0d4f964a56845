"""Own-visit reads coalesced into one engine query.

On the 51 M-stay history one read costs ~30 ms of engine time and the venue-name lookup ~10 ms more,
almost all of it the engine's cost per query, not per person: 8 persons in one query take ~40 ms, 32
take ~60 ms (loadtest/bench_notices.py measures the served figure). So reads that arrive while a
query runs wait for it and go together in the next one; a read that finds nothing running goes at
once, so an idle service adds no latency. Venue names are kept for :data:`NAMES_TTL_S` (a renamed
venue shows its new name in a resident's list within that time).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable

from tracing.queries import trace
from tracing.storage.store import Store

MAX_BATCH = 64
"""Persons per query: beyond this a query grows with its persons and waiting stops paying."""
GATHER_S = 0.002
"""How long a query waits for reads the server has received but not yet handed to the loop."""
NAMES_TTL_S = 300.0


class VenueNames:
    """Every venue's name, read in one query (:func:`trace.all_venue_names`, ~0.3 s and ~30 MB for the
    reference city's 239,000 venues) and again when older than :data:`NAMES_TTL_S`; a venue added since
    is looked up alone. Random residents' stays touch random venues, so names fetched per batch would
    cost a quarter of the engine's time."""

    def __init__(self) -> None:
        self.known: dict[int, str] = {}
        self.loaded_at = -NAMES_TTL_S

    def __call__(self, store: Store, venue_ids: Iterable[int]) -> dict[int, str]:
        now = time.monotonic()
        if now - self.loaded_at >= NAMES_TTL_S:
            self.known = trace.all_venue_names(store)
            self.loaded_at = now
        ids = set(venue_ids)
        missing = [v for v in ids if v not in self.known]
        if missing:  # a venue not mirrored yet is asked for again next time
            self.known.update(trace.venue_names(store, missing))
        return {v: self.known[v] for v in ids if v in self.known}


class VisitBatcher:
    def __init__(self, store: Store, max_batch: int = MAX_BATCH) -> None:
        self.store = store
        self.max_batch = max_batch
        self.pending: list[tuple[int, int, int, asyncio.Future[list[trace.Visit]]]] = []
        self.task: asyncio.Task[None] | None = None
        self.names = VenueNames()

    async def visits(self, person_id: int, since_ms: int, until_ms: int) -> list[trace.Visit]:
        """The person's stays starting in ``[since, until)``, oldest first."""
        future: asyncio.Future[list[trace.Visit]] = asyncio.get_running_loop().create_future()
        self.pending.append((person_id, since_ms, until_ms, future))
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self.pending:
            await asyncio.sleep(GATHER_S)  # let requests already received reach the queue
            batch, self.pending = self.pending[: self.max_batch], self.pending[self.max_batch :]
            since = min(b[1] for b in batch)
            until = max(b[2] for b in batch)
            persons = sorted({b[0] for b in batch})
            try:
                found = await asyncio.to_thread(
                    trace.visits_of_persons, self.store, persons, since, until, "", self.names
                )
            except Exception as exc:  # each waiting read answers the failure itself
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for person_id, lo, hi, future in batch:
                if not future.done():
                    future.set_result([v for v in found.get(person_id, []) if lo <= v.at_ms < hi])

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task
