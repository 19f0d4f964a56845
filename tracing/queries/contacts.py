"""Contacts of a person: depth 1 (who shared a place and time with them) and depth 2 (who shared one
with those), one engine query per round over the plans of :mod:`tracing.queries.plans`; the engine
sorts the contacts and returns one page of them with the total."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tracing.queries.overlaps import sum_overlaps
from tracing.queries.plans import candidates_in_ranges, few_ranges, index_stays, overlaps_sql, with_reach
from tracing.queries.stays import FINAL_SETTINGS, Contact, ContactsResult, IndexStay, max_stay_ms
from tracing.storage.store import Store

MAX_INDEX_STAYS = 20_000
"""Depth-2 index stays above this are refused: the question is too broad to answer interactively."""


class TooBroad(ValueError):
    """A depth-2 trace would use more index stays than :data:`MAX_INDEX_STAYS`."""


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
    (overlap desc, person) and returns only the requested page with the number of rows before it
    (:meth:`Store.rows_and_total`), so a second degree of hundreds of thousands of persons costs one
    aggregation, not a Python object per pair.
    Candidates are read by exact key ranges when there are few (planning costs about 1 ms per OR'ed
    range) and summed in the service (:func:`tracing.queries.overlaps.sum_overlaps`: a few thousand
    rows, where the engine's join and aggregation cost more than the read), else by whole venue-days,
    one ``UNION ALL`` branch per day partition (more rows read, but one cheap plan: measured 10x faster
    at thousands of index stays, see loadtest/bench_trace.py) and summed in the engine.
    """
    if not stays:
        return [], 0
    ranges = few_ranges(stays)
    if ranges is not None:
        # A few ranges (a depth 1): summed here (tracing.queries.overlaps).
        found = sum_overlaps(stays, candidates_in_ranges(store, ranges, scope), exclude, min_ms)
        return page.cut(found), len(found)
    per_person, params = overlaps_sql(store, stays, exclude, min_ms, scope)
    sql = (
        "SELECT person, overlap, first, arraySort(venues), arraySort(via) "
        f"FROM ({per_person}) ORDER BY overlap DESC, person"
    )
    if page.limit is None:
        # Every row: the total is their number.
        found = [_contact(*row) for row in store.rows(sql, params, FINAL_SETTINGS)]
        return page.cut(found), len(found)
    params.update({"limit": page.limit, "offset": page.offset})
    rows, total = store.rows_and_total(
        sql + " LIMIT {limit:UInt64} OFFSET {offset:UInt64}", params, FINAL_SETTINGS
    )
    return [_contact(*row) for row in rows], total


def _contact(person: int, overlap: int, first: int, venues: list[int], via: list[int]) -> Contact:
    return Contact(int(person), int(overlap), int(first), [int(v) for v in venues], [int(o) for o in via])


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
