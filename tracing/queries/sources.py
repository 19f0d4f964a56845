"""Source tracing (溯源, backward tracing): where did a cluster of cases pick it up, and who was there
with most of them. Pure functions of a :class:`~tracing.storage.store.Store` and plain values, instants
in unix milliseconds, like :mod:`tracing.queries.trace`. The semantics are docs/ARCHITECTURE.md's
"Stays and contacts" (source tracing), exactly:

* each case's stays starting in ``[since, until)`` are its index stays, as for contacts;
* ``common_venues``: every venue where at least ``min_cases`` cases have an index stay, with the
  cases, the earliest and latest start of those stays, and ``together``: the time during which at
  least two of the cases were there at once (over those stays);
* ``possible_sources``: every person s who is not a case and is a contact of at least ``min_cases``
  cases, a contact of case c meaning ``overlap(c, s)`` (the cumulative overlap of contacts, c's index
  stays against all of s's stays at the same venues) is positive and at least ``min_overlap``; per
  person the cases met, the sum of their overlaps, and the venues and first contact over those cases.

How it stays exact and fast: the cases' index stays are one read of ``scans_by_person`` (primary key on
person). Common venues come from those rows alone, in Python: a few thousand stays at most. Possible
sources are the contacts round of a depth-2 trace with the cases as owners (one query on ``scans``,
:func:`tracing.queries.trace.overlaps_sql`): each index stay meets only the candidate stays at its venue
that can overlap it (started after its start minus the longest stay recorded there that day, before its
end); every positive overlap is summed per (person, case); the sums that reach the minimum qualify; and
the engine keeps the persons with at least ``min_cases`` qualifying cases and sorts them.

Jurisdiction scope applies as everywhere: a scoped key's index and candidate stays are only those at
venues whose community starts with its prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tracing.queries.trace import (
    FINAL_SETTINGS,
    MAX_INDEX_STAYS,
    IndexStay,
    TooBroad,
    index_stays,
    max_stay_ms,
    overlaps_sql,
    with_reach,
)
from tracing.storage.store import Store

MIN_CASES = 2
MAX_CASES = 500
REACH_FROM = 400
"""From this many index stays on, each stay's reach is narrowed by the longest stay recorded at its
venue (one more query, fewer venue-days read); below it the upper bound costs less (measured with
loadtest/bench_sources.py: 20 cases, about 120 stays, are faster without it, 500 cases faster with it)."""


@dataclass(frozen=True)
class CommonVenue:
    venue_id: int
    cases: list[int]
    """Sorted."""
    first_ms: int
    last_ms: int
    together_ms: int
    stays: list[tuple[int, int, int]] = field(default_factory=list)
    """The cases' index stays there, ``(case, start, end)`` by start then case: what a timeline draws."""


@dataclass(frozen=True)
class Source:
    person_id: int
    cases: list[int]
    """Sorted: the cases met."""
    overlap_ms: int
    first_contact_ms: int
    venue_ids: list[int]
    """Sorted."""


@dataclass
class SourcesResult:
    index_stays: int
    cases_with_stays: list[int]
    """Sorted: the cases with at least one index stay (within the scope)."""
    common_venues: list[CommonVenue] = field(default_factory=list)
    possible_sources: list[Source] = field(default_factory=list)


def together_ms(spans_by_case: dict[int, list[tuple[int, int]]]) -> int:
    """The time during which at least two cases were present at once.

    Each case's spans ``[start, end)`` are merged first, so a case counts once however its stays lie;
    then a sweep over the merged spans adds up the time the count of cases present is two or more.
    """
    events: list[tuple[int, int]] = []
    for spans in spans_by_case.values():
        merged: list[list[int]] = []
        for start, end in sorted(spans):
            if end <= start:
                continue
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        for start, end in merged:
            events += [(start, 1), (end, -1)]
    events.sort()
    total, present, since = 0, 0, 0
    for at, step in events:
        if present >= 2:
            total += at - since
        present += step
        since = at
    return total


