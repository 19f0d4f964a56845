"""A small round's overlaps summed in the service equal the pair-by-pair definition."""

from __future__ import annotations

import random

from tracing.queries.overlaps import Candidate, sum_overlaps
from tracing.queries.stays import IndexStay

MIN_MS = 60_000


def _brute_force(
    stays: list[IndexStay], candidates: list[Candidate], exclude: set[int], min_ms: int
) -> list[tuple[int, int, int, list[int], list[int]]]:
    """Every pair, no index: (person, overlap, first, venues, via) in the contract's order."""
    sums: dict[tuple[int, int], list[int]] = {}
    venues: dict[tuple[int, int], set[int]] = {}
    for person, venue, start, end in candidates:
        for s in stays:
            overlap = min(end, s.end_ms) - max(start, s.at_ms)
            if person in exclude or s.venue_id != venue or overlap <= 0:
                continue
            got = sums.setdefault((person, s.owner), [0, max(start, s.at_ms)])
            got[0] += overlap
            got[1] = min(got[1], max(start, s.at_ms))
            venues.setdefault((person, s.owner), set()).add(venue)
    people: dict[int, tuple[int, int, set[int], list[int]]] = {}
    for (person, owner), (overlap, first) in sums.items():
        if overlap < max(min_ms, 1):
            continue
        o, f, v, via = people.get(person, (0, first, set(), []))
        people[person] = (o + overlap, min(f, first), v | venues[(person, owner)], [*via, owner])
    rows = [(p, o, f, sorted(v), sorted(via)) for p, (o, f, v, via) in people.items()]
    return sorted(rows, key=lambda r: (-r[1], r[0]))


def test_sums_equal_the_definition_with_short_and_long_index_stays_at_one_venue() -> None:
    rng = random.Random(11)
    found = 0
    for _ in range(200):
        stays = []
        for owner in range(1, rng.randrange(2, 5)):
            at = rng.randrange(0, 60) * MIN_MS
            for _ in range(rng.randrange(1, 6)):
                length = rng.choice([1, MIN_MS, 20 * MIN_MS, 3 * 60 * MIN_MS, 12 * 60 * MIN_MS])
                stays.append(IndexStay(owner, rng.choice([7, 8]), at, at + length, 12 * 60 * MIN_MS))
                at += length + rng.choice([0, 0, 5 * MIN_MS])
        candidates: list[Candidate] = []
        for _ in range(rng.randrange(0, 60)):
            start = rng.randrange(-13 * 60, 40 * 60) * MIN_MS + rng.randrange(1000)
            end = start + rng.choice([1, 10 * MIN_MS, 45 * MIN_MS, 12 * 60 * MIN_MS])
            candidates.append((rng.randrange(1, 12), rng.choice([7, 8, 9]), start, end))
        minimum = rng.choice([0, 1, 15 * MIN_MS])
        got = sum_overlaps(stays, candidates, [1], minimum)
        want = _brute_force(stays, candidates, {1}, minimum)
        assert [(c.person_id, c.overlap_ms, c.first_contact_ms, c.venue_ids, c.via) for c in got] == want
        found += len(want)
    assert found > 500
