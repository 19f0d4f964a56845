"""The alert history: the live alerts stream copied into ClickHouse ``alerts`` (consumer group
``alerts-history``) by the stream core's table writer. Registered beside the rule engine in
:mod:`tracing.workers` (worker ``rules``)."""

from __future__ import annotations

from checkin.platform.redis_keys import ALERTS_HISTORY_GROUP
from tracing.rules.alerts import from_fields, insert_alerts
from tracing.streams.retry import Clock, RetryPolicy
from tracing.streams.runner import Factory
from tracing.streams.table_writer import Table, table_writer

ALERTS_TABLE = Table(
    name="alerts_history",
    stream=lambda ctx: ctx.keys.alerts_stream(),
    dead_letters=lambda ctx: ctx.keys.alerts_dead_letters(),
    group=ALERTS_HISTORY_GROUP,
    decode=from_fields,
    insert=insert_alerts,
)


def alerts_history(
    *,
    batch_rows: int = 5000,
    batch_ms: int = 1000,
    retry: RetryPolicy | None = None,
    consumer: str | None = None,
    clock: Clock | None = None,
) -> Factory:
    """The factory of the history writer (defaults: what the ``rules`` worker runs)."""
    return table_writer(
        ALERTS_TABLE, batch_rows=batch_rows, batch_ms=batch_ms, retry=retry, consumer=consumer, clock=clock
    )
