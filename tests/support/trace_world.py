"""Check-in worlds for the trace tests, a brute-force reference of DESIGN.md's stay and contact
definitions, and the calls that compare the trace API with it.

The reference works on plain Python lists of stays, pair by pair, exactly as the
definitions read, and knows nothing of the SQL the service runs.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from litestar.testing import AsyncTestClient

from checkin.platform.auth import create_api_key
from checkin.platform.context import Context
from checkin.platform.settings import Settings
from tests.support.values import REDIS_URL
from tracing.storage import schema
from tracing.storage.store import Store

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MIN_MS = 60_000
HOUR_MS = 3_600_000
COLUMNS = [c for c, _ in schema.STAY_COLUMNS]
COMMUNITIES = ["620102001001", "620102001002", "620103002001"]


def iso(ms: int) -> str:
    t = EPOCH + dt.timedelta(milliseconds=ms)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_dt(ms: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=ms)


@dataclass(frozen=True)
class Stay:
    checkin_id: str
    person_id: int
    venue_id: int
    at: int
    end: int
    community: str


@dataclass
class World:
    base_ms: int
    venues: dict[int, tuple[int, str]]
    """venue_id -> (dwell minutes, community)"""
    stays: list[Stay] = field(default_factory=list)
    """The final stays (what FINAL reads)."""
    rows_v0: list[list[Any]] = field(default_factory=list)
    rows_v1: list[list[Any]] = field(default_factory=list)
    persons: list[int] = field(default_factory=list)


def _row(
    checkin_id: str, person: int, venue: int, at: int, end: int, version: int, community: str
) -> list[Any]:
    return [
        checkin_id,
        person,
        venue,
        to_dt(at),
        to_dt(end),
        version,
        community[:6],
        community[:9],
        community,
        "green",
        "pass",
        "",
        "phone",
        person,
        0.0,
        0.0,
        f"{at}-0",
        to_dt(at),
    ]


def build_world(
    base_ms: int,
    venues: dict[int, tuple[int, str]],
    checkins: list[tuple[int, list[int], int, int | None]],
) -> World:
    """``checkins``: (venue_id, persons (scanner first, then companions), at_ms, checkout offset ms)."""
    world = World(base_ms=base_ms, venues=venues)
    persons: set[int] = set()
    for n, (venue, people, at, checkout) in enumerate(checkins):
        dwell, community = venues[venue]
        end0 = at + dwell * MIN_MS
        cid = f"c{n}"
        for person in dict.fromkeys(people):
            persons.add(person)
            world.rows_v0.append(_row(cid, person, venue, at, end0, 0, community))
            end = end0
            if checkout is not None:
                end = at + checkout
                world.rows_v1.append(_row(cid, person, venue, at, end, 1, community))
            world.stays.append(Stay(cid, person, venue, at, end, community))
    world.persons = sorted(persons)
    return world


def random_world(
    rng: random.Random, base_ms: int, n_venues: int = 5, n_persons: int = 25, n_checkins: int = 60
) -> World:
    venues = {
        1000 + v: (rng.choice([15, 30, 45, 60, 60, 90, 120, 240]), rng.choice(COMMUNITIES))
        for v in range(n_venues)
    }
    span_ms = 36 * HOUR_MS
    checkins: list[tuple[int, list[int], int, int | None]] = []
    for _ in range(n_checkins):
        venue = rng.choice(list(venues))
        scanner = rng.randrange(1, n_persons + 1)
        people = [scanner] + [rng.randrange(1, n_persons + 1) for _ in range(rng.choice([0, 0, 0, 1, 2]))]
        at = base_ms + rng.randrange(0, span_ms // MIN_MS) * MIN_MS + rng.choice([0, 0, rng.randrange(1000)])
        checkout = None
        if rng.random() < 0.3:
            checkout = rng.choice(
                [1, MIN_MS * rng.randrange(1, 60), 15 * MIN_MS, MIN_MS * rng.randrange(60, 720), 12 * HOUR_MS]
            )
        checkins.append((venue, people, at, checkout))
    return build_world(base_ms, venues, checkins)


def load(store: Store, world: World, duplicate: bool = True) -> None:
    """Insert the world: check-ins, then check-outs as newer versions, and a duplicated batch."""
    store.command(f"TRUNCATE TABLE {store.table('scans')}")
    store.command(f"TRUNCATE TABLE {store.table('scans_by_person')}")
    store.command(f"TRUNCATE TABLE {store.table('longest_stays')}")
    if world.rows_v0:
        store.insert("scans", COLUMNS, world.rows_v0, column_oriented=False)
        if duplicate:
            store.insert("scans", COLUMNS, world.rows_v0[: len(world.rows_v0) // 2], column_oriented=False)
    if world.rows_v1:
        store.insert("scans", COLUMNS, world.rows_v1, column_oriented=False)


# --- reference ---------------------------------------------------------------------------------------------


def _in_scope(stay: Stay, scope: str) -> bool:
    return stay.community.startswith(scope)


def _overlaps(
    index: list[Stay], stays: list[Stay], exclude: set[int], min_ms: int
) -> dict[tuple[int, int], list[tuple[int, int, int]]]:
    """(person, owner) -> [(overlap_ms, overlap start, venue)] for every qualifying pair."""
    out: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    for s in index:
        for c in stays:
            if c.venue_id != s.venue_id or c.person_id in exclude:
                continue
            start, end = max(s.at, c.at), min(s.end, c.end)
            overlap = end - start
            if overlap > 0 and overlap >= min_ms:
                out.setdefault((c.person_id, s.person_id), []).append((overlap, start, c.venue_id))
    return out


def _summarise(
    pairs: dict[tuple[int, int], list[tuple[int, int, int]]], with_via: bool
) -> list[dict[str, Any]]:
    per: dict[int, dict[str, Any]] = {}
    for (person, owner), items in pairs.items():
        entry = per.setdefault(person, {"overlap": 0, "first": None, "venues": set(), "via": set()})
        for overlap, start, venue in items:
            entry["overlap"] += overlap
            entry["first"] = start if entry["first"] is None else min(entry["first"], start)
            entry["venues"].add(venue)
        entry["via"].add(owner)
    out = []
    for person, e in per.items():
        item: dict[str, Any] = {
            "person_id": person,
            "overlap_seconds": e["overlap"] / 1000,
            "first_contact_at": iso(e["first"]),
            "venue_ids": sorted(e["venues"]),
        }
        if with_via:
            item["via"] = sorted(e["via"])
        out.append(item)
    return sorted(out, key=lambda c: (-c["overlap_seconds"], c["person_id"]))


def reference_contacts(
    world: World, person: int, since: int, until: int, min_minutes: int, depth: int, scope: str = ""
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    stays = [s for s in world.stays if _in_scope(s, scope)]
    min_ms = min_minutes * MIN_MS
    index = [s for s in stays if s.person_id == person and since <= s.at < until]
    first_pairs = _overlaps(index, stays, {person}, min_ms)
    first = _summarise(first_pairs, False)
    second: list[dict[str, Any]] = []
    if depth == 2:
        first_at = {
            c["person_id"]: min(
                start
                for (p, _o), items in first_pairs.items()
                if p == c["person_id"]
                for _ov, start, _v in items
            )
            for c in first
        }
        index2 = [s for s in stays if s.person_id in first_at and first_at[s.person_id] <= s.at < until]
        exclude = {person, *first_at}
        second = _summarise(_overlaps(index2, stays, exclude, min_ms), True)
    return first, second


def reference_exposures(
    world: World, sites: list[tuple[int, int, int]], scope: str = ""
) -> list[dict[str, Any]]:
    per: dict[int, dict[str, Any]] = {}
    for s in world.stays:
        if not _in_scope(s, scope):
            continue
        for venue, since, until in sites:
            if s.venue_id == venue and s.at < until and s.end > since:
                e = per.setdefault(s.person_id, {"venues": set(), "first": s.at})
                e["venues"].add(venue)
                e["first"] = min(e["first"], s.at)
    out = [
        {"person_id": p, "venue_ids": sorted(e["venues"]), "first_at": iso(e["first"])}
        for p, e in per.items()
    ]
    return sorted(out, key=lambda e: (e["first_at"], e["person_id"]))


# --- the trace API against the reference --------------------------------------------------------------


def base_ms() -> int:
    """Three days ago, on the hour (inside the retention window)."""
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(days=3)
    return int(now.timestamp()) * 1000


async def make_key(settings: Settings, role: str, scope: str = "") -> dict[str, str]:
    """Bearer headers of a new API key of ``role`` (and ``scope``), created straight in Redis."""
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        ctx = Context.build(settings, client, "test")
        key, _ = await create_api_key(ctx, role, f"{role} key", scope, None, "test")
    finally:
        await client.aclose()
    return {"Authorization": f"Bearer {key}"}


async def contacts_api(
    client: AsyncTestClient[Any],
    headers: dict[str, str],
    person: int,
    since: int,
    until: int,
    minutes: int,
    depth: int,
) -> dict[str, Any]:
    r = await client.post(
        "/v1/trace/contacts",
        json={
            "person_id": person,
            "since": iso(since),
            "until": iso(until),
            "depth": depth,
            "min_overlap_minutes": minutes,
            "reason": "case 42 follow-up",
        },
        headers=headers,
    )
    if r.status_code == 404:
        return {"contacts": [], "second_degree": [], "status": 404}
    assert r.status_code == 200, r.text
    return dict(r.json())


async def exposures_api(
    client: AsyncTestClient[Any], headers: dict[str, str], sites: list[tuple[int, int, int]]
) -> list[dict[str, Any]]:
    r = await client.post(
        "/v1/trace/exposures",
        json={
            "sites": [{"venue_id": v, "since": iso(a), "until": iso(b)} for v, a, b in sites],
            "reason": "exposure screening",
        },
        headers=headers,
    )
    assert r.status_code == 200, r.text
    return list(r.json()["exposures"])


async def check_world(
    client: AsyncTestClient[Any],
    headers: dict[str, str],
    world: World,
    rng: random.Random,
    scope: str = "",
    persons: int = 4,
) -> int:
    """Compare the API with the reference for a few index persons, windows and minimum overlaps."""
    compared = 0
    for person in rng.sample(world.persons, min(persons, len(world.persons))):
        since = world.base_ms + rng.randrange(-2, 20) * HOUR_MS
        until = since + rng.randrange(1, 40) * HOUR_MS
        minutes = rng.choice([0, 1, 15, 15, 30])
        got = await contacts_api(client, headers, person, since, until, minutes, 2)
        first, second = reference_contacts(world, person, since, until, minutes, 2, scope)
        assert got["contacts"] == first, (person, since, until, minutes)
        assert got["second_degree"] == second, (person, since, until, minutes)
        if got.get("status") == 404:
            assert not any(s.person_id == person and s.community.startswith(scope) for s in world.stays)
        got1 = await contacts_api(client, headers, person, since, until, minutes, 1)
        assert got1["contacts"] == first and got1["second_degree"] == []
        compared += len(first) + len(second)
    venues = [v for v, (_dwell, community) in world.venues.items() if community.startswith(scope)]
    if not venues:
        return compared
    sites = []
    for _ in range(rng.randrange(1, 4)):
        start = world.base_ms + rng.randrange(0, 36 * 60) * MIN_MS
        sites.append((rng.choice(venues), start, start + rng.randrange(1, 300) * MIN_MS))
    assert await exposures_api(client, headers, sites) == reference_exposures(world, sites, scope)
    return compared
