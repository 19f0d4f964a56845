"""Analyst statistics: scans per hour by district, per district, busiest venues."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from checkin.platform.settings import Settings
from tests.support.trace_world import COMMUNITIES, HOUR_MS, MIN_MS, base_ms, build_world, iso, load, make_key
from tracing.storage.store import Store


async def test_stats_count_stays_once_per_hour_district_and_venue(
    tracing: AsyncTestClient[Any], store: Store, settings: Settings
) -> None:
    base = base_ms()
    world = build_world(
        base,
        {7: (60, COMMUNITIES[0]), 8: (60, COMMUNITIES[1]), 9: (30, COMMUNITIES[2])},
        [
            (7, [1, 2], base + 5 * MIN_MS, 10 * MIN_MS),  # two stays, checked out: still two scans
            (8, [3], base + 50 * MIN_MS, None),
            (9, [1], base + 70 * MIN_MS, None),
            (9, [4], base + 75 * MIN_MS, None),
            (9, [4], base + 5 * HOUR_MS, None),  # outside the window below
        ],
    )
    load(store, world)  # also inserts a duplicated batch: FINAL must hide it
    analyst = await make_key(settings, "analyst")
    window = {"since": iso(base), "until": iso(base + 2 * HOUR_MS)}
    r = await tracing.get("/v1/stats/scans-per-hour", params=window, headers=analyst)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["districts"] == ["620102", "620103"]
    assert [(x["hour"], x["district"], x["scans"]) for x in body["rows"]] == [
        (iso(base), "620102", 3),
        (iso(base + HOUR_MS), "620103", 2),
    ]
    r = await tracing.get("/v1/stats/districts", params=window, headers=analyst)
    assert [(x["district"], x["scans"], x["persons"]) for x in r.json()["rows"]] == [
        ("620102", 3, 3),
        ("620103", 2, 2),
    ]
    r = await tracing.get("/v1/stats/venues", params={**window, "limit": 2}, headers=analyst)
    assert [(x["venue_id"], x["scans"], x["persons"]) for x in r.json()["rows"]] == [(7, 2, 2), (9, 2, 2)]

    scoped = await make_key(settings, "analyst", COMMUNITIES[2][:6])
    r = await tracing.get("/v1/stats/districts", params=window, headers=scoped)
    assert [(x["district"], x["scans"]) for x in r.json()["rows"]] == [("620103", 2)]

    tracer = await make_key(settings, "tracer")
    assert (await tracing.get("/v1/stats/districts", params=window, headers=tracer)).status_code == 403
    bad = {"since": iso(base), "until": iso(base - 1)}
    r = await tracing.get("/v1/stats/scans-per-hour", params=bad, headers=analyst)
    assert r.status_code == 422 and "before" in r.json()["detail"]
    r = await tracing.get("/v1/stats/scans-per-hour", params={"district": "62"}, headers=analyst)
    assert r.status_code == 400 and "district" in r.json()["detail"]
    r = await tracing.get("/v1/stats/venues", params={"limit": 0}, headers=analyst)
    assert r.status_code == 400
