from __future__ import annotations

import datetime as dt

from tracing.storage import schema
from tracing.storage.store import Store, StoreError


def test_schema_applies_twice_and_creates_every_table(store: Store) -> None:
    store.apply_schema(28)
    store.apply_schema(28)
    tables = store.existing_tables()
    assert {"scans", "scans_by_person", "venues", "alerts", "audit"} <= tables


def test_retention_ttl_follows_the_setting(store: Store) -> None:
    store.apply_schema(7)
    ddl = store.scalar(
        "SELECT create_table_query FROM system.tables WHERE database = {db:String} AND name = 'scans'",
        {"db": store.database},
    )
    assert "toIntervalDay(7)" in ddl


def test_existing_stay_tables_get_small_compressed_blocks(store: Store) -> None:
    """Tables made before the setting existed get it on the next start (it applies to new parts)."""
    store.apply_schema(28)
    for table in ("scans", "scans_by_person"):
        store.command(f"ALTER TABLE {store.table(table)} MODIFY SETTING min_compress_block_size = 65536")
    store.apply_schema(28)
    for table in ("scans", "scans_by_person"):
        ddl = store.scalar(
            "SELECT create_table_query FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            {"db": store.database, "t": table},
        )
        assert "min_compress_block_size = 4096" in ddl and "max_compress_block_size = 16384" in ddl, ddl


def test_a_stay_reads_once_after_checkout_and_duplicate_batches(store: Store) -> None:
    cols = [c for c, _ in schema.STAY_COLUMNS]
    at = dt.datetime(2026, 11, 29, 8, 0, tzinfo=dt.UTC)
    row = [
        "c1",
        5,
        7,
        at,
        at + dt.timedelta(hours=1),
        0,
        "620102",
        "620102001",
        "620102001001",
        "green",
        "pass",
        "",
        "phone",
        5,
        0.0,
        0.0,
        "1-0",
        at,
        "natural",
    ]
    store.insert("scans", cols, [row], column_oriented=False, dedup_token="batch-a")
    store.insert("scans", cols, [row], column_oriented=False, dedup_token="batch-a")  # retried batch
    out = list(row)
    out[4], out[5], out[-1] = at + dt.timedelta(minutes=10), 1, "checkout"
    store.insert("scans", cols, [out], column_oriented=False, dedup_token="batch-b")
    store.insert("scans", cols, [row], column_oriented=False, dedup_token="batch-c")  # same row, new batch
    rows = store.rows(f"SELECT count(), max(end_at) FROM {store.table('scans')} FINAL")
    assert rows[0][0] == 1
    assert rows[0][1].replace(tzinfo=dt.UTC) == at + dt.timedelta(minutes=10)
    by_person = store.rows(
        f"SELECT count() FROM {store.table('scans_by_person')} FINAL WHERE person_id = {{p:UInt64}}", {"p": 5}
    )
    assert by_person[0][0] == 1


def test_server_errors_become_store_errors_with_the_code(store: Store) -> None:
    try:
        store.query("SELECT * FROM no_such_table_here")
    except StoreError as exc:
        assert exc.code == 60
    else:
        raise AssertionError("expected a StoreError")


def test_cluster_ddl_is_generated_from_the_same_source() -> None:
    stmts = schema.statements("checkin", 28, cluster="city")
    text = "\n".join(stmts)
    engine = "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/scans_local', '{replica}', "
    assert engine + "version)" in text
    assert "ENGINE = Distributed('city', 'checkin', 'scans_local', cityHash64(venue_id))" in text
    assert all("ON CLUSTER 'city'" in s for s in stmts)


def test_every_cluster_statement_parses_in_the_engine(store: Store) -> None:
    for stmt in schema.statements("checkin", 28, cluster="city"):
        formatted = store.scalar("SELECT formatQuerySingleLine({q:String})", {"q": stmt})
        assert "ON CLUSTER city" in formatted


def test_single_node_ddl_has_no_cluster_parts() -> None:
    text = "\n".join(schema.statements("checkin", 28))
    assert "ON CLUSTER" not in text and "Replicated" not in text and "Distributed" not in text
    assert "SETTINGS non_replicated_deduplication_window = 10000" in text


def test_longest_stays_follow_inserts_and_are_filled_for_older_stays(store: Store) -> None:
    cols = [c for c, _ in schema.STAY_COLUMNS]
    at = dt.datetime(2026, 11, 28, 23, 0, tzinfo=dt.UTC)
    row = ["c1", 5, 7, at, at + dt.timedelta(hours=1), 0, "620102", "620102001", "620102001001"]
    row += ["green", "pass", "", "phone", 5, 0.0, 0.0, "1-0", at, "natural"]
    late = list(row)
    late[0], late[3], late[4] = "c2", at + dt.timedelta(minutes=30), at + dt.timedelta(hours=9)
    store.insert("scans", cols, [row, late], column_oriented=False)
    sql = f"SELECT venue_id, day, max(longest_ms) FROM {store.table('longest_stays')} GROUP BY venue_id, day"
    expected = [(7, dt.date(2026, 11, 28), 9 * 3_600_000 - 30 * 60_000)]
    assert store.rows(sql) == expected
    store.command(f"TRUNCATE TABLE {store.table('longest_stays')}")  # as if made before the view existed
    store.apply_schema(28)
    assert store.rows(sql) == expected
