"""Contact-trace queries over the Store: timelines, contacts (depth 1 and 2), exposures.

Pure functions of a :class:`~tracing.storage.store.Store` and plain values; they know
nothing of HTTP. Instants are unix milliseconds (UTC) throughout; the API layer
formats them. The semantics are docs/ARCHITECTURE.md's "Stays and contacts", exactly:

* a stay is ``[at, end_at)``. The rows are written already final: ``end_at`` is the
  earliest of the natural end (or the check-out) and the start of the person's next
  stay, so a person's stays never overlap and nothing is cut here. ``scans`` and
  ``scans_by_person`` are read with ``FINAL``: every change of a stay's end is a newer
  row version of the same key, and only the newest counts;
* contacts of ``i`` in ``[since, until)``: ``overlap(i, q)`` is the sum, over pairs
  (stay of ``i`` starting in the window, stay of ``q`` at the same venue), of the
  positive overlaps; ``q != i`` is a contact when that sum is positive and at least
  ``min_overlap`` (cumulative, not per pair). ``first_contact_at`` and ``venue_ids``
  are over the pairs with a positive overlap;
* depth 2: each first-degree ``q``'s stays starting in ``[first_contact_at(q), until)``
  are index stays; a person ``r`` that is neither ``i`` nor first-degree qualifies via
  ``q`` when ``overlap(q, r)`` (over ``q``'s index stays) is positive and at least
  ``min_overlap``; ``via`` = those ``q``, and ``overlap_seconds``, ``first_contact_at``
  and ``venue_ids`` are taken over the pairs of those ``q`` only;
* exposures: persons with a stay at a site's venue overlapping the site's window.

How the queries stay fast at tens of millions of rows: the index stays come
from ``scans_by_person`` (primary key on person); each round of contacts is one
query on ``scans`` (primary key on venue, at) that reads the candidate stays
around the index stays, joins them with the index stays (passed as CSV text, see
:func:`_int_table`) on venue and the hour a candidate starts in, and sums the
overlaps in the engine per (person, index person), keeping the sums that reach
the minimum. Few index stays are looked up by exact ``venue = v AND at in (a - 12 h, end)``
key ranges; many (depth 2) by whole venue-days, one branch per day partition, since
planning a query costs about a millisecond per OR'ed key range. Depth 2 joins each
index stay only with candidates that started after ``a - reach``, reach being the
longest stay recorded at that venue on those days (``longest_stays``; 12 h only
where someone checked out that late). The engine sorts the contacts and returns one
page of them with the total.

Jurisdiction scope: a scoped key (``scope`` = district, street or community
prefix) sees only stays recorded at venues whose community starts with the
prefix - index stays, candidate stays, timelines and exposures alike. A person
with no stay in the scope is "unknown" to that key.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from checkin.platform.instants import DAY_MS, HOUR_MS
from tracing.storage.store import Store

MAX_CHECKOUT_MS = 12 * HOUR_MS
"""A check-out may end a stay at most 12 h after the check-in (docs/ARCHITECTURE.md)."""
KEY_RANGES_MAX = 16
"""Rounds with at most this many merged (venue, time) ranges read candidates by exact key ranges."""
MAX_INDEX_STAYS = 20_000
"""Depth-2 index stays above this are refused: the question is too broad to answer interactively."""

FINAL_SETTINGS: dict[str, Any] = {
    # Rows of one stay share ``at`` and therefore the partition: FINAL needs no cross-partition merge.
    "do_not_merge_across_partitions_select_final": 1,
    "max_execution_time": 60,
}


class TooBroad(ValueError):
    """A depth-2 trace would use more index stays than :data:`MAX_INDEX_STAYS`."""


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Visit:
    checkin_id: str
    venue_id: int
    at_ms: int
    end_ms: int
    district: str
    street: str
    community: str
    status: str
    verdict: str
    source: str
    checked_out: bool
    """Ended by the person's check-out (not by the natural end, nor cut by their next stay)."""
    venue_name: str = ""


@dataclass
class Contact:
    person_id: int
    overlap_ms: int
    first_contact_ms: int
    venue_ids: list[int]
    """Sorted."""
    via: list[int] = field(default_factory=list)
    """Second degree: the first-degree persons that led here, sorted."""


@dataclass
class ContactsResult:
    index_stays: int
    contacts: list[Contact]
    """The requested page of first-degree contacts, in the contract's order (docs/ARCHITECTURE.md)."""
    second_degree: list[Contact]
    """The requested page of second-degree contacts, in the same order."""
    contacts_total: int = 0
    second_degree_total: int = 0


