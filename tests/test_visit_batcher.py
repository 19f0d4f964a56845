"""Own-visit reads that share one engine query answer exactly what one query per person answers."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from tests.support.trace_world import HOUR_MS, base_ms, load, random_world
from tracing.queries import trace
from tracing.queries.visit_batcher import VisitBatcher
from tracing.storage.store import Store


async def test_concurrent_reads_share_queries_and_match_single_reads(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(11)
    base = base_ms()
    world = random_world(rng, base, n_persons=30, n_checkins=120)
    load(store, world)
    batcher = VisitBatcher(store, max_batch=8)
    queries = 0
    real = trace.visits_of_persons

    def counted(*args: Any, **kw: Any) -> dict[int, list[trace.Visit]]:
        nonlocal queries
        queries += 1
        return real(*args, **kw)

    monkeypatch.setattr(trace, "visits_of_persons", counted)  # counts the real queries
    try:
        asks = [
            (pid, base + rng.randrange(0, 24) * HOUR_MS, base + rng.randrange(24, 40) * HOUR_MS)
            for pid in [*range(1, 31), *range(1, 31)]  # each person twice, with different windows
        ]
        answers = await asyncio.gather(*(batcher.visits(p, lo, hi) for p, lo, hi in asks))
    finally:
        await batcher.close()
    monkeypatch.undo()
    for (pid, lo, hi), got in zip(asks, answers, strict=True):
        expected = trace.visits(store, pid, lo, hi)
        assert [(v.checkin_id, v.at_ms, v.end_ms) for v in got] == [
            (v.checkin_id, v.at_ms, v.end_ms) for v in expected
        ], pid
    assert any(answers), "the world has stays in these windows"
    assert queries <= len(asks) // 8 + 2, queries  # 60 reads in batches of at most 8


async def test_a_failing_query_fails_every_read_of_its_batch(store: Store) -> None:
    batcher = VisitBatcher(store)
    store.command(f"DROP TABLE {store.table('scans_by_person')}")
    try:
        results = await asyncio.gather(*(batcher.visits(p, 0, 1) for p in (1, 2, 3)), return_exceptions=True)
    finally:
        await batcher.close()
    assert all(isinstance(r, Exception) for r in results), results
    assert batcher.pending == []
