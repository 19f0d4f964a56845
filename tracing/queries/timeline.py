"""Timelines: a person's stays in a window, oldest first, with venue names (one query for many persons)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from tracing.queries.stays import FINAL_SETTINGS, Visit, int_set, scope_sql, venue_names
from tracing.storage.store import Store


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
        f"PREWHERE person_id IN {int_set(params, 'ps', 'UInt64', person_ids)} "
        "WHERE at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC') "
        f"AND at < fromUnixTimestamp64Milli({{until:Int64}}, 'UTC'){scope_sql(scope)} "
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