@dataclass
class Exposure:
    person_id: int
    first_ms: int
    venues: dict[int, int]
    """venue_id -> earliest start of a qualifying stay there."""


@dataclass(frozen=True)
class Site:
    venue_id: int
    since_ms: int
    until_ms: int


@dataclass(frozen=True)
class IndexStay:
    owner: int
    venue_id: int
    at_ms: int
    end_ms: int
    reach_ms: int
    """How long before ``at_ms`` a stay overlapping this one may have started (see :func:`with_reach`)."""

    def candidate_starts(self) -> tuple[int, int]:
        """``(lo, hi]``: where a stay overlapping this one by a positive amount starts.

        Every pair with a positive overlap counts towards a cumulative overlap, however short.
        """
        return self.at_ms - self.reach_ms, self.end_ms - 1


# --- instants ------------------------------------------------------------------------------------


# --- helpers ------------------------------------------------------------------------------------

_max_stay_cache: dict[str, tuple[float, int]] = {}
_MAX_STAY_TTL_S = 60.0


def max_stay_ms(store: Store) -> int:
    """Longest a stay can last: 12 h (check-out) or the longest venue dwell, whichever is larger.

    Read from the venue mirror (any version: an upper bound is enough) and cached for a minute.
    """
    key = f"{store.dsn}/{store.database}"
    now = time.monotonic()
    cached = _max_stay_cache.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]
    dwell_min = store.scalar(f"SELECT max(dwell_minutes) FROM {store.table('venues')}") or 0
    value = max(MAX_CHECKOUT_MS, int(dwell_min) * 60_000)
    _max_stay_cache[key] = (now + _MAX_STAY_TTL_S, value)
    return value


def _scope_sql(scope: str, column: str = "community") -> str:
    return f" AND startsWith({column}, {{scope:String}})" if scope else ""


def person_has_stays(store: Store, person_id: int, scope: str = "") -> bool:
    """Whether any stay of this person is recorded (within the scope)."""
    sql = (
        f"SELECT count() FROM (SELECT 1 FROM {store.table('scans_by_person')} "
        f"PREWHERE person_id = {{p:UInt64}} WHERE 1{_scope_sql(scope)} LIMIT 1)"
    )
    return bool(store.scalar(sql, {"p": person_id, "scope": scope}))


def venue_names(store: Store, venue_ids: Iterable[int]) -> dict[int, str]:
    ids = sorted(set(venue_ids))
    if not ids:
        return {}
    rows = store.rows(
        f"SELECT venue_id, argMax(name, updated_at) FROM {store.table('venues')} "
        f"WHERE venue_id IN {{ids:Array(UInt32)}} GROUP BY venue_id",
        {"ids": ids},
    )
    return {int(v): str(n) for v, n in rows}


def all_venue_names(store: Store) -> dict[int, str]:
    rows = store.rows(
        f"SELECT venue_id, argMax(name, updated_at) FROM {store.table('venues')} GROUP BY venue_id"
    )
    return {int(v): str(n) for v, n in rows}


def venue_communities(store: Store, venue_ids: Iterable[int]) -> dict[int, str]:
    """Community of each venue: the registry mirror, else the latest recorded stay there."""
    ids = sorted(set(venue_ids))
    if not ids:
        return {}
    rows = store.rows(
        f"SELECT venue_id, argMax(community, updated_at) FROM {store.table('venues')} "
        f"WHERE venue_id IN {{ids:Array(UInt32)}} GROUP BY venue_id",
        {"ids": ids},
    )
    out = {int(v): str(c) for v, c in rows}
    missing = [v for v in ids if v not in out]
    if missing:
        rows = store.rows(
            f"SELECT venue_id, argMax(community, at) FROM {store.table('scans')} "
            f"WHERE venue_id IN {{ids:Array(UInt32)}} GROUP BY venue_id",
            {"ids": missing},
        )
        out.update({int(v): str(c) for v, c in rows})
    return out


# --- timeline -----------------------------------------------------------------------------------


def visits(store: Store, person_id: int, since_ms: int, until_ms: int, scope: str = "") -> list[Visit]:
    """Stays of a person starting in ``[since, until)``, oldest first."""
    return visits_of_persons(store, [person_id], since_ms, until_ms, scope).get(person_id, [])


