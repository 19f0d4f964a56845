"""The alert history: the live alerts stream copied into ClickHouse ``alerts`` (consumer group
``alerts-history``) by the stream core's table writer, beside the rule engine."""

from __future__ import annotations

import asyncio

from checkin.platform.context import Context
from checkin.platform.redis_keys import ALERTS_HISTORY_GROUP
from tracing.rules.alerts import from_fields, insert_alerts
from tracing.storage.store import Store
from tracing.streams.retry import RetryPolicy
from tracing.streams.table_writer import Table, run_table_writer

ALERTS_TABLE = Table(
    name="alerts_history",
    stream=lambda ctx: ctx.keys.alerts_stream(),
    dead_letters=lambda ctx: ctx.keys.alerts_dead_letters(),
    group=ALERTS_HISTORY_GROUP,
    decode=from_fields,
    insert=insert_alerts,
)


async def run_history_writer(
    ctx: Context,
    store: Store,
    stop: asyncio.Event,
    *,
    batch_rows: int = 5000,
    batch_ms: int = 1000,
    retry: RetryPolicy | None = None,
    consumer: str | None = None,
) -> None:
    await run_table_writer(
        ctx,
        store,
        ALERTS_TABLE,
        stop,
        batch_rows=batch_rows,
        batch_ms=batch_ms,
        retry=retry,
        consumer=consumer,
    )
