"""The record through the real path equals a brute-force reading of the contract.

A small city's residents send their scans the way phones and doors do: each offline queue arrives
later half first, then the earlier half; rescans at one venue come 61 s to 20 min apart; a parent
ticks a child on a repeat within the minute; some stays are checked out; a door device uploads its
backdated scans last. The check-in scripts write the streams, the sink lands them in ClickHouse,
and the trace API's visits, contacts (depth 1 and 2) and exposures must equal the reference of
tests/support/trace_world.py computed from the accepted check-ins alone (docs/ARCHITECTURE.md,
"Stays and contacts").
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from litestar.testing import AsyncTestClient

from checkin.platform.settings import Settings
from tests.support.ingest import (
    bearer,
    child_id_number,
    id_number,
    make_key,
    put_venue,
    register,
    stream_events,
)
from tests.support.instants import iso_ms
from tests.support.sink import count, make_consumer, run_until, sink_pending
from tests.support.trace_world import (
    Checkin,
    contacts_api,
    exposures_api,
    reference_contacts,
    reference_exposures,
    reference_stays,
    reference_visits,
    visits_api,
)
from tests.support.trace_world import make_key as trace_key
from tracing.storage.store import Store

MIN_MS = 60_000
HOUR_MS = 3_600_000
DWELLS = {301: 45, 302: 60, 303: 20, 304: 120, 305: 5, 306: 30}
DOOR_VENUE = 307
DOOR_DWELL = 90


def to_ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


@dataclass
class Resident:
    person_id: int
    token: str
    seq: int
    child: int | None = None
    items: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def roomy(make_settings: Any) -> Settings:
    settings: Settings = make_settings(rate_resident_per_min=100_000, rate_device_per_min=100_000)
    return settings


@pytest.fixture
async def roomy_ingest(roomy: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    from checkin.app import create_app

    async with AsyncTestClient(app=create_app(roomy)) as client:
        yield client


def plan_day(
    rng: random.Random, codes: dict[int, str], start_ms: int, end_ms: int, child: int | None
) -> list[dict[str, Any]]:
    """One resident's scans from ``start_ms``: venues at random gaps, some rescans 61 s to 20 min later
    at the same venue, and (with a child) a repeat within the minute that ticks the child."""
    items: list[dict[str, Any]] = []
    t = start_ms + rng.randrange(0, 60) * MIN_MS
    n = 0
    while t < end_ms:
        venue = rng.choice(list(DWELLS))
        items.append(
            {"code": codes[venue], "scanned_at": iso_ms(t), "client_id": f"c{t}-{n}", "_venue": venue}
        )
        n += 1
        roll = rng.random()
        if roll < 0.25:
            again = t + rng.randrange(61, 20 * 60) * 1000
            items.append(
                {
                    "code": codes[venue],
                    "scanned_at": iso_ms(again),
                    "client_id": f"r{again}-{n}",
                    "_venue": venue,
                }
            )
            n += 1
            t = again
        elif roll < 0.4 and child is not None:
            again = t + rng.randrange(5, 55) * 1000
            items.append(
                {
                    "code": codes[venue],
                    "scanned_at": iso_ms(again),
                    "client_id": f"k{again}-{n}",
                    "companions": [child],
                    "_venue": venue,
                    "_adds_child_to": len(items) - 1,
                }
            )
            n += 1
            t = again
        t += rng.randrange(3, 150) * MIN_MS
    return items


def halves(items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The queue cut in two where no repeat is separated from the scan it repeats."""
    cut = len(items) // 2
    while 0 < cut < len(items) and "_adds_child_to" in items[cut]:
        cut += 1
    return items[:cut], items[cut:]


