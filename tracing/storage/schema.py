"""ClickHouse schema: one source, rendered for a single node or a cluster.

Stays are rows of ``scans`` keyed by (venue_id, at, person_id, checkin_id): a
check-in writes version 0 with its end; every later change of the stay's end (a
check-out, or the person's next stay starting before it) writes the same key with a
higher version, the new ``end_at`` and ``ended_by``. ReplacingMergeTree(version) keeps
the newest; queries read with ``FINAL`` so they see exactly one stay per check-in and
person, and a batch inserted twice (a sink retried after a crash with a different batch
split) is never counted twice. ``scans_by_person`` is the same data ordered by person
(filled by a materialized view) for timelines and index-case lookups.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Table:
    name: str
    columns: list[tuple[str, str]]
    order_by: str
    engine: str = "MergeTree"
    """MergeTree or ReplacingMergeTree(...) : the replicated form is derived for a cluster."""
    partition_by: str = ""
    ttl_column: str = ""
    """TTL on this DateTime64 column, retention days from settings; empty = kept."""
    ttl_slack_days: int = 0
    """Kept this many days beyond the retention."""
    sharding_key: str = "rand()"
    settings: dict[str, str] = field(default_factory=dict)
    """Table settings fixed at creation."""
    part_settings: dict[str, str] = field(default_factory=dict)
    """Settings for parts written from now on: set at creation and on existing tables (new parts, merges)."""
    added_columns: tuple[str, ...] = ()
    """Columns that came after the table's first release: added to existing tables (``ADD COLUMN IF NOT
    EXISTS``, each after the column before it) so an older data dir keeps working."""


SMALL_BLOCKS = {"min_compress_block_size": "4096", "max_compress_block_size": "16384"}
"""Compressed blocks of 4-16 KiB instead of 64 KiB-1 MiB: a trace reads thousands of scattered 256-row
granules, and each would otherwise decompress a whole large block per column read."""


STAY_COLUMNS: list[tuple[str, str]] = [
    ("checkin_id", "String"),
    ("person_id", "UInt64"),
    ("venue_id", "UInt32"),
    ("at", "DateTime64(3, 'UTC')"),
    ("end_at", "DateTime64(3, 'UTC')"),
    ("version", "UInt8"),
    ("district", "LowCardinality(String)"),
    ("street", "LowCardinality(String)"),
    ("community", "LowCardinality(String)"),
    ("status", "Enum8('green' = 1, 'yellow' = 2, 'red' = 3)"),
    ("verdict", "Enum8('pass' = 1, 'restricted' = 2, 'deny' = 3)"),
    ("reason", "LowCardinality(String)"),
    ("source", "Enum8('phone' = 1, 'batch' = 2, 'sentinel' = 3)"),
    ("owner_id", "UInt64"),
    ("lat", "Float32"),
    ("lon", "Float32"),
    ("stream_id", "String"),
    ("received_at", "DateTime64(3, 'UTC')"),
    ("ended_by", "Enum8('natural' = 0, 'checkout' = 1, 'next_stay' = 2)"),
]
STAY_ADDED_COLUMNS = ("ended_by",)
"""Stay columns that came after the first release (see :attr:`Table.added_columns`)."""

TABLES: list[Table] = [
    Table(
        name="scans",
        columns=STAY_COLUMNS,
        engine="ReplacingMergeTree(version)",
        partition_by="toYYYYMMDD(at)",
        order_by="(venue_id, at, person_id, checkin_id)",
        ttl_column="at",
        sharding_key="cityHash64(venue_id)",
        # Small granules: a trace reads a few stays around each (venue, at); 8192-row granules made it read
        # ~100x more rows than it keeps (measured: loadtest/bench_trace.py).
        settings={"non_replicated_deduplication_window": "10000", "index_granularity": "256"},
        part_settings=SMALL_BLOCKS,
        added_columns=STAY_ADDED_COLUMNS,
    ),
    Table(
        name="scans_by_person",
        columns=STAY_COLUMNS,
        engine="ReplacingMergeTree(version)",
        # Weekly partitions: a person's fortnight of stays sits in 2-3 parts, not 14 day parts (each lookup
        # reads at least one granule per part); small granules for the same reason.
        partition_by="toMonday(at)",
        order_by="(person_id, at, venue_id, checkin_id)",
        ttl_column="at",
        sharding_key="cityHash64(person_id)",
        settings={"index_granularity": "256"},
        part_settings=SMALL_BLOCKS,
        added_columns=STAY_ADDED_COLUMNS,
    ),
    Table(
        # The longest stay that started at each venue on each day, kept by a materialized view of `scans`.
        # Depth 2 pairs an index stay with candidate stays from (its start - longest stay there) instead
        # of from 12 h before: exact, since no stay there that day is longer, and most venues never see a
        # 12 h check-out. Kept a day beyond the retention: a day's row must outlive that day's stays.
        name="longest_stays",
        columns=[
            ("venue_id", "UInt32"),
            ("day", "Date"),
            ("longest_ms", "SimpleAggregateFunction(max, Int64)"),
        ],
        engine="AggregatingMergeTree",
        partition_by="toYYYYMM(day)",
        order_by="(venue_id, day)",
        ttl_column="day",
        ttl_slack_days=1,
        sharding_key="cityHash64(venue_id)",
    ),
    Table(
        name="venues",
        columns=[
            ("venue_id", "UInt32"),
            ("name", "String"),
            ("address", "String"),
            ("type", "LowCardinality(String)"),
            ("district", "LowCardinality(String)"),
            ("street", "LowCardinality(String)"),
            ("community", "LowCardinality(String)"),
            ("lat", "Float64"),
            ("lon", "Float64"),
            ("capacity", "UInt32"),
            ("dwell_minutes", "UInt16"),
            ("requires_negative_test_hours", "Nullable(UInt16)"),
            ("active", "UInt8"),
            ("code_version", "UInt16"),
            ("updated_at", "DateTime64(3, 'UTC')"),
        ],
        engine="ReplacingMergeTree(updated_at)",
        order_by="venue_id",
        sharding_key="cityHash64(venue_id)",
    ),
    Table(
        # Names of district, street and community codes (tracing/api/regions.py): the newest name wins.
        name="regions",
        columns=[("code", "String"), ("name", "String"), ("updated_at", "DateTime64(3, 'UTC')")],
        engine="ReplacingMergeTree(updated_at)",
        order_by="code",
        sharding_key="cityHash64(code)",
    ),
    Table(
        name="alerts",
        columns=[
            ("alert_id", "String"),
            ("kind", "LowCardinality(String)"),
            ("severity", "Enum8('info' = 1, 'warning' = 2, 'critical' = 3)"),
            ("at", "DateTime64(3, 'UTC')"),
            ("person_id", "Nullable(UInt64)"),
            ("venue_id", "UInt32"),
            ("district", "LowCardinality(String)"),
            ("street", "LowCardinality(String)"),
            ("community", "LowCardinality(String)"),
            ("details", "String"),
            ("acked", "UInt8"),
            ("acked_by", "String"),
            ("acked_at", "Nullable(DateTime64(3, 'UTC'))"),
            ("level", "Enum8('community' = 1, 'street' = 2, 'district' = 3, 'city' = 4)"),
            ("escalated_at", "Nullable(DateTime64(3, 'UTC'))"),
            ("resolved", "UInt8"),
            ("resolved_by", "String"),
            ("resolved_at", "Nullable(DateTime64(3, 'UTC'))"),
            ("outcome", "LowCardinality(String)"),
            ("note", "String"),
            ("version", "UInt64"),
        ],
        added_columns=("level", "escalated_at", "resolved", "resolved_by", "resolved_at", "outcome", "note"),
        engine="ReplacingMergeTree(version)",
        partition_by="toYYYYMM(at)",
        order_by="(at, alert_id)",
        ttl_column="at",
        sharding_key="cityHash64(alert_id)",
        settings={"non_replicated_deduplication_window": "1000"},
    ),
    Table(
        name="audit",
        columns=[
            ("at", "DateTime64(3, 'UTC')"),
            ("actor", "String"),
            ("role", "LowCardinality(String)"),
            ("action", "LowCardinality(String)"),
            ("reason", "String"),
            ("params", "String"),
            ("rows", "UInt64"),
            ("client_ip", "String"),
        ],
        partition_by="toYYYYMM(at)",
        order_by="(at, actor)",
        settings={"non_replicated_deduplication_window": "1000"},
    ),
]

TABLE_NAMES = [t.name for t in TABLES]

LONGEST_STAYS_SELECT = (
    "SELECT venue_id, toDate(at) AS day, "
    "max(toUnixTimestamp64Milli(end_at) - toUnixTimestamp64Milli(at)) AS longest_ms "
    "FROM {source} GROUP BY venue_id, day"
)
"""Rows of ``longest_stays`` from stays in ``source`` (the view, and the one-off fill of older stays)."""


def _engine(table: Table, cluster: str) -> str:
    if not cluster:
        return table.engine
    base, _, args = table.engine.partition("(")
    args = args.rstrip(")")
    path = f"'/clickhouse/tables/{{shard}}/{{database}}/{table.name}_local', '{{replica}}'"
    return f"Replicated{base}({path}{', ' + args if args else ''})"


def _ttl(table: Table, retention_days: int) -> str:
    days = int(retention_days) + table.ttl_slack_days
    return f"toDateTime({table.ttl_column}) + INTERVAL {days} DAY"


def _table_ddl(db: str, table: Table, retention_days: int, cluster: str) -> str:
    name = f"{table.name}_local" if cluster else table.name
    on_cluster = f" ON CLUSTER '{cluster}'" if cluster else ""
    cols = ",\n    ".join(f"`{col}` {typ}" for col, typ in table.columns)
    parts = [
        f"CREATE TABLE IF NOT EXISTS {db}.{name}{on_cluster}\n(\n    {cols}\n)",
        f"ENGINE = {_engine(table, cluster)}",
    ]
    if table.partition_by:
        parts.append(f"PARTITION BY {table.partition_by}")
    parts.append(f"ORDER BY {table.order_by}")
    if table.ttl_column:
        parts.append(f"TTL {_ttl(table, retention_days)}")
    settings = {**table.settings, **table.part_settings}
    if cluster:
        settings.pop("non_replicated_deduplication_window", None)
    if settings:
        parts.append("SETTINGS " + ", ".join(f"{k} = {v}" for k, v in settings.items()))
    return "\n".join(parts)


def statements(db: str, retention_days: int, cluster: str = "") -> list[str]:
    """Every DDL statement, in order; each is idempotent."""
    on_cluster = f" ON CLUSTER '{cluster}'" if cluster else ""
    out = [f"CREATE DATABASE IF NOT EXISTS {db}{on_cluster}"]
    for table in TABLES:
        out.append(_table_ddl(db, table, retention_days, cluster))
        if cluster:
            out.append(
                f"CREATE TABLE IF NOT EXISTS {db}.{table.name}{on_cluster} AS {db}.{table.name}_local\n"
                f"ENGINE = Distributed('{cluster}', '{db}', '{table.name}_local', {table.sharding_key})"
            )
    # On a cluster the view fires on each shard's local inserts (sharded by venue) and writes through the
    # Distributed table, which re-shards the rows by person.
    target = "scans_by_person"
    source = "scans_local" if cluster else "scans"
    out.append(
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.scans_by_person_mv{on_cluster} TO {db}.{target}\n"
        f"AS SELECT * FROM {db}.{source}"
    )
    # Per shard: scans and longest_stays are both sharded by venue, so each shard's view sees every stay
    # of its venues.
    target = "longest_stays_local" if cluster else "longest_stays"
    out.append(
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.longest_stays_mv{on_cluster} TO {db}.{target}\n"
        f"AS {LONGEST_STAYS_SELECT.format(source=f'{db}.{source}')}"
    )
    for table in TABLES:
        order = [col for col, _ in table.columns]
        types = dict(table.columns)
        for column in table.added_columns:
            after = order[order.index(column) - 1]
            for name in [f"{table.name}_local", table.name] if cluster else [table.name]:
                out.append(
                    f"ALTER TABLE {db}.{name}{on_cluster} ADD COLUMN IF NOT EXISTS `{column}` "
                    f"{types[column]} AFTER `{after}`"
                )
    for table in TABLES:
        name = f"{table.name}_local" if cluster else table.name
        if table.ttl_column:
            out.append(
                f"ALTER TABLE {db}.{name}{on_cluster} MODIFY TTL {_ttl(table, retention_days)} "
                "SETTINGS materialize_ttl_after_modify = 0"
            )
        if table.part_settings:
            assignments = ", ".join(f"{k} = {v}" for k, v in table.part_settings.items())
            out.append(f"ALTER TABLE {db}.{name}{on_cluster} MODIFY SETTING {assignments}")
    return out
