"""Command-centre dispositions (analyst): the queue of a level, ack and resolve.

* ``GET /v1/alerts/queue?level=&state=waiting|acked``: the open alerts at a level (default: the
  caller's, from the length of its key's scope) inside the key's jurisdiction, oldest first. ``waiting``
  (default) lists those nobody has acknowledged yet (what escalates), ``acked`` those acknowledged but
  not resolved. Each item says when it is due to move up (``due_at``) and whether it is ``overdue``,
  since when it waits at its level (``waiting_since``; the city level has no level above, so the console
  shows how long it has waited there), and names the venue and the person (masked); the answer also
  carries the time to acknowledge per level over the last 7 days.
* ``POST /v1/alerts/{alert_id}/ack``: acknowledged by the caller, now; stops escalation. Acking again
  answers the first ack unchanged.
* ``POST /v1/alerts/{alert_id}/resolve {outcome, note?}``: closed with an outcome from
  :data:`tracing.rules.alerts.OUTCOMES` and an optional free-text note (up to 500 characters); an alert
  not yet acknowledged counts as acknowledged by the resolver. Resolving again answers the first
  resolution unchanged.

An alert outside the key's jurisdiction is answered like an unknown one (404): the answer tells
nothing about alerts elsewhere. Each state change is a new row version in ClickHouse (where the
history is) and an event on the alerts stream (``acked``, ``resolved``).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, get, post
from litestar.params import Parameter

from checkin.platform import persons
from checkin.platform.auth import Principal, requires_role
from checkin.platform.context import Context
from checkin.platform.errors import BadInput, NotFound
from checkin.platform.instants import DAY_MS, format_ms, now_ms
from checkin.platform.openapi_doc import PY_SPACE
from checkin.platform.service import Part
from tracing.api import audit
from tracing.api.alerts import find_alert, find_in_stream
from tracing.queries import trace
from tracing.rules import alerts as al
from tracing.rules.escalation import publish_events
from tracing.storage import audit_log
from tracing.storage.store import Store

ACK_TIMES_DAYS = 7
ANALYST = [requires_role("analyst")]


class QueueItem(msgspec.Struct):
    alert: al.Alert
    due_at: str
    """When the alert moves up a level (at the city level: when it counts as overdue)."""
    overdue: bool
    venue_name: str
    waiting_since: str = ""
    """When the alert arrived at its level (at the city level, the last, what "waiting" counts from)."""
    person_name: str = ""
    """The person's masked name (张*丰); empty for an alert about no registered person."""


class AckTime(msgspec.Struct):
    level: str
    acked: int
    median_s: float
    p90_s: float
    """Seconds from the alert to its ack, for alerts acknowledged at this level."""


class Queue(msgspec.Struct):
    level: str
    state: str
    scope: str
    escalation_s: float
    alerts: list[QueueItem]
    count: int
    ack_times: list[AckTime]


AlertId = Annotated[str, Parameter(schema_extra={"pattern": al.ALERT_ID_RE.pattern})]


class ResolveIn(msgspec.Struct, forbid_unknown_fields=True):
    outcome: Annotated[
        str,
        msgspec.Meta(
            extra_json_schema={"pattern": f"^[{PY_SPACE}]*(?:{'|'.join(al.OUTCOMES)})[{PY_SPACE}]*$"}
        ),
    ]
    note: Annotated[str, msgspec.Meta(max_length=al.NOTE_MAX)] = ""


def _check_level(level: str | None, principal: Principal) -> str:
    if level is None:
        return al.level_of_scope(principal.scope)
    if level not in al.LEVELS:
        raise BadInput(f"level: expected one of {', '.join(al.LEVELS)}, got {level!r}")
    return level


def queue_rows(
    store: Store, *, level: str, acked: bool, key_scope: str, now_ms: int, retention_days: int, limit: int
) -> list[al.Alert]:
    """Blocking: open alerts at ``level`` inside ``key_scope``, oldest first."""
    sql = (
        f"SELECT * FROM {store.table('alerts')} FINAL "
        "WHERE at >= fromUnixTimestamp64Milli({lo:Int64}, 'UTC') "
        "AND startsWith(community, {scope:String}) AND resolved = 0 AND acked = {acked:UInt8} "
        "AND level = {level:String} ORDER BY at, alert_id LIMIT {limit:UInt32}"
    )
    params = {
        "lo": now_ms - retention_days * DAY_MS,
        "scope": key_scope,
        "acked": int(acked),
        "level": level,
        "limit": limit,
    }
    return [al.from_row(row) for row in store.dicts(sql, params)]


def ack_times(store: Store, *, key_scope: str, now_ms: int) -> list[AckTime]:
    """Blocking: time to acknowledge per level over the last :data:`ACK_TIMES_DAYS` days."""
    sql = (
        "SELECT toString(level) AS level, count() AS n, quantile(0.5)(s) AS median, quantile(0.9)(s) AS p90 "
        "FROM (SELECT level, (toUnixTimestamp64Milli(acked_at) - toUnixTimestamp64Milli(at)) / 1000 AS s "
        f"FROM {store.table('alerts')} FINAL "
        "WHERE at >= fromUnixTimestamp64Milli({lo:Int64}, 'UTC') AND acked = 1 AND acked_at IS NOT NULL "
        "AND startsWith(community, {scope:String})) GROUP BY level"
    )
    lo = now_ms - ACK_TIMES_DAYS * DAY_MS
    found = {r["level"]: r for r in store.dicts(sql, {"lo": lo, "scope": key_scope})}
    out = []
    for level in al.LEVELS:
        r = found.get(level)
        out.append(
            AckTime(level, int(r["n"]), round(float(r["median"]), 1), round(float(r["p90"]), 1))
            if r
            else AckTime(level, 0, 0.0, 0.0)
        )
    return out


