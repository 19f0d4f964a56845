"""Alerts API (analyst): history from ClickHouse, the live SSE feed from Redis, and ack.

* ``GET /v1/alerts``: history, newest first; filters ``since``, ``until``, ``kind``, ``severity``,
  ``scope`` (hierarchy-code prefix), ``acked``, ``venue_id``, ``limit``. Only alerts inside the key's
  jurisdiction are ever returned.
* ``GET /v1/alerts/stream``: Server-Sent Events. Each alert is ``event: alert``, ``id:`` = its entry id
  in the alerts stream, ``data:`` = the alert JSON. Reconnect with ``Last-Event-ID`` (header, or
  ``?last_event_id=``) to receive every alert published since, once. Without it the feed starts with
  alerts published after the connection. A comment line is sent as a heartbeat every 15 s of silence. If
  the requested position was already trimmed from the capped stream, an ``event: reset`` (plain-text data)
  says so and the feed continues from the oldest alert kept; reload ``GET /v1/alerts`` to fill the gap.
  Browsers' ``EventSource`` cannot send an ``Authorization`` header, so this route (and only this one)
  also accepts the API key as ``?key=...``; prefer the header where possible (URLs end up in logs).
  Optional filters: ``scope``, ``kind``, ``severity``.
* Every alert in the list and on the feed comes with its venue's name (``venue_names`` beside the list,
  ``venue_name`` added to each event's JSON), so a console never shows a venue as a bare id.
* State changes of an alert (``escalated``, ``acked``, ``resolved``: :mod:`tracing.api.alert_queue`,
  :mod:`tracing.rules.escalation`) come on the same feed as events of that name carrying the alert in
  its new state.

Reading alerts (the list, opening the stream) writes an audit row like a trace query: alerts name
venues and times of cases.

One reader task per process follows the alerts stream and fans out to the connected feeds; a feed that
cannot keep up is closed (the client resumes with Last-Event-ID, nothing is lost): see
:mod:`tracing.api.alert_feed`; the venue names: :mod:`tracing.api.alert_names`. The live feed
authenticates its caller itself (it takes the key as ``?key=`` too), so its role check stays in the
route; the list's is a guard.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Annotated, Any

import msgspec
from litestar import Request, get
from litestar.params import Parameter
from litestar.response import Stream

from checkin.platform import auth
from checkin.platform.auth import Principal, requires_role
from checkin.platform.context import Context
from checkin.platform.errors import BadInput, Unprocessable
from checkin.platform.instants import format_ms, parse_instant
from checkin.platform.openapi_doc import INSTANT, SECURITY
from checkin.platform.service import Part
from tracing.api import audit
from tracing.api.alert_feed import HEARTBEAT_S, AlertHub, FeedFilter, Subscriber, event_of, feed, hub_of, sse
from tracing.api.alert_names import VenueNamer, namer_of
from tracing.rules import alerts as al
from tracing.rules.kinds import ALERT_KINDS
from tracing.storage import audit_log
from tracing.storage.store import Store

__all__ = [
    "HEARTBEAT_S",
    "PART",
    "SEVERITIES",
    "AlertHub",
    "AlertList",
    "FeedFilter",
    "Subscriber",
    "VenueNamer",
    "event_of",
    "feed",
    "find_alert",
    "find_in_stream",
    "hub_of",
    "namer_of",
    "query_alerts",
    "sse",
]

STREAM_ID_PATTERN = r"^[0-9]{1,20}-[0-9]{1,20}$"
STREAM_ID_RE = re.compile(STREAM_ID_PATTERN)
SEVERITIES = ("info", "warning", "critical")


class AlertList(msgspec.Struct):
    alerts: list[al.Alert]
    count: int
    venue_names: dict[int, str] = msgspec.field(default_factory=dict)
    """Name of every venue the alerts name (the console never shows a venue as a bare id)."""


# --- history -----------------------------------------------------------------------------------------


KIND = Parameter(schema_extra={"enum": list(ALERT_KINDS)})
SEVERITY = Parameter(schema_extra={"enum": list(SEVERITIES)})
SCOPE = Parameter(query="scope", schema_extra={"pattern": al.SCOPE_PATTERN})


def _check_filters(kind: str | None, severity: str | None, scope: str) -> None:
    if kind is not None and kind not in ALERT_KINDS:
        raise BadInput(f"kind: expected one of {', '.join(ALERT_KINDS)}, got {kind!r}")
    if severity is not None and severity not in SEVERITIES:
        raise BadInput(f"severity: expected one of {', '.join(SEVERITIES)}, got {severity!r}")
    if not al.SCOPE_RE.fullmatch(scope):
        raise BadInput(f"scope: expected a hierarchy code prefix (digits), got {scope!r}")


def query_alerts(
    store: Store,
    *,
    since_ms: int,
    until_ms: int,
    key_scope: str,
    scope: str = "",
    kind: str | None = None,
    severity: str | None = None,
    acked: bool | None = None,
    venue_id: int | None = None,
    limit: int = 200,
) -> list[al.Alert]:
    """Blocking: alerts in [since, until) inside both scopes, newest first."""
    sql = (
        f"SELECT * FROM {store.table('alerts')} FINAL "
        "WHERE at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC') "
        "AND at < fromUnixTimestamp64Milli({until:Int64}, 'UTC') "
        "AND startsWith(community, {key_scope:String}) AND startsWith(community, {scope:String}) "
        "AND ({kind:String} = '' OR kind = {kind:String}) "
        "AND ({severity:String} = '' OR toString(severity) = {severity:String}) "
        "AND ({acked:Int8} < 0 OR acked = {acked:Int8}) "
        "AND ({venue_id:Int64} < 0 OR venue_id = {venue_id:Int64}) "
        "ORDER BY at DESC, alert_id DESC LIMIT {limit:UInt32}"
    )
    params = {
        "since": since_ms,
        "until": until_ms,
        "key_scope": key_scope,
        "scope": scope,
        "kind": kind or "",
        "severity": severity or "",
        "acked": -1 if acked is None else int(acked),
        "venue_id": -1 if venue_id is None else venue_id,
        "limit": limit,
    }
    return [al.from_row(row) for row in store.dicts(sql, params)]


@get(
    "/v1/alerts",
    summary="Alert history, newest first (analyst; the key's jurisdiction only)",
    tags=["alerts"],
    problems=(422,),
    guards=[requires_role("analyst")],
)
async def list_alerts(
    request: Request[Any, Any, Any],
    ctx: Context,
    store: Store,
    principal: Principal,
    since: Annotated[str | None, INSTANT] = None,
    until: Annotated[str | None, INSTANT] = None,
    kind: Annotated[str | None, KIND] = None,
    severity: Annotated[str | None, SEVERITY] = None,
    scope_prefix: Annotated[str, SCOPE] = "",
    acked: bool | None = None,
    venue_id: int | None = None,
    limit: Annotated[int, Parameter(ge=1, le=10_000)] = 200,
) -> AlertList:
    _check_filters(kind, severity, scope_prefix)
    now_ms = int(time.time() * 1000)
    until_ms = parse_instant("until", until) if until else now_ms + 3_600_000
    since_ms = parse_instant("since", since) if since else until_ms - 7 * 86_400_000
    if since_ms >= until_ms:
        raise Unprocessable("since must be before until", reason="empty_window")
    found = await asyncio.to_thread(
        query_alerts,
        store,
        since_ms=since_ms,
        until_ms=until_ms,
        key_scope=principal.scope,
        scope=scope_prefix,
        kind=kind,
        severity=severity,
        acked=acked,
        venue_id=venue_id,
        limit=limit,
    )
    params: dict[str, Any] = {
        "since": format_ms(since_ms),
        "until": format_ms(until_ms),
        "kind": kind,
        "severity": severity,
        "scope": scope_prefix,
        "acked": acked,
        "venue_id": venue_id,
        "limit": limit,
    }
    await audit_log.record(ctx, store, principal, "alerts", "", params, len(found), audit.client_ip(request))
    names = await namer_of(ctx, store).names({a.venue_id for a in found})
    return AlertList(alerts=found, count=len(found), venue_names=names)


# --- one alert -------------------------------------------------------------------------------------------


def find_alert(store: Store, alert_id: str) -> al.Alert | None:
    """Blocking: the current version of one alert (its id bounds the time range searched)."""
    ms = int(alert_id[:12], 16)
    rows = store.dicts(
        f"SELECT * FROM {store.table('alerts')} FINAL WHERE alert_id = {{id:String}} "
        "AND at >= fromUnixTimestamp64Milli({lo:Int64}, 'UTC') "
        "AND at < fromUnixTimestamp64Milli({hi:Int64}, 'UTC') LIMIT 1",
        {"id": alert_id, "lo": ms - 8 * 86_400_000, "hi": ms + 86_400_000},
    )
    return al.from_row(rows[0]) if rows else None


async def find_in_stream(ctx: Context, alert_id: str) -> al.Alert | None:
    """An alert not yet copied to ClickHouse: look for it in the live stream after its scan's time."""
    start = f"{int(alert_id[:12], 16)}-0"
    entries = await ctx.redis.xrange(ctx.keys.alerts_stream(), min=start, max="+", count=20_000)
    found: al.Alert | None = None
    for _eid, fields in entries:
        try:
            alert = al.from_fields(fields)
        except (KeyError, msgspec.DecodeError, msgspec.ValidationError):
            continue
        if alert.alert_id == alert_id:
            found = alert  # the last entry of the alert holds its latest state
    return found


