"""Both candidate plans of a contact round (exact key ranges, whole venue-days) against the reference."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.support.trace_world import (
    COMMUNITIES,
    HOUR_MS,
    MIN_MS,
    build_world,
    check_world,
    contacts_api,
    load,
    random_world,
    reference_contacts,
)
from tests.support.values import admin_headers
from tracing.queries import plans
from tracing.storage.store import Store

PLANS = {"key_ranges": 1_000_000, "venue_days": 0}
"""``plans.KEY_RANGES_MAX`` that forces each plan whatever the number of ranges."""


def _midnight_ms(days_ago: int) -> int:
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return int((today - dt.timedelta(days=days_ago)).timestamp()) * 1000


@pytest.fixture(params=sorted(PLANS))
def plan(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(plans, "KEY_RANGES_MAX", PLANS[request.param])
    return str(request.param)


async def test_each_plan_matches_the_reference_on_seeded_worlds(
    plan: str, tracing: AsyncTestClient[Any], store: Store
) -> None:
    compared = 0
    for seed in range(4):
        rng = random.Random(1000 + seed)
        world = random_world(rng, _midnight_ms(3) + 7 * HOUR_MS, n_venues=rng.randrange(2, 6), n_persons=20)
        load(store, world)
        compared += await check_world(tracing, admin_headers(), world, rng, persons=3)
    assert compared > 10


async def test_stays_across_midnight_and_long_checkouts_are_found_by_each_plan(
    plan: str, tracing: AsyncTestClient[Any], store: Store
) -> None:
    midnight = _midnight_ms(2)
    world = build_world(
        midnight - 24 * HOUR_MS,
        {7: (60, COMMUNITIES[0]), 8: (30, COMMUNITIES[1])},
        [
            (7, [1], midnight + 30 * MIN_MS, None),  # i: [00:30, 01:30) of day 2
            # 2 checked in 11 h 1 min earlier, the day before, and checked out 12 h later: 29 min with i
            (7, [2], midnight - 661 * MIN_MS, 12 * HOUR_MS),
            (7, [3], midnight - 20 * MIN_MS, None),  # [23:40, 00:40): 10 min with i, below 15
            (7, [4], midnight + 75 * MIN_MS, None),  # [01:15, 02:15): exactly 15 min with i
            # depth 2 from 2 (first contact at 00:30): 2's later stay at venue 8 across the next midnight
            (8, [2], midnight + 23 * HOUR_MS + 50 * MIN_MS, None),
            (8, [5], midnight + 24 * HOUR_MS + 5 * MIN_MS, None),  # 15 min with 2, the next day
            (7, [6], midnight - 13 * HOUR_MS, 12 * HOUR_MS),  # 2's stay before i's: not an index stay of 2
        ],
    )
    load(store, world)
    since, until = midnight - 24 * HOUR_MS, midnight + 3 * 24 * HOUR_MS
    got = await contacts_api(tracing, admin_headers(), 1, since, until, 15, 2)
    first, second = reference_contacts(world.stays, 1, since, until, 15 * MIN_MS, 2)
    assert got["contacts"] == first and got["second_degree"] == second
    assert [(c["person_id"], c["overlap_seconds"]) for c in first] == [(2, 1740.0), (4, 900.0)]
    assert [(c["person_id"], c["via"]) for c in second] == [(5, [2])]


async def test_a_stay_cut_short_by_its_newer_row_is_judged_by_its_final_end(
    plan: str, tracing: AsyncTestClient[Any], store: Store
) -> None:
    """Candidates ending before an index stay starts are left out of the read by their end, which a
    newer row version changes: the older row's longer end must not bring the stay back."""
    midnight = _midnight_ms(2)
    world = build_world(
        midnight - 24 * HOUR_MS,
        {7: (120, COMMUNITIES[0])},
        [
            (7, [1], midnight + 10 * HOUR_MS, None),  # i: [10:00, 12:00)
            # 2 checked in at 09:00 and out at 09:10: the first row ends at 11:00 (50 min with i), the
            # newer one at 09:10 (none)
            (7, [2], midnight + 9 * HOUR_MS, 10 * MIN_MS),
            (7, [3], midnight + 9 * HOUR_MS + 30 * MIN_MS, None),  # [09:30, 11:30): 90 min with i
        ],
    )
    assert len(world.versions) == 2
    load(store, world)
    since, until = midnight, midnight + 24 * HOUR_MS
    got = await contacts_api(tracing, admin_headers(), 1, since, until, 15, 1)
    assert [(c["person_id"], c["overlap_seconds"]) for c in got["contacts"]] == [(3, 5400.0)]
    assert got["contacts"] == reference_contacts(world.stays, 1, since, until, 15 * MIN_MS, 1)[0]


async def test_without_longest_stays_every_stay_reaches_back_12_hours(
    plan: str, tracing: AsyncTestClient[Any], store: Store
) -> None:
    """Stays recorded where ``longest_stays`` has no row (an incomplete table) are still all found."""
    rng = random.Random(2024)
    world = random_world(rng, _midnight_ms(3) + 7 * HOUR_MS, n_venues=3, n_persons=15)
    load(store, world)
    store.command(f"TRUNCATE TABLE {store.table('longest_stays')}")
    compared = await check_world(tracing, admin_headers(), world, rng, persons=4)
    assert compared > 3


async def test_reach_is_the_longest_stay_at_the_venue_on_the_candidate_days(store: Store) -> None:
    midnight = _midnight_ms(2)
    world = build_world(
        midnight - 24 * HOUR_MS,
        {7: (60, COMMUNITIES[0]), 8: (30, COMMUNITIES[1])},
        [
            (7, [1], midnight + 10 * HOUR_MS, None),
            (7, [2], midnight - 2 * HOUR_MS, 5 * HOUR_MS),  # the day before: 5 h, checked out
            (8, [3], midnight + 10 * HOUR_MS, None),
        ],
    )
    load(store, world)
    stays = plans.index_stays(store, [1, 3], midnight, midnight + 24 * HOUR_MS, "", 12 * HOUR_MS)
    reach = {s.owner: s.reach_ms for s in plans.with_reach(store, stays, 12 * HOUR_MS)}
    assert reach == {1: 5 * HOUR_MS, 3: 30 * MIN_MS}


async def test_index_stays_of_tens_of_thousands_of_persons_pass_in_one_query(store: Store) -> None:
    """The persons travel as CSV text in the query: 80,000 ids are beyond the engine's default 256 KiB."""
    midnight = _midnight_ms(2)
    world = build_world(
        midnight - 24 * HOUR_MS,
        {7: (60, COMMUNITIES[0])},
        [(7, [1], midnight + HOUR_MS, None), (7, [79_999], midnight + 2 * HOUR_MS, None)],
    )
    load(store, world)
    persons = list(range(1, 80_001))
    stays = plans.index_stays(store, persons, midnight, midnight + 24 * HOUR_MS, "", 12 * HOUR_MS)
    assert sorted((s.owner, s.at_ms) for s in stays) == [
        (1, midnight + HOUR_MS),
        (79_999, midnight + 2 * HOUR_MS),
    ]
    assert plans.index_stays(store, [], midnight, midnight + 24 * HOUR_MS, "", 12 * HOUR_MS) == []
