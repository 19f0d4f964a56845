"""The brute-force reference of DESIGN.md's stay and contact definitions, on hand-made cases (the
reference itself lives in tests/support/trace_world.py)."""

from __future__ import annotations

import random

import pytest

from tests.support.trace_world import (
    COMMUNITIES,
    HOUR_MS,
    MIN_MS,
    Checkin,
    Stay,
    build_world,
    iso,
    reference_contacts,
    reference_exposures,
    reference_stays,
    reference_visits,
)

BASE = 1_800_000_000_000
M = MIN_MS


def test_reference_follows_the_definitions_on_a_hand_made_case() -> None:
    base = BASE
    venues = {7: (60, COMMUNITIES[0]), 8: (60, COMMUNITIES[2])}
    world = build_world(
        base,
        venues,
        [
            (7, [1], base, None),  # i: [0, 60)
            (7, [2], base + 30 * M, None),  # q: [30, 90) -> 30 min with i
            (7, [3], base + 50 * M, None),  # [50, 110): 10 min with i, 40 min with q's stay
            (8, [2, 4], base + 100 * M, 20 * M),  # q and 4 together, checked out after 20 min
        ],
    )
    first, second = reference_contacts(world.stays, 1, base, base + 24 * HOUR_MS, 15 * M, 2)
    assert first == [
        {
            "person_id": 2,
            "overlap_seconds": 1800.0,
            "first_contact_at": iso(base + 30 * M),
            "venue_ids": [7],
        }
    ]
    assert [(c["person_id"], c["overlap_seconds"], c["via"]) for c in second] == [
        (3, 2400.0, [2]),
        (4, 1200.0, [2]),
    ]
    # an overlap of exactly the minimum qualifies; below it does not
    assert [c["person_id"] for c in reference_contacts(world.stays, 1, base, base + HOUR_MS, 10 * M)[0]] == [
        2,
        3,
    ]
    exposures = reference_exposures(world.stays, [(8, base + 119 * M, base + 200 * M)])
    assert [e["person_id"] for e in exposures] == [2, 4]
    assert reference_exposures(world.stays, [(8, base + 120 * M, base + 200 * M)]) == []  # checked out at 120


def test_a_stay_ends_at_the_persons_next_stay_whatever_the_order_of_the_checkins() -> None:
    checkins = [
        Checkin("a", 1, 7, BASE, 60 * M),  # cut at 20 by the stay at 8
        Checkin("b", 1, 8, BASE + 20 * M, 60 * M, BASE + 30 * M),  # checked out at 30, before the next
        Checkin("c", 1, 7, BASE + 40 * M, 60 * M, BASE + 5 * HOUR_MS),  # check-out at 5 h, cut at 50
        Checkin("d", 1, 7, BASE + 50 * M, 60 * M),  # natural end at 110
        ("e", 2, 7, BASE + 10 * M, 60 * M, None),  # another person: not cut by 1's stays
    ]
    want = [
        Stay("a", 1, 7, BASE, BASE + 20 * M, ended_by="next_stay"),
        Stay("b", 1, 8, BASE + 20 * M, BASE + 30 * M, ended_by="checkout"),
        Stay("c", 1, 7, BASE + 40 * M, BASE + 50 * M, ended_by="next_stay"),
        Stay("d", 1, 7, BASE + 50 * M, BASE + 110 * M, ended_by="natural"),
        Stay("e", 2, 7, BASE + 10 * M, BASE + 70 * M, ended_by="natural"),
    ]
    assert reference_stays(checkins) == want
    for seed in range(5):  # a late upload is the same set of check-ins
        shuffled = list(checkins)
        random.Random(seed).shuffle(shuffled)
        assert reference_stays(shuffled) == want
    # a next stay starting exactly at the natural end does not cut it
    assert reference_stays([("x", 3, 7, BASE, 60 * M, None), ("y", 3, 8, BASE + 60 * M, 60 * M, None)])[
        0
    ] == Stay("x", 3, 7, BASE, BASE + 60 * M, ended_by="natural")
    # a check-out is an instant, not an offset
    with pytest.raises(ValueError):
        reference_stays([("z", 3, 7, BASE, 60 * M, 30 * M)])
    assert reference_visits(reference_stays(checkins), 1, BASE + 20 * M, BASE + 41 * M) == [
        {
            "checkin_id": "b",
            "venue_id": 8,
            "at": iso(BASE + 20 * M),
            "end_at": iso(BASE + 30 * M),
            "checked_out": True,
        },
        {
            "checkin_id": "c",
            "venue_id": 7,
            "at": iso(BASE + 40 * M),
            "end_at": iso(BASE + 50 * M),
            "checked_out": False,
        },
    ]


