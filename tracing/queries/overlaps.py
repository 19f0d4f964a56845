"""The overlaps of a small contacts round, summed in the service from its candidate stays.

A round with few index stays (a depth 1: one person's stays) reads a few hundred candidate stays by
exact key ranges. Joining and aggregating them in the engine cost more than reading them: on the
51 M-stay history a depth-1 round took 48 ms median in the engine and 16 ms read and summed here
(docs/BENCHMARKS.md). The arithmetic is the engine query's (:func:`tracing.queries.plans.overlaps_sql`),
pair by pair in integer milliseconds, so both give the same contacts.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence

from tracing.queries.stays import Contact, IndexStay

Candidate = tuple[int, int, int, int]
"""A candidate stay: person, venue, start, end (unix ms)."""


class _Sum:
    """The pairs of one (person, owner of the index stay) with a positive overlap."""

    __slots__ = ("first", "overlap", "venues")

    def __init__(self, overlap: int, first: int, venue: int) -> None:
        self.overlap = overlap
        self.first = first
        self.venues = {venue}


class _VenueStays:
    """The index stays at one venue, by start, to find those a candidate may meet by bisection (a
    person with many stays at a busy venue would otherwise cost candidates x stays)."""

    __slots__ = ("longest", "starts", "stays")

    def __init__(self) -> None:
        self.stays: list[IndexStay] = []
        self.starts: list[int] = []
        self.longest = 0

    def index(self) -> None:
        self.stays.sort(key=lambda s: s.at_ms)
        self.starts = [s.at_ms for s in self.stays]
        self.longest = max(s.end_ms - s.at_ms for s in self.stays)

    def meeting(self, start: int, end: int) -> list[IndexStay]:
        """The stays that may overlap ``[start, end)``: starting before ``end`` and after
        ``start - longest``."""
        lo = bisect_right(self.starts, start - self.longest)
        hi = bisect_left(self.starts, end)
        return self.stays[lo:hi]


def sum_overlaps(
    stays: Sequence[IndexStay], candidates: Iterable[Candidate], exclude: Iterable[int], min_ms: int
) -> list[Contact]:
    """Contacts of these index stays among the candidates, in the contract's order.

    Every pair (candidate, index stay at its venue) with a positive overlap counts; the overlaps are
    summed per (person, owner), the sums that reach ``min_ms`` (at least 1 ms) qualify, and a person's
    qualifying sums are added up with their owners as ``via``. Each candidate must be read from the
    ranges where a stay overlapping an index stay starts (:meth:`IndexStay.candidate_starts`).
    """
    at_venue: dict[int, _VenueStays] = {}
    for s in stays:
        at_venue.setdefault(s.venue_id, _VenueStays()).stays.append(s)
    for venue_stays in at_venue.values():
        venue_stays.index()
    excluded = set(exclude)
    sums: dict[tuple[int, int], _Sum] = {}
    for person, venue, start, end in candidates:
        here = at_venue.get(venue)
        if here is None or person in excluded:
            continue
        for s in here.meeting(start, end):
            lo = max(start, s.at_ms)
            overlap = min(end, s.end_ms) - lo
            if overlap <= 0:
                continue
            found = sums.get((person, s.owner))
            if found is None:
                sums[(person, s.owner)] = _Sum(overlap, lo, venue)
            else:
                found.overlap += overlap
                found.first = min(found.first, lo)
                found.venues.add(venue)
    need = max(min_ms, 1)
    people: dict[int, tuple[Contact, set[int]]] = {}
    for (person, owner), pairs in sums.items():
        if pairs.overlap < need:
            continue
        known = people.get(person)
        if known is None:
            people[person] = (Contact(person, pairs.overlap, pairs.first, [], [owner]), set(pairs.venues))
        else:
            contact, venues = known
            contact.overlap_ms += pairs.overlap
            contact.first_contact_ms = min(contact.first_contact_ms, pairs.first)
            contact.via.append(owner)
            venues |= pairs.venues
    out = []
    for contact, venues in people.values():
        contact.venue_ids = sorted(venues)
        contact.via.sort()
        out.append(contact)
    out.sort(key=lambda c: (-c.overlap_ms, c.person_id))
    return out
