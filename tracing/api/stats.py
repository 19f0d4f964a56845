"""Analyst statistics for the console's charts: scans per hour by district, per district, top venues.

A "scan" here is a recorded stay (one per check-in and person, read with FINAL).
Windows are ``[since, until)`` (RFC 3339, default the last 24 hours, at most 60
days). A scoped key counts only stays at venues in its jurisdiction. Every read writes an audit row
(action ``stats``) like a trace query: the counts tell where cases were.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from litestar import Request, get
from litestar.params import Parameter

from checkin.platform.auth import Principal, requires_role
from checkin.platform.context import Context
from checkin.platform.errors import BadInput, Unprocessable
from checkin.platform.instants import DAY_MS, format_ms, now_ms, parse_instant
from checkin.platform.openapi_doc import INSTANT
from checkin.platform.service import Part
from tracing.answers.calls import read
from tracing.api import audit
from tracing.queries import trace
from tracing.storage import audit_log
from tracing.storage.store import Store

MAX_WINDOW_DAYS = 60
ANALYST = [requires_role("analyst")]
_SETTINGS: dict[str, Any] = {"do_not_merge_across_partitions_select_final": 1, "max_execution_time": 60}


class HourRow(msgspec.Struct):
    hour: str
    district: str
    scans: int


class ScansPerHour(msgspec.Struct):
    since: str
    until: str
    districts: list[str]
    rows: list[HourRow]


class DistrictRow(msgspec.Struct):
    district: str
    scans: int
    persons: int


class DistrictStats(msgspec.Struct):
    since: str
    until: str
    rows: list[DistrictRow]


class VenueRow(msgspec.Struct):
    venue_id: int
    name: str
    district: str
    community: str
    scans: int
    persons: int


class VenueStats(msgspec.Struct):
    since: str
    until: str
    rows: list[VenueRow]


def _window(since: str | None, until: str | None) -> tuple[int, int]:
    until_ms = parse_instant("until", until) if until else now_ms() + 1
    since_ms = parse_instant("since", since) if since else until_ms - DAY_MS
    if since_ms >= until_ms:
        raise Unprocessable("since must be before until", reason="empty_window")
    if until_ms - since_ms > MAX_WINDOW_DAYS * DAY_MS:
        raise Unprocessable(f"the window may span at most {MAX_WINDOW_DAYS} days", reason="window_too_long")
    return since_ms, until_ms


def _where(scope: str, district: str) -> str:
    sql = (
        "at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC') "
        "AND at < fromUnixTimestamp64Milli({until:Int64}, 'UTC')"
    )
    if scope:
        sql += " AND startsWith(community, {scope:String})"
    if district:
        sql += " AND district = {district:String}"
    return sql


def scans_per_hour(
    store: Store, since_ms: int, until_ms: int, scope: str = "", district: str = ""
) -> list[HourRow]:
    sql = (
        "SELECT toUnixTimestamp64Milli(toDateTime64(toStartOfHour(at), 3, 'UTC')) AS h, district, count() "
        f"FROM {store.table('scans')} FINAL WHERE {_where(scope, district)} "
        "GROUP BY h, district ORDER BY h, district"
    )
    params = {"since": since_ms, "until": until_ms, "scope": scope, "district": district}
    return [
        HourRow(hour=format_ms(int(h)), district=str(d), scans=int(n))
        for h, d, n in store.rows(sql, params, _SETTINGS)
    ]


def per_district(store: Store, since_ms: int, until_ms: int, scope: str = "") -> list[DistrictRow]:
    sql = (
        "SELECT district, count(), uniq(person_id) "
        f"FROM {store.table('scans')} FINAL WHERE {_where(scope, '')} "
        "GROUP BY district ORDER BY count() DESC, district"
    )
    params = {"since": since_ms, "until": until_ms, "scope": scope}
    return [
        DistrictRow(district=str(d), scans=int(n), persons=int(p))
        for d, n, p in store.rows(sql, params, _SETTINGS)
    ]


def top_venues(
    store: Store, since_ms: int, until_ms: int, limit: int, scope: str = "", district: str = ""
) -> list[VenueRow]:
    sql = (
        "SELECT venue_id, any(district), any(community), count() AS n, uniq(person_id) "
        f"FROM {store.table('scans')} FINAL WHERE {_where(scope, district)} "
        "GROUP BY venue_id ORDER BY n DESC, venue_id LIMIT {limit:UInt32}"
    )
    params = {"since": since_ms, "until": until_ms, "scope": scope, "district": district, "limit": limit}
    rows = store.rows(sql, params, _SETTINGS)
    names = trace.venue_names(store, (int(r[0]) for r in rows))
    return [
        VenueRow(
            venue_id=int(v),
            name=names.get(int(v), ""),
            district=str(d),
            community=str(c),
            scans=int(n),
            persons=int(p),
        )
        for v, d, c, n, p in rows
    ]


DISTRICT = Parameter(
    description="a 6-digit district code (empty: every district)",
    schema_extra={"anyOf": [{"maxLength": 0}, {"pattern": "^[0-9]{6}$"}]},
)


def _check_district(district: str) -> str:
    if district and not re.fullmatch(r"[0-9]{6}", district):
        raise BadInput(f"district must be a 6-digit code, got {district!r}")
    return district


async def _audit(
    request: Request[Any, Any, Any],
    ctx: Context,
    store: Store,
    principal: Principal,
    view: str,
    since_ms: int,
    until_ms: int,
    rows: int,
    **params: Any,
) -> None:
    """One audit row per read, like a trace query's (action ``stats``, the view and its window)."""
    params = {"view": view, "since": format_ms(since_ms), "until": format_ms(until_ms), **params}
    await audit_log.record(ctx, store, principal, "stats", "", params, rows, audit.client_ip(request))


