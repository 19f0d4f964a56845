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
from ``scans_by_person`` (primary key on person); each round of contacts reads
the candidate stays around the index stays from ``scans`` (primary key on venue,
at) and sums the overlaps per (person, index person), keeping the sums that
reach the minimum. Few index stays (a depth 1) are looked up by exact
``venue = v AND at in (a - 12 h, end)`` key ranges and summed in the service
(:mod:`tracing.queries.overlaps`); many (depth 2) by whole venue-days, one branch
per day partition, since planning a query costs about a millisecond per OR'ed
key range, joined in the engine with the index stays (passed as CSV text, see
:func:`~tracing.queries.stays.int_table`) on venue and the hour a candidate
starts in, and summed there. Depth 2 joins each index stay only with candidates
that started after ``a - reach``, reach being the longest stay recorded at that
venue on those days (``longest_stays``; 12 h only where someone checked out that
late). The engine sorts the contacts and returns one
page of them with the total.

Jurisdiction scope: a scoped key (``scope`` = district, street or community
prefix) sees only stays recorded at venues whose community starts with the
prefix - index stays, candidate stays, timelines and exposures alike. A person
with no stay in the scope is "unknown" to that key.

The queries live per concern: the result types and shared lookups in :mod:`tracing.queries.stays`,
timelines in :mod:`tracing.queries.timeline`, the candidate plans in :mod:`tracing.queries.plans`,
contacts (depth 1 and 2) in :mod:`tracing.queries.contacts`, exposures in
:mod:`tracing.queries.exposures`. This module names them in one place for their callers.
"""

from __future__ import annotations

from tracing.queries.contacts import ALL, MAX_INDEX_STAYS, Page, TooBroad, contacts
from tracing.queries.exposures import exposures
from tracing.queries.plans import KEY_RANGES_MAX, index_stays, overlaps_sql, with_reach
from tracing.queries.stays import (
    FINAL_SETTINGS,
    MAX_CHECKOUT_MS,
    Contact,
    ContactsResult,
    Exposure,
    IndexStay,
    Site,
    Visit,
    all_venue_names,
    max_stay_ms,
    person_has_stays,
    venue_communities,
    venue_names,
)
from tracing.queries.timeline import visits, visits_of_persons

__all__ = [
    "ALL",
    "FINAL_SETTINGS",
    "KEY_RANGES_MAX",
    "MAX_CHECKOUT_MS",
    "MAX_INDEX_STAYS",
    "Contact",
    "ContactsResult",
    "Exposure",
    "IndexStay",
    "Page",
    "Site",
    "TooBroad",
    "Visit",
    "all_venue_names",
    "contacts",
    "exposures",
    "index_stays",
    "max_stay_ms",
    "overlaps_sql",
    "person_has_stays",
    "venue_communities",
    "venue_names",
    "visits",
    "visits_of_persons",
    "with_reach",
]
