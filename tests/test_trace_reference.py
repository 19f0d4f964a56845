"""The brute-force reference of DESIGN.md's stay and contact definitions, on a hand-made case (the
reference itself lives in tests/support/trace_world.py)."""

from __future__ import annotations

from tests.support.trace_world import (
    COMMUNITIES,
    HOUR_MS,
    MIN_MS,
    build_world,
    iso,
    reference_contacts,
    reference_exposures,
)


def test_reference_follows_the_definitions_on_a_hand_made_case() -> None:
    base = 1_800_000_000_000
    venues = {7: (60, COMMUNITIES[0]), 8: (60, COMMUNITIES[2])}
    world = build_world(
        base,
        venues,
        [
            (7, [1], base, None),  # i: [0, 60)
            (7, [2], base + 30 * MIN_MS, None),  # q: [30, 90) -> 30 min with i
            (7, [3], base + 50 * MIN_MS, None),  # [50, 110): 10 min with i, 40 min with q's stay
            (8, [2, 4], base + 100 * MIN_MS, 20 * MIN_MS),  # q and 4 together, checked out after 20 min
        ],
    )
    first, second = reference_contacts(world, 1, base, base + 24 * HOUR_MS, 15, 2)
    assert first == [
        {
            "person_id": 2,
            "overlap_seconds": 1800.0,
            "first_contact_at": iso(base + 30 * MIN_MS),
            "venue_ids": [7],
        }
    ]
    assert [(c["person_id"], c["overlap_seconds"], c["via"]) for c in second] == [
        (3, 2400.0, [2]),
        (4, 1200.0, [2]),
    ]
    # an overlap of exactly the minimum qualifies; below it does not
    assert [c["person_id"] for c in reference_contacts(world, 1, base, base + HOUR_MS, 10, 1)[0]] == [2, 3]
    exposures = reference_exposures(world, [(8, base + 119 * MIN_MS, base + 200 * MIN_MS)])
    assert [e["person_id"] for e in exposures] == [2, 4]
    assert (
        reference_exposures(world, [(8, base + 120 * MIN_MS, base + 200 * MIN_MS)]) == []
    )  # checked out at 120