@get(
    "/v1/alerts/queue",
    summary="Open alerts at a command-centre level inside the key's jurisdiction, oldest first (analyst)",
    tags=["alerts"],
    guards=ANALYST,
)
async def alert_queue(
    request: Request[Any, Any, Any],
    ctx: Context,
    store: Store,
    principal: Principal,
    level: Annotated[str | None, Parameter(schema_extra={"enum": list(al.LEVELS)})] = None,
    queue_state: Annotated[Literal["waiting", "acked"], Parameter(query="state")] = "waiting",
    limit: Annotated[int, Parameter(ge=1, le=10_000)] = 500,
) -> Queue:
    lvl = _check_level(level, principal)
    now = now_ms()
    rows = await asyncio.to_thread(
        queue_rows,
        store,
        level=lvl,
        acked=queue_state == "acked",
        key_scope=principal.scope,
        now_ms=now,
        retention_days=ctx.settings.retention_days,
        limit=limit,
    )
    times = await asyncio.to_thread(ack_times, store, key_scope=principal.scope, now_ms=now)
    names = await asyncio.to_thread(trace.venue_names, store, {a.venue_id for a in rows})
    people = await persons.masked_names(ctx, [a.person_id for a in rows if a.person_id is not None])
    delay_ms = int(ctx.settings.escalation_s * 1000)
    items = []
    for alert in rows:
        due = alert.level_since_ms() + delay_ms
        overdue = not alert.acked and due <= now
        items.append(
            QueueItem(
                alert=alert,
                due_at=format_ms(due),
                overdue=overdue,
                venue_name=names.get(alert.venue_id, ""),
                waiting_since=format_ms(alert.level_since_ms()),
                person_name=people.get(alert.person_id, "") if alert.person_id is not None else "",
            )
        )
    params = {"level": lvl, "state": queue_state, "limit": limit}
    ip = audit.client_ip(request)
    await audit_log.record(ctx, store, principal, "alerts_queue", "", params, len(items), ip)
    return Queue(
        level=lvl,
        state=queue_state,
        scope=principal.scope,
        escalation_s=ctx.settings.escalation_s,
        alerts=items,
        count=len(items),
        ack_times=times,
    )


async def _alert_in_scope(ctx: Context, store: Store, principal: Principal, alert_id: str) -> al.Alert:
    if not al.ALERT_ID_RE.fullmatch(alert_id):
        raise BadInput(f"alert_id: expected 22 lowercase hex digits, got {alert_id!r}")
    alert = await asyncio.to_thread(find_alert, store, alert_id)
    if alert is None:
        alert = await find_in_stream(ctx, alert_id)
    if alert is None or not principal.in_scope(alert.community):
        raise NotFound(f"no alert {alert_id}")
    return alert


async def _record(ctx: Context, store: Store, alert: al.Alert, event: str) -> None:
    await asyncio.to_thread(al.insert_alerts, store, [alert])
    await publish_events(ctx, [(alert, event)])


@post(
    "/v1/alerts/{alert_id:str}/ack",
    summary="Acknowledge an alert: stops its escalation (analyst)",
    tags=["alerts"],
    status_code=200,
    guards=ANALYST,
)
async def ack_alert(alert_id: AlertId, ctx: Context, store: Store, principal: Principal) -> al.Alert:
    alert = await _alert_in_scope(ctx, store, principal, alert_id)
    if alert.acked or alert.resolved:
        return alert
    alert.acked, alert.acked_by, alert.acked_at = True, principal.key_id, format_ms(now_ms())
    await _record(ctx, store, alert, "acked")
    return alert


@post(
    "/v1/alerts/{alert_id:str}/resolve",
    summary="Close an alert with an outcome (analyst)",
    tags=["alerts"],
    status_code=200,
    guards=ANALYST,
)
async def resolve_alert(
    alert_id: AlertId, data: ResolveIn, ctx: Context, store: Store, principal: Principal
) -> al.Alert:
    outcome = data.outcome.strip()
    if outcome not in al.OUTCOMES:
        raise BadInput(f"outcome: expected one of {', '.join(al.OUTCOMES)}, got {data.outcome!r}")
    alert = await _alert_in_scope(ctx, store, principal, alert_id)
    if alert.resolved:
        return alert
    now = format_ms(now_ms())
    if not alert.acked:
        alert.acked, alert.acked_by, alert.acked_at = True, principal.key_id, now
    alert.resolved, alert.resolved_by, alert.resolved_at = True, principal.key_id, now
    alert.outcome, alert.note = outcome, data.note.strip()
    await _record(ctx, store, alert, "resolved")
    return alert


PART = Part("alert-queue", routes=[alert_queue, ack_alert, resolve_alert])
