"""ClickHouse: the one client wrapper (:mod:`tracing.storage.store`), the schema, the backfill of
synthetic history."""
