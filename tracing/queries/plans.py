"""How a contacts round reads its candidate stays (docs/ARCHITECTURE.md, "Stays and contacts").

The index stays come from ``scans_by_person`` (primary key on person); each index stay reaches back as
far as a stay overlapping it may have started (:func:`with_reach`). Candidates are read from ``scans``
(primary key on venue, at) by exact ``venue = v AND at in (lo, hi]`` key ranges when there are at most
:data:`KEY_RANGES_MAX` merged ranges, else by whole venue-days, one ``UNION ALL`` branch per day
partition. :func:`overlaps_sql` joins them with the index stays and sums the overlaps per (person,
owner of the index stay); :mod:`tracing.queries.contacts` and :mod:`tracing.queries.sources` page and
filter that query.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from checkin.platform.instants import DAY_MS, HOUR_MS
from tracing.queries.overlaps import Candidate
from tracing.queries.stays import FINAL_SETTINGS, IndexStay, int_set, int_table, scope_sql
from tracing.storage.store import Store

KEY_RANGES_MAX = 16
"""Rounds with at most this many merged (venue, time) ranges read candidates by exact key ranges."""

KeyRange = tuple[int, int, int, int]
"""A merged key range of candidates: venue, ``(lo, hi]`` of ``at``, the earliest index stay's start."""


def index_stays(
    store: Store, persons: Sequence[int], since_ms: int, until_ms: int, scope: str, max_stay: int
) -> list[IndexStay]:
    """Stays of these persons starting in ``[since, until)``, each reaching back ``max_stay``."""
    params: dict[str, Any] = {"since": since_ms, "until": until_ms, "scope": scope}
    sql = (
        "SELECT person_id, venue_id, toUnixTimestamp64Milli(at), toUnixTimestamp64Milli(end_at) "
        f"FROM {store.table('scans_by_person')} FINAL "
        f"PREWHERE person_id IN {int_set(params, 'ps', 'UInt64', persons)} "
        "WHERE at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC') "
        f"AND at < fromUnixTimestamp64Milli({{until:Int64}}, 'UTC'){scope_sql(scope)}"
    )
    rows = store.rows(sql, params, FINAL_SETTINGS)
    return [IndexStay(int(p), int(v), int(a), int(e), max_stay) for p, v, a, e in rows]


def with_reach(store: Store, stays: Sequence[IndexStay], max_stay: int) -> list[IndexStay]:
    """The index stays, each with the longest stay recorded at its venue on the days a candidate may start.

    Exact: a stay overlapping ``s`` that started on day ``d`` at venue ``v`` started after
    ``s.at - longest(v, d)``. Where the table has no row for the index stay's own venue-day (it
    cannot be complete then), the stay keeps the upper bound ``max_stay``.
    """
    if not stays:
        return []
    params: dict[str, Any] = {
        "lo": min(s.at_ms for s in stays) - max_stay,
        "hi": max(s.end_ms for s in stays),
        "max_stay": max_stay,
    }
    venues = int_set(params, "vs", "UInt32", sorted({s.venue_id for s in stays}))
    index = int_table(
        params,
        "stays",
        "n UInt32, venue_id UInt32, sa Int64, se Int64",
        ((n, s.venue_id, s.at_ms, s.end_ms) for n, s in enumerate(stays)),
    )
    # Per index stay (n): the longest stay over the candidate days, and whether its own day has a row.
    rows = store.rows(
        f"SELECT i.n, max(l.longest), countIf(l.d = intDiv(i.sa, {DAY_MS})) "
        f"FROM {index} AS i INNER JOIN (SELECT venue_id, dateDiff('day', toDate('1970-01-01'), day) AS d, "
        f"max(longest_ms) AS longest FROM {store.table('longest_stays')} WHERE venue_id IN {venues} "
        "AND day >= toDate(fromUnixTimestamp64Milli({lo:Int64}, 'UTC')) "
        "AND day <= toDate(fromUnixTimestamp64Milli({hi:Int64}, 'UTC')) GROUP BY venue_id, d) AS l "
        "ON i.venue_id = l.venue_id "
        f"WHERE l.d >= intDiv(i.sa - {{max_stay:Int64}} + 1, {DAY_MS}) AND l.d <= intDiv(i.se, {DAY_MS}) "
        "GROUP BY i.n",
        params,
    )
    reach = {int(n): int(longest) for n, longest, own_day in rows if own_day}
    return [replace(s, reach_ms=reach.get(n, max_stay)) for n, s in enumerate(stays)]