@get(
    "/v1/stats/scans-per-hour",
    summary="Scans per hour by district (analyst)",
    tags=["stats"],
    problems=(422,),
    guards=ANALYST,
)
async def get_scans_per_hour(
    request: Request[Any, Any, Any],
    ctx: Context,
    store: Store,
    principal: Principal,
    since: Annotated[str | None, INSTANT] = None,
    until: Annotated[str | None, INSTANT] = None,
    district: Annotated[str, DISTRICT] = "",
) -> ScansPerHour:
    since_ms, until_ms = _window(since, until)
    rows = await read(
        "statistics", scans_per_hour, store, since_ms, until_ms, principal.scope, _check_district(district)
    )
    await _audit(
        request, ctx, store, principal, "scans-per-hour", since_ms, until_ms, len(rows), district=district
    )
    return ScansPerHour(
        since=format_ms(since_ms),
        until=format_ms(until_ms),
        districts=sorted({r.district for r in rows}),
        rows=rows,
    )


@get(
    "/v1/stats/districts",
    summary="Scans and distinct persons per district (analyst)",
    tags=["stats"],
    problems=(422,),
    guards=ANALYST,
)
async def get_districts(
    request: Request[Any, Any, Any],
    ctx: Context,
    store: Store,
    principal: Principal,
    since: Annotated[str | None, INSTANT] = None,
    until: Annotated[str | None, INSTANT] = None,
) -> DistrictStats:
    since_ms, until_ms = _window(since, until)
    rows = await read("statistics", per_district, store, since_ms, until_ms, principal.scope)
    await _audit(request, ctx, store, principal, "districts", since_ms, until_ms, len(rows))
    return DistrictStats(since=format_ms(since_ms), until=format_ms(until_ms), rows=rows)


@get("/v1/stats/venues", summary="Busiest venues (analyst)", tags=["stats"], problems=(422,), guards=ANALYST)
async def get_venues(
    request: Request[Any, Any, Any],
    ctx: Context,
    store: Store,
    principal: Principal,
    since: Annotated[str | None, INSTANT] = None,
    until: Annotated[str | None, INSTANT] = None,
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 20,
    district: Annotated[str, DISTRICT] = "",
) -> VenueStats:
    if not 1 <= limit <= 1000:
        raise BadInput("limit must be 1..1000")
    since_ms, until_ms = _window(since, until)
    rows = await read(
        "statistics", top_venues, store, since_ms, until_ms, limit, principal.scope, _check_district(district)
    )
    await _audit(
        request,
        ctx,
        store,
        principal,
        "venues",
        since_ms,
        until_ms,
        len(rows),
        district=district,
        limit=limit,
    )
    return VenueStats(since=format_ms(since_ms), until=format_ms(until_ms), rows=rows)


PART = Part("stats", routes=[get_scans_per_hour, get_districts, get_venues])
