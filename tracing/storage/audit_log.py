"""The audit log's rows in ClickHouse: their columns and the function that writes one.

Every trace call writes one row *before* its answer leaves the service; if the row cannot be
written the caller is refused (:func:`record` raises ``Unavailable``, 503) and gets no data. The
HTTP route that reads the log back lives in :mod:`tracing.api.audit`; workers write through here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import msgspec

from checkin.platform.auth import Principal
from checkin.platform.context import Context
from checkin.platform.errors import Unavailable
from tracing.storage.store import Store, StoreError

COLUMNS = ["at", "actor", "role", "action", "reason", "params", "rows", "client_ip"]


def write(
    store: Store,
    principal: Principal,
    action: str,
    reason: str,
    params: dict[str, Any],
    rows: int,
    ip: str = "",
) -> None:
    """Blocking: insert one audit row."""
    now = dt.datetime.now(dt.UTC)
    store.insert(
        "audit",
        COLUMNS,
        [
            [
                now,
                principal.key_id,
                principal.role,
                action,
                reason,
                msgspec.json.encode(params).decode(),
                max(0, int(rows)),
                ip,
            ]
        ],
        column_oriented=False,
    )


async def record(
    ctx: Context,
    store: Store,
    principal: Principal,
    action: str,
    reason: str,
    params: dict[str, Any],
    rows: int,
    ip: str = "",
) -> None:
    """Write the audit row of one trace call; a failure refuses the answer (503)."""
    try:
        await asyncio.to_thread(write, store, principal, action, reason, params, rows, ip)
    except StoreError as exc:
        ctx.metrics.inc("trace_audit_failures_total")
        raise Unavailable(
            "the audit log cannot be written, so no trace data is returned; retry shortly", retry_after=5
        ) from exc