def unnamed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Answer rows without the masked names (the reference knows ids only)."""
    return [{k: v for k, v in row.items() if k != "name"} for row in rows]


async def land(settings: Settings, store: Store, sync_redis: redis.Redis, rows: int) -> None:
    """Run the sink until every stream entry (``rows`` of them) is in ClickHouse and acknowledged."""
    consumer, ctx = await make_consumer(settings, store)

    def landed() -> bool:
        return count(store, final=False) >= rows and sink_pending(sync_redis, settings) == (0, 0)

    await run_until(consumer, landed, timeout=60)
    await ctx.redis.aclose()


async def send_batch(
    client: AsyncTestClient[Any], token: str, items: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    if not items:
        return []
    wire = [{k: v for k, v in it.items() if not k.startswith("_")} for it in items]
    r = await client.post("/v1/checkins/batch", json={"items": wire}, headers=bearer(token))
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    assert all(x["status"] in (200, 201) for x in results), results
    return results


async def test_the_record_equals_the_reference_whatever_order_scans_arrive_in(
    roomy_ingest: AsyncTestClient[Any],
    tracing: AsyncTestClient[Any],
    roomy: Settings,
    store: Store,
    sync_redis: redis.Redis,
) -> None:
    settings, client = roomy, roomy_ingest
    rng = random.Random(20261207)
    codes = {v: put_venue(sync_redis, settings, v, dwell_minutes=d) for v, d in DWELLS.items()}
    put_venue(sync_redis, settings, DOOR_VENUE, dwell_minutes=DOOR_DWELL)
    dwell_ms = {**{v: d * MIN_MS for v, d in DWELLS.items()}, DOOR_VENUE: DOOR_DWELL * MIN_MS}
    now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    start, end = now - 30 * HOUR_MS, now - 15 * MIN_MS
    residents: list[Resident] = []
    for seq in range(400, 412):
        pid, token = await register(client, seq)
        resident = Resident(pid, token, seq)
        if seq % 3 == 0:
            r = await client.post(
                "/v1/residents/me/companions",
                json={"name": f"孩子{seq}", "id_number": child_id_number(seq)},
                headers=bearer(token),
            )
            assert r.status_code == 201, r.text
            resident.child = r.json()["person_id"]
        resident.items = plan_day(rng, codes, start, end, resident.child)
        residents.append(resident)

    # every queue: the later half first, then the earlier half
    checkin_ids: dict[tuple[int, int], str] = {}
    for resident in residents:
        early, late = halves(resident.items)
        for part in (late, early):
            for item, result in zip(part, await send_batch(client, resident.token, part), strict=True):
                checkin_ids[(resident.person_id, resident.items.index(item))] = result["checkin_id"]
                if "_adds_child_to" in item:
                    assert result["status"] == 200 and result["duplicate"] is True
                    assert result["checkin_id"] == checkin_ids[(resident.person_id, item["_adds_child_to"])]

    # check-outs of some stays of the last 12 h (a check-out is always now)
    checked_out: dict[str, int] = {}
    for resident in residents[::2]:
        recent = [i for i, it in enumerate(resident.items) if to_ms(it["scanned_at"]) > now - 11 * HOUR_MS]
        for i in rng.sample(recent, min(2, len(recent))):
            cid = checkin_ids[(resident.person_id, i)]
            if cid in checked_out:
                continue
            r = await client.post(f"/v1/checkins/{cid}/checkout", headers=bearer(resident.token))
            assert r.status_code == 200, r.text
            r = await client.get(f"/v1/checkins/{cid}", headers=bearer(resident.token))
            checked_out[cid] = to_ms(r.json()["checked_out_at"])

    # a door device uploads its day last: residents scanned at the door in the last 20 h
    device = await make_key(client, "device", venue_id=DOOR_VENUE)
    door_scans = [
        {"id_number": id_number(r.seq), "scanned_at": iso_ms(now - rng.randrange(30, 20 * 60) * MIN_MS)}
        for r in residents[1::3]
    ]
    r = await client.post("/v1/sentinel/scans", json={"scans": door_scans}, headers=device)
    assert r.status_code == 200 and r.json()["accepted"] == len(door_scans), r.text

    # the accepted check-ins are exactly what was planned (a child's stay from the repeat's instant)
    events = stream_events(sync_redis, settings)
    accepted = {(e.checkin_id, e.person_id, e.venue_id, e.at_ms) for e in events if e.kind == "in"}
    planned = set()
    for resident in residents:
        for i, item in enumerate(resident.items):
            cid = checkin_ids[(resident.person_id, i)]
            at = to_ms(item["scanned_at"])
            if "_adds_child_to" in item:
                planned.add((cid, resident.child, item["_venue"], at))
            else:
                planned.add((cid, resident.person_id, item["_venue"], at))
    door = {(e.person_id, e.at_ms) for e in events if e.kind == "in" and e.venue_id == DOOR_VENUE}
    assert accepted - {a for a in accepted if a[2] == DOOR_VENUE} == planned
    assert len(door) == len(door_scans)

    checkins = [
        Checkin(
            cid, pid, vid, at, dwell_ms[vid], checked_out.get(cid) if checked_out.get(cid, 0) > at else None
        )
        for cid, pid, vid, at in accepted
    ]
    stays = reference_stays(checkins)
    by_person: dict[int, list[Any]] = {}
    for s in stays:
        by_person.setdefault(s.person_id, []).append(s)
    for mine in by_person.values():  # one place at a time
        for a, b in itertools.pairwise(mine):
            assert a.end <= b.at or a.at == b.at

    # what the streams say each stay's end is (the highest version) equals the reference
    best: dict[tuple[str, int], tuple[int, int, str]] = {}
    for e in events:
        key = (e.checkin_id, e.person_id)
        if key not in best or e.version >= best[key][0]:
            best[key] = (e.version, e.end_ms, e.ended_by or "natural")
    assert {k: v[1:] for k, v in best.items()} == {
        (s.checkin_id, s.person_id): (s.end, s.ended_by) for s in stays
    }

    await land(settings, store, sync_redis, len(events))

    headers = await trace_key(settings, "tracer")
    persons = sorted(by_person)
    compared = 0
    for person in rng.sample(persons, 8):
        since = start + rng.randrange(0, 20) * HOUR_MS
        until = since + rng.randrange(2, 30) * HOUR_MS
        for minutes in (1, 15):
            got = await contacts_api(tracing, headers, person, since, until, minutes, 2)
            first, second = reference_contacts(stays, person, since, until, minutes * MIN_MS, 2)
            assert unnamed(got["contacts"]) == first, (person, minutes)
            assert unnamed(got["second_degree"]) == second, (person, minutes)
            compared += len(first) + len(second)
        assert await visits_api(tracing, headers, person, start - HOUR_MS, now + HOUR_MS) == reference_visits(
            stays, person, start - HOUR_MS, now + HOUR_MS
        )
    assert compared > 0, "no contacts compared: the world is too sparse"
    for _ in range(4):
        venue = rng.choice([*DWELLS, DOOR_VENUE])
        since = start + rng.randrange(0, 28) * HOUR_MS
        sites = [(venue, since, since + rng.randrange(1, 6) * HOUR_MS)]
        assert unnamed(await exposures_api(tracing, headers, sites)) == reference_exposures(stays, sites)


async def test_a_queue_of_scans_a_minute_apart_cannot_inflate_an_overlap(
    ingest: AsyncTestClient[Any],
    tracing: AsyncTestClient[Any],
    settings: Settings,
    store: Store,
    sync_redis: redis.Redis,
) -> None:
    """34 offline-queue items 61 s apart around the case's hour at one venue: the attacker was there
    for 34 minutes at most, and that is all the contacts answer may count."""
    code = put_venue(sync_redis, settings, 320, dwell_minutes=60)
    case, case_token = await register(ingest, 420)
    attacker, attacker_token = await register(ingest, 421)
    now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    t0 = now - 3 * HOUR_MS
    r = await ingest.post(
        "/v1/checkins", json={"code": code, "scanned_at": iso_ms(t0)}, headers=bearer(case_token)
    )
    assert r.status_code == 201
    items = [{"code": code, "scanned_at": iso_ms(t0 - 10 * MIN_MS + i * 61_000)} for i in range(34)]
    r = await ingest.post("/v1/checkins/batch", json={"items": items}, headers=bearer(attacker_token))
    assert r.status_code == 200 and r.json()["accepted"] == 34, r.text
    await land(settings, store, sync_redis, len(stream_events(sync_redis, settings)))
    headers = await trace_key(settings, "tracer")
    got = await contacts_api(tracing, headers, case, t0 - HOUR_MS, t0 + 2 * HOUR_MS, 15, 1)
    [contact] = got["contacts"]
    assert contact["person_id"] == attacker
    # the attacker's stays are back to back from t0 - 10 min to its last scan + 60 min: with the case
    # from t0 to t0 + 60 min, together at most an hour; the attack once claimed 32 hours
    last = t0 - 10 * MIN_MS + 33 * 61_000
    together = min(t0 + HOUR_MS, last + HOUR_MS) - t0
    assert contact["overlap_seconds"] == together / 1000
    assert contact["overlap_seconds"] <= 3600
