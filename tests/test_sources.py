"""Source tracing (溯源) through the API, against the brute-force reference of DESIGN.md's definition
(``reference_sources`` in tests/support/trace_world.py): hand-made cases, seeded worlds and a generated
city with a planted outbreak, scoped keys, the CSV export, audit and purpose binding."""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis
from litestar.testing import AsyncTestClient

from checkin.platform.redis_keys import RedisKeys
from checkin.platform.settings import Settings
from tests.support.trace_world import (
    COMMUNITIES,
    HOUR_MS,
    MIN_MS,
    World,
    base_ms,
    build_world,
    iso,
    load,
    make_key,
    random_world,
    reference_sources,
    sources_api,
    to_dt,
)
from tests.support.values import REDIS_URL, admin_headers
from tracing.queries import sources as sources_query
from tracing.queries.sources import together_ms
from tracing.storage.store import Store

M = MIN_MS


def hand_made(base: int) -> World:
    """Cases 1, 2, 3 at venue 7; 1 and 2 again at venue 8; 9 met 1 and 2 at both; 10 met mostly 2."""
    venues = {7: (60, COMMUNITIES[0]), 8: (60, COMMUNITIES[2])}
    return build_world(
        base,
        venues,
        [
            (7, [1], base, None),  # [0, 60)
            (7, [2], base + 30 * M, None),  # [30, 90): 30 min with 1
            (7, [3], base + 100 * M, None),  # [100, 160): with neither
            (7, [9], base + 20 * M, None),  # [20, 80): 40 min with 1, 50 with 2
            (7, [10], base + 50 * M, None),  # [50, 110): 10 with 1, 40 with 2, 10 with 3
            (8, [1, 2], base + 200 * M, None),  # [200, 260) together
            (8, [9], base + 210 * M, 20 * M),  # [210, 230): 20 min with each
        ],
    )


def test_the_reference_follows_the_definition_on_a_hand_made_case() -> None:
    base = 1_800_000_000_000
    world = hand_made(base)
    common, sources = reference_sources(world.stays, [1, 2, 3], base, base + 24 * HOUR_MS, with_stays=False)
    assert common == [
        {
            "venue_id": 7,
            "cases": [1, 2, 3],
            "first_at": iso(base),
            "last_at": iso(base + 100 * M),
            "together_seconds": 1800.0,
        },
        {
            "venue_id": 8,
            "cases": [1, 2],
            "first_at": iso(base + 200 * M),
            "last_at": iso(base + 200 * M),
            "together_seconds": 3600.0,
        },
    ]
    assert sources == [
        {
            "person_id": 9,
            "cases": [1, 2],
            "overlap_seconds": (40 + 50 + 20 + 20) * 60.0,
            "venue_ids": [7, 8],
            "first_contact_at": iso(base + 20 * M),
        }
    ]
    # 10 met case 2 for 40 minutes, 1 and 3 for 10 each: a source of three cases at 10 minutes
    _common, sources = reference_sources(world.stays, [1, 2, 3], base, base + 24 * HOUR_MS, 2, 10 * M)
    assert [(s["person_id"], s["cases"], s["overlap_seconds"]) for s in sources] == [
        (10, [1, 2, 3], 3600.0),
        (9, [1, 2], 7800.0),
    ]
    # min_cases 3: venue 7 only, and nobody met all three for 15 minutes
    common, sources = reference_sources(world.stays, [1, 2, 3], base, base + 24 * HOUR_MS, 3)
    assert [v["venue_id"] for v in common] == [7] and sources == []
    # only stays starting in the window count, for the venues and the overlaps alike
    common, sources = reference_sources(world.stays, [1, 2, 3], base + 150 * M, base + 24 * HOUR_MS)
    assert [v["venue_id"] for v in common] == [8] and [s["person_id"] for s in sources] == [9]
    assert sources[0]["overlap_seconds"] == 2400.0


def test_together_counts_the_time_two_cases_were_there_at_once() -> None:
    assert together_ms({1: [(0, 60)], 2: [(30, 90)], 3: [(100, 160)]}) == 30
    assert together_ms({1: [(0, 60)], 2: [(0, 60)], 3: [(0, 60)]}) == 60  # three at once: counted once
    assert together_ms({1: [(0, 30), (30, 60)], 2: [(10, 20), (40, 50)]}) == 20
    assert together_ms({1: [(0, 60), (10, 20)], 2: [(70, 80)]}) == 0  # one case alone, however its stays lie
    assert together_ms({1: [(0, 60)], 2: [(60, 80)]}) == 0  # touching, not together


