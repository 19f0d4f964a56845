"""Check-in worlds for the trace tests, a brute-force reference of DESIGN.md's stay and contact
definitions, and the calls that compare the trace API with it.

The reference starts from raw check-ins, not from stored stays, and works on plain Python lists,
pair by pair, exactly as the definitions read; it knows nothing of the SQL the service runs nor of
the check-in script that keeps the stored stays final. Its functions take and return plain values so
any test can call them:

* :func:`reference_stays` - accepted check-ins -> the final stays (one place at a time);
* :func:`reference_visits` - a person's timeline, as ``GET /v1/trace/persons/{id}/visits`` lists it;
* :func:`reference_contacts` - contacts at depth 1 and 2, as ``POST /v1/trace/contacts`` lists them;
* :func:`reference_exposures` - exposure screening, as ``POST /v1/trace/exposures`` lists it;
* :func:`reference_sources` - source tracing of a set of cases, as ``POST /v1/trace/sources`` lists it.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import redis.asyncio as aioredis
from litestar.testing import AsyncTestClient

from checkin.platform.auth import create_api_key
from checkin.platform.context import Context
from checkin.platform.settings import Settings
from tests.support.instants import iso_ms as iso
from tests.support.values import REDIS_URL
from tracing.storage import schema
from tracing.storage.store import Store

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MIN_MS = 60_000
HOUR_MS = 3_600_000
MAX_CHECKOUT_MS = 12 * HOUR_MS
COLUMNS = [c for c, _ in schema.STAY_COLUMNS]
COMMUNITIES = ["620102001001", "620102001002", "620103002001"]


def to_dt(ms: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=ms)


# --- the reference -----------------------------------------------------------------------------------------


class Checkin(NamedTuple):
    """One accepted check-in of one person (a check-in with companions is one of these per person).

    A plain 6-tuple in this order works wherever a Checkin is taken.
    """

    checkin_id: str
    person_id: int
    venue_id: int
    at: int
    """Unix ms."""
    dwell_ms: int
    """The venue's dwell: the natural end is ``at + dwell_ms``."""
    checkout_ms: int | None = None
    """The check-out INSTANT (unix ms, not an offset), ``at < checkout_ms <= at + 12 h``; None: none."""


@dataclass(frozen=True)
class Stay:
    checkin_id: str
    person_id: int
    venue_id: int
    at: int
    end: int
    community: str = ""
    ended_by: str = "natural"
    """``natural``, ``checkout`` or ``next_stay`` (cut by the person's next stay, strictly earlier than
    the natural end or check-out)."""
    natural_end: int = field(default=0, compare=False)
    """``at + dwell`` (for the row versions a world writes; not compared)."""
    checkout: int | None = field(default=None, compare=False)
    """The check-out instant, if any (not compared)."""


def reference_stays(checkins: Iterable[Checkin | Sequence[Any]]) -> list[Stay]:
    """The final stays of these accepted check-ins, in (person, at, venue, checkin_id) order.

    A stay of p starting at t ends at the earliest of its natural end (``t + dwell``, or the check-out
    instant) and the start of p's next stay: the earliest stay of p, at any venue, that starts strictly
    after t. Arrival order plays no part: only the set of check-ins.
    """
    raw = [Checkin(*c) for c in checkins]
    out = []
    for c in raw:
        natural = c.at + c.dwell_ms
        end, ended_by = natural, "natural"
        if c.checkout_ms is not None:
            if not c.at < c.checkout_ms <= c.at + MAX_CHECKOUT_MS:
                raise ValueError(f"check-out {c.checkout_ms} outside (at, at + 12 h] of {c}: an instant?")
            end, ended_by = c.checkout_ms, "checkout"
        later = [d.at for d in raw if d.person_id == c.person_id and d.at > c.at]
        if later and min(later) < end:
            end, ended_by = min(later), "next_stay"
        out.append(
            Stay(c.checkin_id, c.person_id, c.venue_id, c.at, end, "", ended_by, natural, c.checkout_ms)
        )
    return sorted(out, key=lambda s: (s.person_id, s.at, s.venue_id, s.checkin_id))


def _in_scope(stay: Stay, scope: str) -> bool:
    return stay.community.startswith(scope)


