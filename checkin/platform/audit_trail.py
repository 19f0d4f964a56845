"""Audit rows written by services that do not own ClickHouse (the ingest API: phone re-binding,
token revocation by the health authority). Each row is one entry of the ``checkin:audit`` stream,
written before the answer leaves; the tracing service's ``audit`` worker copies the stream into
the ClickHouse ``audit`` table, where ``GET /v1/audit`` reads every audit row together."""

from __future__ import annotations

from typing import Any

import msgspec

from checkin.platform.auth import Principal
from checkin.platform.context import Context
from checkin.platform.instants import now_ms

FIELD = "row"
MAXLEN = 1_000_000


class AuditRow(msgspec.Struct):
    at_ms: int
    actor: str
    role: str
    action: str
    reason: str
    params: dict[str, Any]
    rows: int
    client_ip: str


async def record(
    ctx: Context,
    principal: Principal,
    action: str,
    reason: str,
    params: dict[str, Any],
    rows: int,
    client_ip: str,
) -> None:
    row = AuditRow(now_ms(), principal.key_id, principal.role, action, reason, params, rows, client_ip)
    await ctx.redis.xadd(
        ctx.keys.audit_stream(), {FIELD: msgspec.json.encode(row)}, maxlen=MAXLEN, approximate=True
    )


def decode(fields: dict[bytes, bytes]) -> AuditRow:
    return msgspec.json.decode(fields[FIELD.encode()], type=AuditRow)