async def test_sources_answer_the_hand_made_case(
    tracing: AsyncTestClient[Any], store: Store, settings: Settings
) -> None:
    base = base_ms()
    world = hand_made(base)
    load(store, world)
    headers = await make_key(settings, "tracer")
    got = await sources_api(tracing, headers, [3, 2, 1, 2], base - HOUR_MS, base + 24 * HOUR_MS)
    common, sources = reference_sources(world.stays, [1, 2, 3], base - HOUR_MS, base + 24 * HOUR_MS)
    assert got["common_venues"] == common and got["possible_sources"] == sources
    assert got["cases"] == [1, 2, 3] and got["cases_without_stays"] == [] and got["index_stays"] == 5
    # each common venue lists when each case was there (the console's timeline, a flagged site's window)
    assert got["common_venues"][1]["stays"] == [
        {"person_id": p, "at": iso(base + 200 * M), "end_at": iso(base + 260 * M)} for p in (1, 2)
    ]
    got = await sources_api(tracing, headers, [1, 2, 3, 77], base - HOUR_MS, base + 24 * HOUR_MS, 2, 10)
    assert [s["person_id"] for s in got["possible_sources"]] == [10, 9]
    assert got["cases_without_stays"] == [77]


async def check_sources(
    client: AsyncTestClient[Any],
    headers: dict[str, str],
    world: World,
    rng: random.Random,
    scope: str = "",
    draws: int = 4,
    pool: list[int] | None = None,
) -> int:
    """Compare the sources answer with the reference for a few random sets of cases (drawn from
    ``pool``, default every person); rows compared."""
    compared = 0
    persons = pool or world.persons
    for _ in range(draws):
        n = rng.randrange(2, min(12, len(persons)) + 1)
        cases = rng.sample(persons, n)
        since = world.base_ms + rng.randrange(-2, 20) * HOUR_MS
        until = since + rng.randrange(1, 40) * HOUR_MS
        min_cases = rng.choice([2, 2, 2, 3, n])
        minutes = rng.choice([0, 1, 15, 15, 30])
        got = await sources_api(client, headers, cases, since, until, min_cases, minutes)
        common, sources = reference_sources(world.stays, cases, since, until, min_cases, minutes * M, scope)
        context = (cases, since, until, min_cases, minutes)
        assert got["common_venues"] == common, context
        assert got["possible_sources"] == sources, context
        if got.get("status") == 404:
            assert not any(s.person_id in cases and s.community.startswith(scope) for s in world.stays)
        compared += len(common) + len(sources)
    return compared