def visits_of_persons(
    store: Store,
    person_ids: Sequence[int],
    since_ms: int,
    until_ms: int,
    scope: str = "",
    names_of: Callable[[Store, Iterable[int]], dict[int, str]] | None = None,
) -> dict[int, list[Visit]]:
    """Stays of each of these persons starting in ``[since, until)``, oldest first, in one query (and
    one venue-name lookup, :func:`venue_names` unless ``names_of`` is given): the engine's cost per
    query, not per person, dominates a single read."""
    params: dict[str, Any] = {"since": since_ms, "until": until_ms, "scope": scope}
    sql = (
        "SELECT person_id, checkin_id, venue_id, toUnixTimestamp64Milli(at), "
        "toUnixTimestamp64Milli(end_at), district, street, community, toString(status), "
        "toString(verdict), toString(source), ended_by = 'checkout' "
        f"FROM {store.table('scans_by_person')} FINAL "
        f"PREWHERE person_id IN {_int_set(params, 'ps', 'UInt64', person_ids)} "
        "WHERE at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC') "
        f"AND at < fromUnixTimestamp64Milli({{until:Int64}}, 'UTC'){_scope_sql(scope)} "
        "ORDER BY person_id, at, venue_id, checkin_id"
    )
    rows = store.rows(sql, params, FINAL_SETTINGS)
    names = (names_of or venue_names)(store, [int(r[2]) for r in rows])
    found: dict[int, list[Visit]] = {}
    for r in rows:
        found.setdefault(int(r[0]), []).append(
            Visit(
                checkin_id=str(r[1]),
                venue_id=int(r[2]),
                at_ms=int(r[3]),
                end_ms=int(r[4]),
                district=str(r[5]),
                street=str(r[6]),
                community=str(r[7]),
                status=str(r[8]),
                verdict=str(r[9]),
                source=str(r[10]),
                checked_out=bool(r[11]),
                venue_name=names.get(int(r[2]), ""),
            )
        )
    return found


# --- contacts -----------------------------------------------------------------------------------