def reference_visits(
    stays: Sequence[Stay], person_id: int, since: int, until: int, scope: str = ""
) -> list[dict[str, Any]]:
    """The person's stays starting in ``[since, until)``, oldest first, with the timeline's fields
    ``checkin_id``, ``venue_id``, ``at``, ``end_at`` and ``checked_out`` (ended by the check-out)."""
    mine = [s for s in stays if s.person_id == person_id and since <= s.at < until and _in_scope(s, scope)]
    mine.sort(key=lambda s: (s.at, s.venue_id, s.checkin_id))
    return [
        {
            "checkin_id": s.checkin_id,
            "venue_id": s.venue_id,
            "at": iso(s.at),
            "end_at": iso(s.end),
            "checked_out": s.ended_by == "checkout",
        }
        for s in mine
    ]


Pair = tuple[int, int, int]
"""(overlap ms, overlap start, venue) of two stays with a positive overlap."""


def _pairs(index: Sequence[Stay], theirs: Sequence[Stay]) -> list[Pair]:
    """Every pair (index stay a, stay b) at one venue with ``min(ends) - max(starts) > 0``."""
    out = []
    for a in index:
        for b in theirs:
            if a.venue_id != b.venue_id:
                continue
            start, end = max(a.at, b.at), min(a.end, b.end)
            if end - start > 0:
                out.append((end - start, start, b.venue_id))
    return out


def _contact(person: int, pairs: Sequence[Pair], via: list[int] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "person_id": person,
        "overlap_seconds": sum(p[0] for p in pairs) / 1000,
        "first_contact_at": iso(min(p[1] for p in pairs)),
        "venue_ids": sorted({p[2] for p in pairs}),
    }
    if via is not None:
        item["via"] = via
    return item


def _ordered(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda c: (-c["overlap_seconds"], c["person_id"]))


