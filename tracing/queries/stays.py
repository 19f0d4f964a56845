"""Stays as the trace queries read them: the result types, the stay-store settings, and the small
lookups every query shares (venue names and communities, whether a person has stays, the longest a
stay can last, integer tables passed to the engine as CSV text).

The semantics of stays and contacts are :mod:`tracing.queries.trace`'s (docs/ARCHITECTURE.md, "Stays and
contacts"); instants are unix milliseconds (UTC) throughout.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from checkin.platform.instants import HOUR_MS
from tracing.storage.store import Store

MAX_CHECKOUT_MS = 12 * HOUR_MS
"""A check-out may end a stay at most 12 h after the check-in (docs/ARCHITECTURE.md)."""

FINAL_SETTINGS: dict[str, Any] = {
    # Rows of one stay share ``at`` and therefore the partition: FINAL needs no cross-partition merge.
    "do_not_merge_across_partitions_select_final": 1,
    # A condition on a column outside the key (end_at) is applied to each stay's newest row only.
    "optimize_move_to_prewhere_if_final": 0,
    "max_execution_time": 60,
}


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


def scope_sql(scope: str, column: str = "community") -> str:
    return f" AND startsWith({column}, {{scope:String}})" if scope else ""


def person_has_stays(store: Store, person_id: int, scope: str = "") -> bool:
    """Whether any stay of this person is recorded (within the scope)."""
    sql = (
        f"SELECT count() FROM (SELECT 1 FROM {store.table('scans_by_person')} "
        f"PREWHERE person_id = {{p:UInt64}} WHERE 1{scope_sql(scope)} LIMIT 1)"
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


def int_table(params: dict[str, Any], name: str, columns: str, rows: Iterable[Sequence[int]]) -> str:
    """A table function over integer rows passed to the engine as CSV text in a raw heredoc ``$name$``.

    Thousands of index stays as array parameters cost more than the rest of the query: the client
    escapes each element and the engine parses each as a literal. CSV text spliced verbatim into the
    query is parsed as one string. Only integers are written, so the text can never close the heredoc.
    """
    params[f"${name}$"] = "\n".join(",".join(str(int(x)) for x in row) for row in rows).encode()
    return f"format(CSV, '{columns}', ${name}$)"


def int_set(params: dict[str, Any], name: str, type_: str, values: Iterable[int]) -> str:
    """``(SELECT x FROM ...)``: a set of integers for ``IN``, passed like :func:`int_table`."""
    table = int_table(params, name, f"x {type_}", ((v,) for v in values))
    return f"(SELECT x FROM {table})"