def index_stays(
    store: Store, persons: Sequence[int], since_ms: int, until_ms: int, scope: str, max_stay: int
) -> list[IndexStay]:
    """Stays of these persons starting in ``[since, until)``, each reaching back ``max_stay``."""
    params: dict[str, Any] = {"since": since_ms, "until": until_ms, "scope": scope}
    sql = (
        "SELECT person_id, venue_id, toUnixTimestamp64Milli(at), toUnixTimestamp64Milli(end_at) "
        f"FROM {store.table('scans_by_person')} FINAL "
        f"PREWHERE person_id IN {_int_set(params, 'ps', 'UInt64', persons)} "
        "WHERE at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC') "
        f"AND at < fromUnixTimestamp64Milli({{until:Int64}}, 'UTC'){_scope_sql(scope)}"
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
    venues = _int_set(params, "vs", "UInt32", sorted({s.venue_id for s in stays}))
    index = _int_table(
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


def _int_table(params: dict[str, Any], name: str, columns: str, rows: Iterable[Sequence[int]]) -> str:
    """A table function over integer rows passed to the engine as CSV text in a raw heredoc ``$name$``.

    Thousands of index stays as array parameters cost more than the rest of the query: the client
    escapes each element and the engine parses each as a literal. CSV text spliced verbatim into the
    query is parsed as one string. Only integers are written, so the text can never close the heredoc.
    """
    params[f"${name}$"] = "\n".join(",".join(str(int(x)) for x in row) for row in rows).encode()
    return f"format(CSV, '{columns}', ${name}$)"


def _int_set(params: dict[str, Any], name: str, type_: str, values: Iterable[int]) -> str:
    """``(SELECT x FROM ...)``: a set of integers for ``IN``, passed like :func:`_int_table`."""
    table = _int_table(params, name, f"x {type_}", ((v,) for v in values))
    return f"(SELECT x FROM {table})"


def _venue_days(stays: Sequence[IndexStay]) -> dict[int, set[int]]:
    """Per day (unix ms // day), the venues where an overlapping candidate stay may start that day."""
    by_day: dict[int, set[int]] = {}
    for s in stays:
        lo, hi = s.candidate_starts()
        for day in range((lo + 1) // DAY_MS, hi // DAY_MS + 1):
            by_day.setdefault(day, set()).add(s.venue_id)
    return by_day


def _merged_ranges(stays: Sequence[IndexStay]) -> list[tuple[int, int, int]]:
    """Per venue, the merged ranges ``(lo, hi]`` of ``at`` an overlapping candidate stay may start in."""
    by_venue: dict[int, list[tuple[int, int]]] = {}
    for s in stays:
        by_venue.setdefault(s.venue_id, []).append(s.candidate_starts())
    out: list[tuple[int, int, int]] = []
    for venue, spans in by_venue.items():
        spans.sort()
        lo, hi = spans[0]
        for a, b in spans[1:]:
            if a <= hi:
                hi = max(hi, b)
            else:
                out.append((venue, lo, hi))
                lo, hi = a, b
        out.append((venue, lo, hi))
    return out


_CANDIDATE_COLUMNS = (
    "SELECT person_id, venue_id, toUnixTimestamp64Milli(at) AS ca, toUnixTimestamp64Milli(end_at) AS ce "
)


def _by_key_ranges(store: Store, ranges: Sequence[tuple[int, int, int]], params: dict[str, Any]) -> str:
    """Candidate stays read by one exact ``venue = v AND at in (lo, hi]`` primary-key range each."""
    conds = []
    for n, (venue, lo, hi) in enumerate(ranges):
        conds.append(
            f"(venue_id = {{v{n}:UInt32}} AND at > fromUnixTimestamp64Milli({{lo{n}:Int64}}, 'UTC') "
            f"AND at <= fromUnixTimestamp64Milli({{hi{n}:Int64}}, 'UTC'))"
        )
        params.update({f"v{n}": venue, f"lo{n}": lo, f"hi{n}": hi})
    return (
        f"{_CANDIDATE_COLUMNS}FROM {store.table('scans')} FINAL WHERE ({' OR '.join(conds)})"
        f"{_scope_sql(params['scope'])}"
    )


def _by_venue_days(store: Store, by_day: dict[int, set[int]], params: dict[str, Any]) -> str:
    """Candidate stays read a day partition at a time: ``venue_id IN (that day's venues)``, whole days."""
    branches = []
    for n, day in enumerate(sorted(by_day)):
        venues = _int_set(params, f"vs{n}", "UInt32", sorted(by_day[day]))
        params[f"day{n}"] = day * DAY_MS
        branches.append(
            f"{_CANDIDATE_COLUMNS}FROM {store.table('scans')} FINAL WHERE venue_id IN {venues} "
            f"AND at >= fromUnixTimestamp64Milli({{day{n}:Int64}}, 'UTC') "
            f"AND at < fromUnixTimestamp64Milli({{day{n}:Int64}} + {DAY_MS}, 'UTC')"
            f"{_scope_sql(params['scope'])}"
        )
    return " UNION ALL ".join(branches)


@dataclass(frozen=True)
class Page:
    """Which slice of a sorted contact list to return: ``limit`` rows from ``offset`` (None: all)."""

    limit: int | None = None
    offset: int = 0

    def cut(self, rows: list[Contact]) -> list[Contact]:
        end = None if self.limit is None else self.offset + self.limit
        return rows[self.offset : end]


ALL = Page()


def _contacts_round(
    store: Store,
    stays: Sequence[IndexStay],
    exclude: Iterable[int],
    min_ms: int,
    scope: str,
    page: Page = ALL,
) -> tuple[list[Contact], int]:
    """Contacts found from these index stays, in one query: ``(page, total)``.

    The candidate stays (``FINAL``: one row per stay) are joined on (venue, start hour) with the index
    stays; each pair's overlap is computed in exact integer milliseconds and every positive one is
    summed per (person, owner of the index stay); the sums that reach ``min_ms`` qualify, and the
    qualifying sums of a person are added up, with their owners as ``via``. The engine sorts
    (overlap desc, person) and returns only the requested page with the total count, so a second
    degree of hundreds of thousands of persons costs one aggregation, not a Python object per pair.
    Candidates are read by exact key ranges when there are few (planning costs about 1 ms per OR'ed
    range), else by whole venue-days, one ``UNION ALL`` branch per day partition (more rows read, but
    one cheap plan: measured 10x faster at thousands of index stays, see loadtest/bench_trace.py).
    """
    if not stays:
        return [], 0
    per_person, params = overlaps_sql(store, stays, exclude, min_ms, scope)
    if page.limit is None:
        # Every row: the total is their number, no window needed.
        sql = (
            "SELECT person, overlap, first, arraySort(venues), arraySort(via), 0 "
            f"FROM ({per_person}) ORDER BY overlap DESC, person"
        )
    else:
        params.update({"limit": page.limit, "offset": page.offset})
        sql = (
            "SELECT person, overlap, first, arraySort(venues), arraySort(via), count() OVER () "
            f"FROM ({per_person}) ORDER BY overlap DESC, person "
            "LIMIT {limit:UInt64} OFFSET {offset:UInt64}"
        )
    rows = store.rows(sql, params, FINAL_SETTINGS)
    found = [
        Contact(int(p), int(overlap), int(first), [int(v) for v in venues], [int(o) for o in via])
        for p, overlap, first, venues, via, _total in rows
    ]
    if page.limit is None:
        return page.cut(found), len(found)
    if rows:
        return found, int(rows[0][5])
    if not page.offset:
        return [], 0
    # A page past the end has no row to carry the window count: count on its own.
    total = store.scalar(f"SELECT count() FROM ({per_person})", params, FINAL_SETTINGS)
    return [], int(total or 0)


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
    ranges = _merged_ranges(stays)
    if len(ranges) <= KEY_RANGES_MAX:
        candidates = _by_key_ranges(store, ranges, params)
    else:
        candidates = _by_venue_days(store, _venue_days(stays), params)
    index = _int_table(
        params,
        "stays",
        "owner UInt64, venue_id UInt32, sa Int64, se Int64, lo Int64, hi Int64",
        ((s.owner, s.venue_id, s.at_ms, s.end_ms, *s.candidate_starts()) for s in stays),
    )
    excluded = _int_set(params, "excl", "UInt64", sorted(set(exclude)))
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


def contacts(
    store: Store,
    person_id: int,
    since_ms: int,
    until_ms: int,
    *,
    depth: int = 1,
    min_overlap_ms: int = 15 * 60_000,
    scope: str = "",
    page: Page = ALL,
) -> ContactsResult:
    """First- (and with ``depth=2`` second-) degree contacts of a person in ``[since, until)``.

    ``page`` slices both lists; the totals are always of the whole lists.
    """
    max_stay = max_stay_ms(store)
    # One person's few stays: the longest-stay lookup would cost more than the narrower read saves
    # (measured), so they reach back the upper bound.
    index = index_stays(store, [person_id], since_ms, until_ms, scope, max_stay)
    first, n_first = _contacts_round(store, index, [person_id], min_overlap_ms, scope)
    for c in first:
        c.via = []
    second: list[Contact] = []
    n_second = 0
    if depth >= 2 and first:
        first_at = {c.person_id: c.first_contact_ms for c in first}
        stays = [
            s
            for s in index_stays(store, sorted(first_at), min(first_at.values()), until_ms, scope, max_stay)
            if s.at_ms >= first_at[s.owner]
        ]
        if len(stays) > MAX_INDEX_STAYS:
            raise TooBroad(
                f"depth 2 would start from {len(stays)} stays of {len(first)} first-degree contacts "
                f"(limit {MAX_INDEX_STAYS}); narrow the window or raise min_overlap_minutes"
            )
        stays = with_reach(store, stays, max_stay)
        exclude = [person_id, *first_at]
        second, n_second = _contacts_round(store, stays, exclude, min_overlap_ms, scope, page)
    return ContactsResult(
        index_stays=len(index),
        contacts=page.cut(first),
        second_degree=second,
        contacts_total=n_first,
        second_degree_total=n_second,
    )


# --- exposures ----------------------------------------------------------------------------------


def exposures(store: Store, sites: Sequence[Site], scope: str = "") -> list[Exposure]:
    """Persons with a stay at a site's venue overlapping the site's window by any amount.

    Sorted by first stay start, then person id.
    """
    if not sites:
        return []
    max_stay = max_stay_ms(store)
    params: dict[str, Any] = {"scope": scope}
    conds = []
    for n, site in enumerate(sites):
        conds.append(
            f"(venue_id = {{v{n}:UInt32}} AND at > fromUnixTimestamp64Milli({{lo{n}:Int64}}, 'UTC') "
            f"AND at < fromUnixTimestamp64Milli({{u{n}:Int64}}, 'UTC') "
            f"AND end_at > fromUnixTimestamp64Milli({{s{n}:Int64}}, 'UTC'))"
        )
        params[f"v{n}"] = site.venue_id
        params[f"lo{n}"] = site.since_ms - max_stay
        params[f"u{n}"] = site.until_ms
        params[f"s{n}"] = site.since_ms
    sql = (
        "SELECT person_id, venue_id, min(toUnixTimestamp64Milli(at)) "
        f"FROM {store.table('scans')} FINAL WHERE ({' OR '.join(conds)}){_scope_sql(scope)} "
        "GROUP BY person_id, venue_id"
    )
    by_person: dict[int, Exposure] = {}
    for person, venue, first in store.rows(sql, params, FINAL_SETTINGS):
        p, v, f = int(person), int(venue), int(first)
        exp = by_person.get(p)
        if exp is None:
            by_person[p] = Exposure(p, f, {v: f})
        else:
            exp.first_ms = min(exp.first_ms, f)
            exp.venues[v] = min(exp.venues.get(v, f), f)
    return sorted(by_person.values(), key=lambda e: (e.first_ms, e.person_id))
