"""The tracing service: everything that owns ClickHouse.

* :mod:`tracing.streams`: the stream-consumer core every consumer is built from.
* :mod:`tracing.sink`: scan streams -> ClickHouse ``scans``; the venue registry mirror.
* :mod:`tracing.rules`: the rule engine, alerts, their history writer.
* :mod:`tracing.storage`: the store (clickhouse-connect), the schema, the backfill.
* :mod:`tracing.queries`: contact traces, exposures, timelines, reports.
* :mod:`tracing.api`: the analyst HTTP API, its audit log and the console.

:mod:`tracing.app` builds the service; :mod:`tracing.workers` runs its background workers.
"""