def test_overlaps_add_up_over_the_window() -> None:
    """Two 10-minute overlaps of one pair make a 20-minute contact; neither alone would reach 15."""
    world = build_world(
        BASE,
        {7: (60, COMMUNITIES[0]), 8: (60, COMMUNITIES[0])},
        [
            (7, [1], BASE, None),  # i: [0, 60) at 7
            (7, [2], BASE + 50 * M, None),  # q: [50, 110) at 7: 10 min with i
            (8, [1], BASE + 120 * M, None),  # i: [120, 180) at 8
            (8, [2], BASE + 170 * M, None),  # q: [170, 230) at 8: 10 min with i
        ],
    )
    first, _ = reference_contacts(world.stays, 1, BASE, BASE + 24 * HOUR_MS, 15 * M)
    assert first == [
        {
            "person_id": 2,
            "overlap_seconds": 1200.0,
            "first_contact_at": iso(BASE + 50 * M),
            "venue_ids": [7, 8],
        }
    ]
    assert reference_contacts(world.stays, 1, BASE, BASE + 24 * HOUR_MS, 21 * M)[0] == []
    # only index stays starting in the window count
    assert reference_contacts(world.stays, 1, BASE + M, BASE + 24 * HOUR_MS, 15 * M)[0] == []


def test_scanning_again_and_again_adds_no_time_together() -> None:
    """Scans 61 s apart at one venue around the case's hour: each cuts the one before it, so the
    overlap is the time really spent together, not one dwell per scan."""
    scans = [(7, [2], BASE + k * 61_000, None) for k in range(200)]  # from 0 to 202 min
    world = build_world(BASE, {7: (60, COMMUNITIES[0])}, [(7, [1], BASE + 60 * M, None), *scans])
    first, _ = reference_contacts(world.stays, 1, BASE, BASE + 24 * HOUR_MS, 15 * M)
    assert [(c["person_id"], c["overlap_seconds"]) for c in first] == [(2, 3600.0)]
    # a person's stay at another venue cuts the one before: [0, 20) at 7, 10 min with i's [10, 70)
    world = build_world(
        BASE,
        {7: (60, COMMUNITIES[0]), 8: (60, COMMUNITIES[0])},
        [(7, [1], BASE + 10 * M, None), (7, [2], BASE, None), (8, [2], BASE + 20 * M, None)],
    )
    assert reference_contacts(world.stays, 1, BASE, BASE + HOUR_MS, 15 * M)[0] == []
    assert reference_contacts(world.stays, 1, BASE, BASE + HOUR_MS, 10 * M)[0][0]["overlap_seconds"] == 600.0


def test_second_degree_qualifies_through_each_first_degree_contact_on_its_own() -> None:
    world = build_world(
        BASE,
        {7: (60, COMMUNITIES[0]), 8: (60, COMMUNITIES[0]), 9: (60, COMMUNITIES[0])},
        [
            (7, [1, 11, 12], BASE, None),  # i with q1 and q2: [0, 60)
            (8, [11, 12], BASE + 100 * M, None),  # q1 and q2 together at 8: [100, 160)
            (8, [21], BASE + 150 * M, None),  # 10 min with q1 and 10 min with q2: neither reaches 15
            (8, [22], BASE + 152 * M, None),  # 8 min with q1 (and q2) at 8 ...
            (9, [11], BASE + 200 * M, None),  # q1 at 9: [200, 260)
            (9, [22], BASE + 252 * M, None),  # ... and 8 more with q1 at 9: 16 min via q1
        ],
    )
    first, second = reference_contacts(world.stays, 1, BASE, BASE + 24 * HOUR_MS, 15 * M, 2)
    assert [c["person_id"] for c in first] == [11, 12]
    assert second == [
        {
            "person_id": 22,
            "overlap_seconds": 960.0,
            "first_contact_at": iso(BASE + 152 * M),
            "venue_ids": [8, 9],
            "via": [11],
        }
    ]