def reference_contacts(
    stays: Sequence[Stay],
    person_id: int,
    since: int,
    until: int,
    min_overlap_ms: int = 15 * MIN_MS,
    depth: int = 1,
    scope: str = "",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(contacts, second_degree)`` as the contacts answer lists them (``second_degree`` is empty at
    depth 1), from the final stays (:func:`reference_stays`).

    ``overlap(i, q)`` is the sum over pairs (index stay a of i starting in ``[since, until)``, stay b of
    q at the same venue) of the positive ``min(end_a, end_b) - max(start_a, start_b)``; q is a contact
    when it is positive and ``>= min_overlap_ms``. Depth 2: each contact q's stays starting in
    ``[first_contact_at(q), until)`` are index stays; r (not i, not a contact) qualifies via q when
    ``overlap(q, r)`` over those is positive and ``>= min_overlap_ms``; its ``overlap_seconds``,
    ``first_contact_at`` and ``venue_ids`` are over the pairs of the q it qualifies via.
    """
    seen = [s for s in stays if _in_scope(s, scope)]
    by_person: dict[int, list[Stay]] = {}
    for s in seen:
        by_person.setdefault(s.person_id, []).append(s)
    index = [s for s in by_person.get(person_id, []) if since <= s.at < until]
    first_pairs: dict[int, list[Pair]] = {}
    for q, theirs in by_person.items():
        pairs = _pairs(index, theirs)
        if q != person_id and pairs and sum(p[0] for p in pairs) >= min_overlap_ms:
            first_pairs[q] = pairs
    first = _ordered([_contact(q, pairs) for q, pairs in first_pairs.items()])
    if depth < 2:
        return first, []
    second_pairs: dict[int, dict[int, list[Pair]]] = {}
    for q, pairs in first_pairs.items():
        first_at = min(p[1] for p in pairs)
        index_q = [s for s in by_person[q] if first_at <= s.at < until]
        for r, theirs in by_person.items():
            if r == person_id or r in first_pairs:
                continue
            found = _pairs(index_q, theirs)
            if found and sum(p[0] for p in found) >= min_overlap_ms:
                second_pairs.setdefault(r, {})[q] = found
    second = _ordered(
        [
            _contact(r, [p for pairs in via.values() for p in pairs], sorted(via))
            for r, via in second_pairs.items()
        ]
    )
    return first, second


def reference_exposures(
    stays: Sequence[Stay], sites: Sequence[tuple[int, int, int]], scope: str = ""
) -> list[dict[str, Any]]:
    """Exposure screening of ``sites`` = [(venue_id, since, until)]: every person with a stay at a site's
    venue overlapping ``[since, until)`` by a positive amount, as the answer lists them."""
    per: dict[int, dict[str, Any]] = {}
    for s in stays:
        if not _in_scope(s, scope):
            continue
        for venue, since, until in sites:
            if s.venue_id == venue and min(s.end, until) - max(s.at, since) > 0:
                e = per.setdefault(s.person_id, {"venues": set(), "first": s.at})
                e["venues"].add(venue)
                e["first"] = min(e["first"], s.at)
    out = [
        {"person_id": p, "venue_ids": sorted(e["venues"]), "first_at": iso(e["first"])}
        for p, e in per.items()
    ]
    return sorted(out, key=lambda e: (e["first_at"], e["person_id"]))


def _together_ms(by_case: dict[int, list[Stay]]) -> int:
    """The time during which at least two of these cases were there at once: every instant where a stay
    of one case starts or ends cuts the time into pieces; a piece counts when stays of two or more
    distinct cases cover it."""
    stays = [s for mine in by_case.values() for s in mine]
    cuts = sorted({t for s in stays for t in (s.at, s.end)})
    total = 0
    for start, end in itertools.pairwise(cuts):
        present = {s.person_id for s in stays if s.at <= start and end <= s.end}
        if len(present) >= 2:
            total += end - start
    return total


def reference_sources(
    stays: Sequence[Stay],
    cases: Iterable[int],
    since: int,
    until: int,
    min_cases: int = 2,
    min_overlap_ms: int = 15 * MIN_MS,
    scope: str = "",
    with_stays: bool = True,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(common_venues, possible_sources)`` of source tracing, as the sources answer lists them, from
    the final stays (:func:`reference_stays`). With ``with_stays`` each common venue also lists the
    cases' index stays there (``stays``: ``person_id``, ``at``, ``end_at``, by start then person), which
    the answer adds for the console's timeline.

    A case's stays starting in ``[since, until)`` are its index stays (as for contacts).
    ``common_venues``: every venue where at least ``min_cases`` cases have an index stay; ``cases``
    (sorted), ``first_at`` and ``last_at`` (earliest and latest such start), ``together_seconds`` (the
    time at least two cases were there at once, over those stays). Sorted by number of cases desc,
    ``together_seconds`` desc, ``venue_id``. ``possible_sources``: every person s not a case with
    ``overlap(c, s)`` positive and ``>= min_overlap_ms`` for at least ``min_cases`` cases c (the cases
    s met); ``cases`` (sorted), ``overlap_seconds`` (the sum of ``overlap(c, s)`` over the cases met),
    ``venue_ids`` and ``first_contact_at`` over the pairs of the cases met. Sorted by number of cases
    desc, ``overlap_seconds`` desc, ``person_id``.
    """
    chosen = set(cases)
    by_person: dict[int, list[Stay]] = {}
    for s in stays:
        if _in_scope(s, scope):
            by_person.setdefault(s.person_id, []).append(s)
    index = {c: [s for s in by_person.get(c, []) if since <= s.at < until] for c in sorted(chosen)}
    at_venue: dict[int, dict[int, list[Stay]]] = {}
    for c, mine in index.items():
        for s in mine:
            at_venue.setdefault(s.venue_id, {}).setdefault(c, []).append(s)
    common = []
    for venue, by_case in at_venue.items():
        if len(by_case) < min_cases:
            continue
        starts = [s.at for mine in by_case.values() for s in mine]
        item: dict[str, Any] = {
            "venue_id": venue,
            "cases": sorted(by_case),
            "first_at": iso(min(starts)),
            "last_at": iso(max(starts)),
            "together_seconds": _together_ms(by_case) / 1000,
        }
        if with_stays:
            there = sorted((s for mine in by_case.values() for s in mine), key=lambda s: (s.at, s.person_id))
            item["stays"] = [{"person_id": s.person_id, "at": iso(s.at), "end_at": iso(s.end)} for s in there]
        common.append(item)
    common.sort(key=lambda v: (-len(v["cases"]), -v["together_seconds"], v["venue_id"]))
    possible: list[dict[str, Any]] = []
    for person, theirs in by_person.items():
        if person in chosen:
            continue
        met: dict[int, list[Pair]] = {}
        for c, mine in index.items():
            pairs = _pairs(mine, theirs)
            if pairs and sum(p[0] for p in pairs) >= min_overlap_ms:
                met[c] = pairs
        if len(met) < min_cases:
            continue
        pairs = [p for found in met.values() for p in found]
        possible.append(
            {
                "person_id": person,
                "cases": sorted(met),
                "overlap_seconds": sum(p[0] for p in pairs) / 1000,
                "venue_ids": sorted({p[2] for p in pairs}),
                "first_contact_at": iso(min(p[1] for p in pairs)),
            }
        )
    possible.sort(key=lambda s: (-len(s["cases"]), -s["overlap_seconds"], s["person_id"]))
    return common, possible


# --- worlds ------------------------------------------------------------------------------------------------


@dataclass
class World:
    base_ms: int
    venues: dict[int, tuple[int, str]]
    """venue_id -> (dwell minutes, community)"""
    checkins: list[Checkin] = field(default_factory=list)
    """The accepted check-ins, one per person."""
    stays: list[Stay] = field(default_factory=list)
    """The final stays (what FINAL reads): :func:`reference_stays` of the check-ins."""
    versions: list[list[list[Any]]] = field(default_factory=list)
    """Rows of ``scans`` by version: [0] the check-ins with their natural end, then each change of an end."""
    persons: list[int] = field(default_factory=list)


def _row(stay: Stay, end: int, version: int, ended_by: str) -> list[Any]:
    values: dict[str, Any] = {
        "checkin_id": stay.checkin_id,
        "person_id": stay.person_id,
        "venue_id": stay.venue_id,
        "at": to_dt(stay.at),
        "end_at": to_dt(end),
        "version": version,
        "district": stay.community[:6],
        "street": stay.community[:9],
        "community": stay.community,
        "status": "green",
        "verdict": "pass",
        "reason": "",
        "source": "phone",
        "owner_id": stay.person_id,
        "lat": 0.0,
        "lon": 0.0,
        "stream_id": f"{stay.at}-0",
        "received_at": to_dt(stay.at),
        "ended_by": ended_by,
    }
    return [values[c] for c in COLUMNS]


def world_from_checkins(
    base_ms: int, venues: dict[int, tuple[int, str]], checkins: Iterable[Checkin]
) -> World:
    """A world of these accepted check-ins: its final stays and the row versions that lead to them
    (natural end, then the check-out, then the cut by the next stay, each a newer version)."""
    raw = [Checkin(*c) for c in checkins]
    world = World(base_ms=base_ms, venues=venues, checkins=raw)
    world.stays = [replace(s, community=venues[s.venue_id][1]) for s in reference_stays(raw)]
    for stay in world.stays:
        ends = [(stay.natural_end, "natural")]
        if stay.checkout is not None:
            ends.append((stay.checkout, "checkout"))
        if stay.ended_by == "next_stay":
            ends.append((stay.end, "next_stay"))
        for version, (end, ended_by) in enumerate(ends):
            while len(world.versions) <= version:
                world.versions.append([])
            world.versions[version].append(_row(stay, end, version, ended_by))
    world.persons = sorted({c.person_id for c in raw})
    return world


def build_world(
    base_ms: int,
    venues: dict[int, tuple[int, str]],
    checkins: list[tuple[int, list[int], int, int | None]],
) -> World:
    """``checkins``: (venue_id, persons (scanner first, then companions), at_ms, check-out offset ms after
    at_ms or None), in any order; check-in n gets id ``c<n>``."""
    raw: list[Checkin] = []
    for n, (venue, people, at, checkout) in enumerate(checkins):
        dwell = venues[venue][0] * MIN_MS
        out = None if checkout is None else at + checkout
        raw.extend(Checkin(f"c{n}", person, venue, at, dwell, out) for person in dict.fromkeys(people))
    return world_from_checkins(base_ms, venues, raw)


def random_world(
    rng: random.Random, base_ms: int, n_venues: int = 5, n_persons: int = 25, n_checkins: int = 60
) -> World:
    """Random check-ins over 36 h: companions, check-outs (some up to 12 h), and now and then a person
    scanning again and again a minute or so apart (each scan cuts the stay before it)."""
    venues = {
        1000 + v: (rng.choice([15, 30, 45, 60, 60, 90, 120, 240]), rng.choice(COMMUNITIES))
        for v in range(n_venues)
    }
    span_ms = 36 * HOUR_MS
    checkins: list[tuple[int, list[int], int, int | None]] = []
    while len(checkins) < n_checkins:
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
        if rng.random() < 0.05:  # a burst of repeated scans, 61 s apart
            for k in range(1, rng.randrange(3, 15)):
                checkins.append((venue, [scanner], at + k * 61_000, None))
    return build_world(base_ms, venues, checkins)


def load(store: Store, world: World, duplicate: bool = True) -> None:
    """Insert the world: check-ins, then each newer version of the stays' ends, and a duplicated batch."""
    store.command(f"TRUNCATE TABLE {store.table('scans')}")
    store.command(f"TRUNCATE TABLE {store.table('scans_by_person')}")
    store.command(f"TRUNCATE TABLE {store.table('longest_stays')}")
    for version, rows in enumerate(world.versions):
        if not rows:
            continue
        store.insert("scans", COLUMNS, rows, column_oriented=False)
        if duplicate and version == 0:
            store.insert("scans", COLUMNS, rows[: len(rows) // 2], column_oriented=False)


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


async def sources_api(
    client: AsyncTestClient[Any],
    headers: dict[str, str],
    cases: Sequence[int],
    since: int,
    until: int,
    min_cases: int = 2,
    minutes: int = 15,
) -> dict[str, Any]:
    """The sources answer (``{"status": 404, ...}`` with empty lists for cases unknown to the key)."""
    r = await client.post(
        "/v1/trace/sources",
        json={
            "person_ids": list(cases),
            "since": iso(since),
            "until": iso(until),
            "min_cases": min_cases,
            "min_overlap_minutes": minutes,
            "reason": "cluster 7 source tracing",
        },
        headers=headers,
    )
    if r.status_code == 404:
        return {"common_venues": [], "possible_sources": [], "status": 404}
    assert r.status_code == 200, r.text
    return dict(r.json())


async def visits_api(
    client: AsyncTestClient[Any], headers: dict[str, str], person: int, since: int, until: int
) -> list[dict[str, Any]]:
    """The timeline's stays with the fields :func:`reference_visits` lists ([] for an unknown person)."""
    r = await client.get(
        f"/v1/trace/persons/{person}/visits",
        params={"since": iso(since), "until": iso(until), "reason": "case 42 timeline"},
        headers=headers,
    )
    if r.status_code == 404:
        return []
    assert r.status_code == 200, r.text
    keys = ("checkin_id", "venue_id", "at", "end_at", "checked_out")
    return [{k: v[k] for k in keys} for v in r.json()["visits"]]


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
        first, second = reference_contacts(world.stays, person, since, until, minutes * MIN_MS, 2, scope)
        assert got["contacts"] == first, (person, since, until, minutes)
        assert got["second_degree"] == second, (person, since, until, minutes)
        if got.get("status") == 404:
            assert not any(s.person_id == person and s.community.startswith(scope) for s in world.stays)
        got1 = await contacts_api(client, headers, person, since, until, minutes, 1)
        assert got1["contacts"] == first and got1["second_degree"] == []
        assert await visits_api(client, headers, person, since, until) == reference_visits(
            world.stays, person, since, until, scope
        )
        compared += len(first) + len(second)
    venues = [v for v, (_dwell, community) in world.venues.items() if community.startswith(scope)]
    if not venues:
        return compared
    sites = []
    for _ in range(rng.randrange(1, 4)):
        start = world.base_ms + rng.randrange(0, 36 * 60) * MIN_MS
        sites.append((rng.choice(venues), start, start + rng.randrange(1, 300) * MIN_MS))
    assert await exposures_api(client, headers, sites) == reference_exposures(world.stays, sites, scope)
    return compared