def _venue_days(stays: Sequence[IndexStay]) -> dict[int, set[int]]:
    """Per day (unix ms // day), the venues where an overlapping candidate stay may start that day."""
    by_day: dict[int, set[int]] = {}
    for s in stays:
        lo, hi = s.candidate_starts()
        for day in range((lo + 1) // DAY_MS, hi // DAY_MS + 1):
            by_day.setdefault(day, set()).add(s.venue_id)
    return by_day


def _merged_ranges(stays: Sequence[IndexStay]) -> list[KeyRange]:
    """Per venue, the merged ranges ``(lo, hi]`` of ``at`` an overlapping candidate stay may start in,
    each with the earliest start of its index stays (an overlapping candidate ends after it)."""
    by_venue: dict[int, list[tuple[int, int, int]]] = {}
    for s in stays:
        by_venue.setdefault(s.venue_id, []).append((*s.candidate_starts(), s.at_ms))
    out: list[KeyRange] = []
    for venue, spans in by_venue.items():
        spans.sort()
        lo, hi, first = spans[0]
        for a, b, at in spans[1:]:
            if a <= hi:
                hi, first = max(hi, b), min(first, at)
            else:
                out.append((venue, lo, hi, first))
                lo, hi, first = a, b, at
        out.append((venue, lo, hi, first))
    return out


_CANDIDATE_COLUMNS = (
    "SELECT person_id, venue_id, toUnixTimestamp64Milli(at) AS ca, toUnixTimestamp64Milli(end_at) AS ce "
)


def _by_key_ranges(store: Store, ranges: Sequence[KeyRange], params: dict[str, Any]) -> str:
    """Candidate stays read by one exact ``venue = v AND at in (lo, hi]`` primary-key range each,
    those that end by the earliest index stay's start left out (most of the 12 h a range reaches back).

    The end is not in the key: the engine filters on it after ``FINAL`` has picked each stay's newest
    row (``optimize_move_to_prewhere_if_final`` off, :data:`FINAL_SETTINGS`), so a stay whose newer
    row ends it earlier is judged by that end.
    """
    conds = []
    for n, (venue, lo, hi, first) in enumerate(ranges):
        conds.append(
            f"(venue_id = {{v{n}:UInt32}} AND at > fromUnixTimestamp64Milli({{lo{n}:Int64}}, 'UTC') "
            f"AND at <= fromUnixTimestamp64Milli({{hi{n}:Int64}}, 'UTC') "
            f"AND end_at > fromUnixTimestamp64Milli({{e{n}:Int64}}, 'UTC'))"
        )
        params.update({f"v{n}": venue, f"lo{n}": lo, f"hi{n}": hi, f"e{n}": first})
    return (
        f"{_CANDIDATE_COLUMNS}FROM {store.table('scans')} FINAL WHERE ({' OR '.join(conds)})"
        f"{scope_sql(params['scope'])}"
    )


def _by_venue_days(store: Store, by_day: dict[int, set[int]], params: dict[str, Any]) -> str:
    """Candidate stays read a day partition at a time: ``venue_id IN (that day's venues)``, whole days."""
    branches = []
    for n, day in enumerate(sorted(by_day)):
        venues = int_set(params, f"vs{n}", "UInt32", sorted(by_day[day]))
        params[f"day{n}"] = day * DAY_MS
        branches.append(
            f"{_CANDIDATE_COLUMNS}FROM {store.table('scans')} FINAL WHERE venue_id IN {venues} "
            f"AND at >= fromUnixTimestamp64Milli({{day{n}:Int64}}, 'UTC') "
            f"AND at < fromUnixTimestamp64Milli({{day{n}:Int64}} + {DAY_MS}, 'UTC')"
            f"{scope_sql(params['scope'])}"
        )
    return " UNION ALL ".join(branches)


def few_ranges(stays: Sequence[IndexStay]) -> list[KeyRange] | None:
    """The merged key ranges of these index stays' candidates, or None when there are too many to read
    them range by range (:data:`KEY_RANGES_MAX`). A range covers one venue: a round of more venues
    than that is answered without sorting its stays (tens of milliseconds at 20,000 of them)."""
    if len({s.venue_id for s in stays}) > KEY_RANGES_MAX:
        return None
    ranges = _merged_ranges(stays)
    return ranges if len(ranges) <= KEY_RANGES_MAX else None


def candidates_in_ranges(store: Store, ranges: Sequence[KeyRange], scope: str) -> list[Candidate]:
    """The candidate stays (person, venue, start, end) in these exact key ranges, one row per stay."""
    params: dict[str, Any] = {"scope": scope}
    rows = store.rows(_by_key_ranges(store, ranges, params), params, FINAL_SETTINGS)
    return [(int(p), int(v), int(a), int(e)) for p, v, a, e in rows]


def overlaps_sql(
    store: Store,
    stays: Sequence[IndexStay],
    exclude: Iterable[int],
    min_ms: int,
    scope: str,
) -> tuple[str, dict[str, Any]]:
    """The query of qualifying overlaps per person (columns person, overlap, first, venues, via).

    ``venues`` and ``via`` come unsorted: only the rows of the requested page are worth sorting.

    Each index stay joins the candidates at its venue that started in an hour an overlapping
    candidate may start in (:meth:`IndexStay.candidate_starts`), so a candidate meets only the index
    stays around its own start, not every index stay of its venue that day. The threshold applies
    to the sum per (person, owner): the cumulative overlap of the contract. Summing per owner before
    the threshold is what depth 2 needs (a person qualifies through each first-degree contact on
    its own); at depth 1 there is one owner.
    """
    params: dict[str, Any] = {"scope": scope, "need": max(min_ms, 1)}
    ranges = few_ranges(stays)
    if ranges is not None:
        candidates = _by_key_ranges(store, ranges, params)
    else:
        candidates = _by_venue_days(store, _venue_days(stays), params)
    index = int_table(
        params,
        "stays",
        "owner UInt64, venue_id UInt32, sa Int64, se Int64, lo Int64, hi Int64",
        ((s.owner, s.venue_id, s.at_ms, s.end_ms, *s.candidate_starts()) for s in stays),
    )
    excluded = int_set(params, "excl", "UInt64", sorted(set(exclude)))
    pairs = (
        "SELECT c.person_id AS person, s.owner AS owner, "
        "sum(least(c.ce, s.se) - greatest(c.ca, s.sa)) AS overlap, "
        "min(greatest(c.ca, s.sa)) AS first, groupUniqArray(c.venue_id) AS venues "
        f"FROM ({candidates}) AS c "
        "INNER JOIN (SELECT owner, venue_id, sa, se, "
        f"arrayJoin(range(intDiv(lo + 1, {HOUR_MS}), intDiv(hi, {HOUR_MS}) + 1)) "
        f"AS hour FROM {index}) AS s "
        f"ON c.venue_id = s.venue_id AND intDiv(c.ca, {HOUR_MS}) = s.hour "
        "WHERE least(c.ce, s.se) > greatest(c.ca, s.sa) "
        f"AND c.person_id NOT IN {excluded} "
        "GROUP BY person, owner HAVING overlap >= {need:Int64}"
    )
    sql = (
        "SELECT person, sum(overlap) AS overlap, min(first) AS first, "
        "groupUniqArrayArray(venues) AS venues, groupArray(owner) AS via "
        f"FROM ({pairs}) GROUP BY person"
    )
    return sql, params