def common_venues(stays: Sequence[IndexStay], min_cases: int) -> list[CommonVenue]:
    """Venues where at least ``min_cases`` cases have one of these index stays, in the contract's order."""
    by_venue: dict[int, dict[int, list[tuple[int, int]]]] = {}
    for s in stays:
        by_venue.setdefault(s.venue_id, {}).setdefault(s.owner, []).append((s.at_ms, s.end_ms))
    out = []
    for venue, by_case in by_venue.items():
        if len(by_case) < min_cases:
            continue
        stays_there = sorted((start, case, end) for case, spans in by_case.items() for start, end in spans)
        out.append(
            CommonVenue(
                venue,
                sorted(by_case),
                stays_there[0][0],
                stays_there[-1][0],
                together_ms(by_case),
                [(case, start, end) for start, case, end in stays_there],
            )
        )
    out.sort(key=lambda v: (-len(v.cases), -v.together_ms, v.venue_id))
    return out


def possible_sources(
    store: Store,
    stays: Sequence[IndexStay],
    cases: Sequence[int],
    min_cases: int,
    min_overlap_ms: int,
    scope: str,
) -> list[Source]:
    """Persons (not cases) who are contacts of at least ``min_cases`` cases, sorted by the engine."""
    if not stays:
        return []
    per_person, params = overlaps_sql(store, stays, cases, min_overlap_ms, scope)
    params["min_cases"] = min_cases
    sql = (
        "SELECT person, overlap, first, arraySort(venues), arraySort(via) "
        f"FROM ({per_person}) WHERE length(via) >= {{min_cases:UInt32}} "
        "ORDER BY length(via) DESC, overlap DESC, person"
    )
    return [
        Source(int(p), [int(c) for c in via], int(overlap), int(first), [int(v) for v in venues])
        for p, overlap, first, venues, via in store.rows(sql, params, FINAL_SETTINGS)
    ]


def any_has_stays(store: Store, persons: Sequence[int], scope: str = "") -> bool:
    """Whether any of these persons has a stay recorded (within the scope): one read of their rows."""
    sql = (
        f"SELECT count() FROM (SELECT 1 FROM {store.table('scans_by_person')} "
        "PREWHERE person_id IN {ps:Array(UInt64)} "
        "WHERE startsWith(community, {scope:String}) LIMIT 1)"
    )
    return bool(store.scalar(sql, {"ps": sorted(set(persons)), "scope": scope}))


def sources(
    store: Store,
    cases: Sequence[int],
    since_ms: int,
    until_ms: int,
    *,
    min_cases: int = MIN_CASES,
    min_overlap_ms: int = 15 * 60_000,
    scope: str = "",
) -> SourcesResult:
    """Common venues and possible sources of these cases in ``[since, until)``.

    Raises :class:`~tracing.queries.trace.TooBroad` when the cases have more index stays than
    :data:`~tracing.queries.trace.MAX_INDEX_STAYS` (a question too broad to answer interactively).
    """
    chosen = sorted(set(cases))
    max_stay = max_stay_ms(store)
    index = index_stays(store, chosen, since_ms, until_ms, scope, max_stay)
    if len(index) > MAX_INDEX_STAYS:
        raise TooBroad(
            f"the {len(chosen)} cases have {len(index)} stays in the window (limit {MAX_INDEX_STAYS}); "
            "narrow the window or name fewer cases"
        )
    result = SourcesResult(
        index_stays=len(index),
        cases_with_stays=sorted({s.owner for s in index}),
        common_venues=common_venues(index, min_cases),
    )
    if len(result.cases_with_stays) >= min_cases:
        stays = with_reach(store, index, max_stay) if len(index) >= REACH_FROM else index
        result.possible_sources = possible_sources(store, stays, chosen, min_cases, min_overlap_ms, scope)
    return result