async def test_sources_match_the_reference_on_seeded_worlds(
    tracing: AsyncTestClient[Any], store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = await make_key(settings, "tracer")
    compared = 0
    for seed in range(6):
        rng = random.Random(300 + seed)
        world = random_world(
            rng, base_ms(), n_venues=rng.randrange(2, 7), n_persons=rng.randrange(6, 30), n_checkins=90
        )
        load(store, world)
        # every other world with each index stay's reach narrowed by the longest stay recorded there
        monkeypatch.setattr(sources_query, "REACH_FROM", 0 if seed % 2 else 400)
        compared += await check_sources(tracing, headers, world, rng)
    assert compared > 20  # dense enough that venues and sources are actually compared


async def test_a_scoped_tracer_traces_sources_in_its_jurisdiction_only(
    tracing: AsyncTestClient[Any], store: Store, settings: Settings
) -> None:
    scope = COMMUNITIES[0][:9]
    headers = await make_key(settings, "tracer", scope)
    compared = 0
    for seed in range(3):
        rng = random.Random(400 + seed)
        world = random_world(rng, base_ms(), n_venues=6, n_persons=14, n_checkins=100)
        load(store, world)
        compared += await check_sources(tracing, headers, world, rng, scope=scope, draws=5)
    assert compared > 5
    # cases with no stay in the jurisdiction are unknown to the key: 404, audited
    base = base_ms()
    outside = {8: (60, COMMUNITIES[2])}
    load(store, build_world(base, outside, [(8, [1, 2], base, None), (8, [3], base + 5 * M, None)]))
    r = await tracing.post(
        "/v1/trace/sources",
        json={"person_ids": [1, 2], "since": iso(base), "until": iso(base + HOUR_MS), "reason": "x"},
        headers=headers,
    )
    assert r.status_code == 404 and "jurisdiction" in r.json()["detail"], r.text
    got = await sources_api(tracing, admin_headers(), [1, 2], base, base + HOUR_MS)
    assert [v["venue_id"] for v in got["common_venues"]] == [8]
    assert [s["person_id"] for s in got["possible_sources"]] == [3]


def generated_city(rng: random.Random, base: int) -> tuple[World, list[int], list[int]]:
    """A small city of 40 venues and 300 residents over two days, with an outbreak planted in it: an
    index person whose contacts at three venues become cases. Returns the world, the cases (drawn from
    the index person's contacts) and the planted venues."""
    venues = {100 + v: (rng.choice([30, 60, 60, 90, 120, 240]), rng.choice(COMMUNITIES)) for v in range(40)}
    checkins: list[tuple[int, list[int], int, int | None]] = []
    for _ in range(900):
        venue = 100 + min(39, int(40 * rng.random() ** 2))  # popular venues first
        people = [rng.randrange(1, 301)] + [rng.randrange(1, 301) for _ in range(rng.choice([0, 0, 1]))]
        at = base + rng.randrange(0, 48 * 60) * M + rng.choice([0, rng.randrange(1000)])
        out = rng.choice([None, None, None, rng.randrange(1, 180) * M])
        checkins.append((venue, people, at, out))
    planted = [131, 134, 137]
    index, contacts = 1000, list(range(1001, 1031))
    for k, venue in enumerate(planted):
        start = base + (6 + 14 * k) * HOUR_MS
        checkins.append((venue, [index], start, 2 * HOUR_MS))
        for person in contacts[k * 10 : (k + 1) * 10]:
            checkins.append((venue, [person], start + rng.randrange(0, 80) * M, None))
    world = build_world(base, venues, checkins)
    return world, sorted(rng.sample(contacts, 20)), planted


async def test_sources_of_a_planted_outbreak_in_a_generated_city(
    tracing: AsyncTestClient[Any], store: Store, settings: Settings
) -> None:
    rng = random.Random(27)
    base = base_ms() - 24 * HOUR_MS
    world, cases, planted = generated_city(rng, base)
    load(store, world)
    headers = await make_key(settings, "tracer")
    since, until = base - HOUR_MS, base + 50 * HOUR_MS
    got = await sources_api(tracing, headers, cases, since, until)
    common, sources = reference_sources(world.stays, cases, since, until)
    assert got["common_venues"] == common and got["possible_sources"] == sources
    # the planted venues rank first, and the index person leads the possible sources
    assert {v["venue_id"] for v in common[:3]} == set(planted)
    assert sources[0]["person_id"] == 1000 and len(sources[0]["cases"]) == len(cases)
    for min_cases, minutes in ((3, 15), (2, 0), (5, 30)):
        got = await sources_api(tracing, headers, cases, since, until, min_cases, minutes)
        common, sources = reference_sources(world.stays, cases, since, until, min_cases, minutes * M)
        assert got["common_venues"] == common and got["possible_sources"] == sources
    pool = [*range(1000, 1031), *rng.sample(world.persons, 20)]
    assert await check_sources(tracing, headers, world, rng, draws=6, pool=pool) > 0


async def test_sources_csv_has_local_times_and_masked_names_and_binds_the_persons_it_names(
    tracing: AsyncTestClient[Any], store: Store, settings: Settings
) -> None:
    base = base_ms()
    world = hand_made(base)
    load(store, world)
    client = aioredis.Redis.from_url(REDIS_URL)
    keys = RedisKeys(settings.key_prefix)
    for pid, name in ((1, "=李四光"), (2, "王小明"), (9, "张三丰")):
        await client.hset(keys.person(pid), mapping={"name": name})
    await client.aclose()
    tracer = await make_key(settings, "tracer")
    body = {
        "person_ids": [1, 2, 3],
        "since": iso(base - HOUR_MS),
        "until": iso(base + 24 * HOUR_MS),
        "reason": "cluster 7",
    }
    # nobody is bound before the answer names them
    r = await tracing.get("/v1/trace/persons/9/contact-details", params={"reason": "x"}, headers=tracer)
    assert r.status_code == 403 and r.json()["reason"] == "not_traced"
    r = await tracing.post("/v1/trace/sources", json=body, headers=tracer)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["case_names"] == {"1": "=**光", "2": "王*明"}
    assert answer["possible_sources"][0]["name"] == "张*丰"
    r = await tracing.post("/v1/trace/sources", params={"format": "csv"}, json=body, headers=tracer)
    assert r.status_code == 200, r.text
    assert (
        r.headers["content-type"].startswith("text/csv") and "attachment" in r.headers["content-disposition"]
    )
    assert r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    tz = ZoneInfo(settings.tz)
    first, last = f"first_at ({settings.tz})", f"last_at ({settings.tz})"
    venue7, venue8, source9 = rows
    assert (venue7["section"], venue7["venue_ids"], venue7["cases"], venue7["case_ids"]) == (
        "common_venue",
        "7",
        "3",
        "1 2 3",
    )
    assert venue7["case_names"] == "'=**光; 王*明; " and venue7["minutes"] == "30.0"  # formula guard
    # local wall time that Python's csv + datetime (and a spreadsheet) read as a date
    assert dt.datetime.fromisoformat(venue7[first]).replace(tzinfo=tz) == to_dt(base)
    assert dt.datetime.fromisoformat(venue7[last]).replace(tzinfo=tz) == to_dt(base + 100 * M)
    assert dt.datetime.fromisoformat(venue8[first]).replace(tzinfo=tz) == to_dt(base + 200 * M)
    assert (source9["section"], source9["person_id"], source9["name"], source9["venue_ids"]) == (
        "possible_source",
        "9",
        "张*丰",
        "7 8",
    )
    assert dt.datetime.fromisoformat(source9[first]).replace(tzinfo=tz) == to_dt(base + 20 * M)
    assert source9[last] == "" and source9["minutes"] == "130.0"
    # the source and the cases are bound to the key now; audited with the cases and the window
    r = await tracing.get("/v1/trace/persons/9/contact-details", params={"reason": "call"}, headers=tracer)
    assert r.status_code == 200 and r.json()["name"] == "张三丰", r.text
    r = await tracing.get("/v1/audit", params={"action": "sources"}, headers=admin_headers())
    entries = r.json()["entries"]
    assert [(e["reason"], e["rows"], e["params"]["format"]) for e in entries] == [
        ("cluster 7", 3, "csv"),
        ("cluster 7", 3, "json"),
    ]
    assert entries[0]["params"]["person_ids"] == [1, 2, 3]


async def test_sources_refuse_bad_input_with_clear_problems(
    tracing: AsyncTestClient[Any], store: Store, settings: Settings
) -> None:
    base = base_ms()
    load(store, hand_made(base))
    tracer, analyst = await make_key(settings, "tracer"), await make_key(settings, "analyst")
    body = {"person_ids": [1, 2], "since": iso(base), "until": iso(base + HOUR_MS), "reason": "x"}

    async def problem(status: int, words: str, headers: dict[str, str] | None = None, **change: Any) -> None:
        params = change.pop("params", None)
        r = await tracing.post(
            "/v1/trace/sources",
            json={**body, **change},
            params=params,
            headers=tracer if headers is None else headers,
        )
        assert r.status_code == status, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert words in r.json()["detail"], r.json()["detail"]

    r = await tracing.post("/v1/trace/sources", json=body)
    assert r.status_code == 401
    await problem(403, "tracer", headers=analyst)
    await problem(400, "reason is required", reason=" ")
    await problem(400, "person_ids", person_ids=[1])
    await problem(422, "at least 2 distinct", person_ids=[1, 1])  # a rule over the items: 422
    await problem(400, "person_ids", person_ids=list(range(1, 502)))
    await problem(422, "min_cases (3) is more than the 2 cases", min_cases=3)
    await problem(400, "min_cases", min_cases=1)
    await problem(422, "must be before", until=iso(base - HOUR_MS))
    await problem(422, "at most 60 days", since=iso(base - 61 * 24 * HOUR_MS))
    await problem(400, "format", params={"format": "xlsx"})
    await problem(404, "no stays recorded for any of the 2 cases", person_ids=[500, 501])