@get(
    "/v1/alerts/stream",
    summary="Live alerts as Server-Sent Events (analyst); resume with Last-Event-ID; ?key= for EventSource",
    tags=["alerts"],
    media_type="text/event-stream",
    security=SECURITY,
)
async def alerts_stream(
    request: Request[Any, Any, Any],
    ctx: Context,
    store: Store,
    key: str | None = None,
    last_event_id: Annotated[str | None, Parameter(schema_extra={"pattern": STREAM_ID_PATTERN})] = None,
    scope_prefix: Annotated[str, SCOPE] = "",
    kind: Annotated[str | None, KIND] = None,
    severity: Annotated[str | None, SEVERITY] = None,
) -> Stream:
    authorization = request.headers.get("authorization") or (f"Bearer {key}" if key else None)
    principal = await auth.authenticate(ctx, authorization)
    principal.require("analyst")
    _check_filters(kind, severity, scope_prefix)
    resume = request.headers.get("last-event-id") or last_event_id
    if resume is not None:
        resume = resume.strip()
        if not STREAM_ID_RE.fullmatch(resume):
            raise BadInput(f"Last-Event-ID: expected a stream entry id like 1712345678901-0, got {resume!r}")
    flt = FeedFilter(key_scope=principal.scope, scope=scope_prefix, kind=kind, severity=severity)
    params = {"scope": scope_prefix, "kind": kind, "severity": severity, "resume": resume}
    await audit_log.record(ctx, store, principal, "alerts_stream", "", params, 0, audit.client_ip(request))
    return Stream(
        feed(ctx, hub_of(ctx), flt, resume, namer=namer_of(ctx, store)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def on_shutdown(ctx: Context) -> None:
    hub = ctx.extras.get("alert_hub")
    if isinstance(hub, AlertHub):
        await hub.close()


PART = Part("alerts", routes=[list_alerts, alerts_stream], on_shutdown=on_shutdown)
