"""The audit trail of services without ClickHouse: the ``checkin:audit`` stream copied into the
ClickHouse ``audit`` table (consumer group ``audit-history``), where ``GET /v1/audit`` lists it with
the tracing service's own audit rows. Worker name ``audit``."""

from __future__ import annotations

from typing import Any

import msgspec

from checkin.platform import audit_trail
from checkin.platform.instants import from_ms
from checkin.platform.redis_keys import AUDIT_GROUP
from tracing.storage.audit_log import COLUMNS
from tracing.storage.store import Store
from tracing.streams.table_writer import Table, table_writer


def insert_rows(store: Store, rows: list[audit_trail.AuditRow], dedup_token: str) -> None:
    data: list[list[Any]] = [
        [
            from_ms(r.at_ms),
            r.actor,
            r.role,
            r.action,
            r.reason,
            msgspec.json.encode(r.params).decode(),
            max(0, r.rows),
            r.client_ip,
        ]
        for r in rows
    ]
    if data:
        store.insert("audit", COLUMNS, data, column_oriented=False, dedup_token=dedup_token)


AUDIT_TABLE = Table(
    name="audit_trail",
    stream=lambda ctx: ctx.keys.audit_stream(),
    dead_letters=lambda ctx: ctx.keys.audit_dead_letters(),
    group=AUDIT_GROUP,
    decode=audit_trail.decode,
    insert=insert_rows,
)

audit_copier = table_writer(AUDIT_TABLE)
"""The factory of worker ``audit`` (registered in :mod:`tracing.workers`)."""
