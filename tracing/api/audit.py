"""The audit log of trace queries: who asked what, when, why, and how many rows they got.

Every trace call writes one row *before* its answer leaves the service; if the
row cannot be written the caller gets 503 and no data. ``GET /v1/audit``
(admin) reads the log back.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
from litestar import Request, get
from litestar.params import Parameter

from checkin.platform.auth import requires_role
from checkin.platform.client_address import client_address
from checkin.platform.context import Context
from checkin.platform.errors import BadInput, Unprocessable
from checkin.platform.instants import format_ms, now_ms, parse_instant
from checkin.platform.openapi_doc import INSTANT
from checkin.platform.service import Part
from tracing.storage.audit_log import COLUMNS as COLUMNS
from tracing.storage.audit_log import record as record
from tracing.storage.audit_log import write as write
from tracing.storage.store import Store


class AuditEntry(msgspec.Struct):
    at: str
    actor: str
    role: str
    action: str
    reason: str
    params: dict[str, Any]
    rows: int
    client_ip: str


class AuditPage(msgspec.Struct):
    entries: list[AuditEntry]
    count: int


def client_ip(request: Request[Any, Any, Any]) -> str:
    """The client address of the request (behind a trusted proxy, the forwarded client's)."""
    ctx: Context = request.app.state["ctx"]
    return client_address(request.scope, ctx.settings.trusted_proxies)


def read(
    store: Store,
    since_ms: int,
    until_ms: int,
    actor: str = "",
    action: str = "",
    limit: int = 100,
) -> list[AuditEntry]:
    sql = (
        "SELECT toUnixTimestamp64Milli(at), actor, toString(role), toString(action), reason, params, rows, "
        f"client_ip FROM {store.table('audit')} "
        "WHERE at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC') "
        "AND at < fromUnixTimestamp64Milli({until:Int64}, 'UTC') "
        "AND ({actor:String} = '' OR actor = {actor:String}) "
        "AND ({action:String} = '' OR action = {action:String}) "
        "ORDER BY at DESC LIMIT {limit:UInt32}"
    )
    rows = store.rows(
        sql, {"since": since_ms, "until": until_ms, "actor": actor, "action": action, "limit": limit}
    )
    out = []
    for at, who, role, act, reason, params, n, ip in rows:
        try:
            decoded = msgspec.json.decode(params)
        except msgspec.DecodeError:
            decoded = {"raw": params}
        out.append(
            AuditEntry(
                at=format_ms(int(at)),
                actor=str(who),
                role=str(role),
                action=str(act),
                reason=str(reason),
                params=decoded if isinstance(decoded, dict) else {"value": decoded},
                rows=int(n),
                client_ip=str(ip),
            )
        )
    return out


@get(
    "/v1/audit",
    summary="Read the trace audit log (admin), newest first",
    tags=["tracing"],
    problems=(422,),
    guards=[requires_role("admin")],
)
async def get_audit(
    store: Store,
    since: Annotated[str | None, INSTANT] = None,
    until: Annotated[str | None, INSTANT] = None,
    actor: str = "",
    action: str = "",
    limit: Annotated[int, Parameter(ge=1, le=10_000)] = 100,
) -> AuditPage:
    if not 1 <= limit <= 10_000:
        raise BadInput("limit must be 1..10000")
    until_ms = parse_instant("until", until) if until else now_ms() + 1
    since_ms = parse_instant("since", since) if since else until_ms - 30 * 86_400_000
    if since_ms >= until_ms:
        raise Unprocessable("since must be before until", reason="empty_window")
    entries = await asyncio.to_thread(read, store, since_ms, until_ms, actor, action, limit)
    return AuditPage(entries=entries, count=len(entries))


def setup_metrics(metrics: Any) -> None:
    metrics.counter("trace_audit_failures_total", "Trace calls refused because the audit row failed")


PART = Part("audit", routes=[get_audit], metrics=setup_metrics)
