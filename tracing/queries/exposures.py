"""Exposure screening: everyone with a stay at a site's venue overlapping the site's window."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tracing.queries.stays import FINAL_SETTINGS, Exposure, Site, max_stay_ms, scope_sql
from tracing.storage.store import Store


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
        f"FROM {store.table('scans')} FINAL WHERE ({' OR '.join(conds)}){scope_sql(scope)} "
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
