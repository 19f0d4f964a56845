"""The one place that talks to ClickHouse, through clickhouse-connect's Client.

The DSN picks the engine: ``chdb:///abs/path`` runs the embedded engine in this
process; ``http(s)://user:pass@host:8123/db`` talks to a server. Queries are
parameterised (``{name:Type}`` placeholders); table names come from the schema
module, never from callers' input. Server errors become :class:`StoreError`
with the ClickHouse error code.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import clickhouse_connect
import msgspec
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from tracing.storage import schema


class StoreError(RuntimeError):
    """A ClickHouse request failed; ``code`` is the server's error code when known."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


PERMANENT_CODES = frozenset({6, 26, 27, 32, 33, 36, 38, 41, 53, 69, 70, 72, 117, 321, 691})
"""ClickHouse error codes that say "this data cannot be inserted": retrying the same rows cannot help."""


def rejects_data(exc: BaseException) -> bool:
    """True when the engine refused the rows themselves (retrying the same rows cannot help)."""
    return isinstance(exc, StoreError) and exc.code in PERMANENT_CODES


def _error_code(text: str) -> int | None:
    match = re.search(r"Code: (\d+)", text)
    return int(match.group(1)) if match else None


CLIENT_SETTINGS = {"max_query_size": 64 * 1024 * 1024}
"""Contact rounds pass thousands of index stays as CSV text in the query (``trace._int_table``)."""


class _Limited(msgspec.Struct):
    data: list[list[Any]]
    rows_before_limit_at_least: int = 0


_limited = msgspec.json.Decoder(_Limited)


class Store:
    def __init__(
        self, dsn: str, database: str = "checkin", timeout_s: float = 30.0, cluster: str = ""
    ) -> None:
        self.dsn = dsn
        self.database = database
        self.cluster = cluster
        self.embedded = dsn.startswith("chdb://")
        self._lock = threading.Lock()
        self.calls = 0
        try:
            if self.embedded:
                self.client: Client = clickhouse_connect.get_client(dsn=dsn, settings=CLIENT_SETTINGS)
            else:
                self.client = clickhouse_connect.get_client(
                    dsn=dsn,
                    connect_timeout=min(timeout_s, 10),
                    send_receive_timeout=timeout_s,
                    settings=CLIENT_SETTINGS,
                )
        except Exception as exc:
            raise StoreError(
                f"cannot open ClickHouse at {self.safe_dsn}: {exc}", _error_code(str(exc))
            ) from exc

    @classmethod
    def from_settings(cls, settings: Any) -> Store:
        return cls(
            settings.effective_clickhouse_dsn,
            settings.clickhouse_database,
            settings.clickhouse_timeout_s,
            settings.clickhouse_cluster,
        )

    @property
    def safe_dsn(self) -> str:
        return re.sub(r"//([^:@/]+):[^@/]*@", r"//\1:***@", self.dsn)

    def table(self, name: str) -> str:
        if name not in schema.TABLE_NAMES:
            raise ValueError(f"unknown table {name}")
        return f"{self.database}.{name}"

    # --- requests -----------------------------------------------------------------
    def _run(self, fn: Callable[[], Any]) -> Any:
        with self._lock:
            self.calls += 1
            try:
                return fn()
            except ClickHouseError as exc:
                raise StoreError(str(exc).strip().splitlines()[0][:500], _error_code(str(exc))) from exc
            except RuntimeError as exc:  # the embedded engine raises plain RuntimeErrors
                if isinstance(exc, StoreError):
                    raise
                raise StoreError(str(exc).strip().splitlines()[0][:500], _error_code(str(exc))) from exc

    def command(
        self, sql: str, parameters: dict[str, Any] | None = None, settings: dict[str, Any] | None = None
    ) -> Any:
        return self._run(lambda: self.client.command(sql, parameters=parameters, settings=settings))

    def query(
        self, sql: str, parameters: dict[str, Any] | None = None, settings: dict[str, Any] | None = None
    ) -> Any:
        return self._run(lambda: self.client.query(sql, parameters=parameters, settings=settings))

    def rows(
        self, sql: str, parameters: dict[str, Any] | None = None, settings: dict[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        result = self.query(sql, parameters, settings)
        return list(result.result_rows)

    def rows_and_total(
        self, sql: str, parameters: dict[str, Any] | None = None, settings: dict[str, Any] | None = None
    ) -> tuple[list[list[Any]], int]:
        """Rows of a query ending in ``LIMIT``/``OFFSET``, and how many rows it had before them.

        The engine counts them while it sorts (``exact_rows_before_limit``), where a window
        ``count() OVER ()`` would first keep a copy of every row: depth-2 traces whose second degree
        runs to hundreds of thousands of persons took 4 % longer with the window (p95, measured:
        loadtest/bench_trace.py).
        """
        exact = {
            **(settings or {}),
            "exact_rows_before_limit": 1,
            "output_format_json_quote_64bit_integers": 0,
        }
        raw = self._run(
            lambda: self.client.raw_query(sql, parameters=parameters, settings=exact, fmt="JSONCompact")
        )
        answer = _limited.decode(raw)
        return answer.data, answer.rows_before_limit_at_least

    def dicts(
        self, sql: str, parameters: dict[str, Any] | None = None, settings: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        result = self.query(sql, parameters, settings)
        names = result.column_names
        return [dict(zip(names, row, strict=True)) for row in result.result_rows]

    def scalar(
        self, sql: str, parameters: dict[str, Any] | None = None, settings: dict[str, Any] | None = None
    ) -> Any:
        rows = self.rows(sql, parameters, settings)
        return rows[0][0] if rows else None

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        data: Sequence[Sequence[Any]],
        *,
        column_oriented: bool = True,
        dedup_token: str | None = None,
    ) -> float:
        """Insert rows (column-oriented by default); returns seconds taken."""
        settings: dict[str, Any] = {}
        if dedup_token:
            settings["insert_deduplication_token"] = dedup_token
            settings["insert_deduplicate"] = 1
        start = time.perf_counter()
        self._run(
            lambda: self.client.insert(
                self.table(table),
                data,
                column_names=list(columns),
                column_oriented=column_oriented,
                settings=settings or None,
            )
        )
        return time.perf_counter() - start

    def insert_raw(
        self,
        table: str,
        columns: Sequence[str],
        data: bytes,
        *,
        fmt: str = "Native",
        dedup_token: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> float:
        """Insert a block already encoded in ``fmt`` (the sink's Native blocks); returns seconds taken."""
        settings = dict(settings or {})
        if dedup_token:
            settings["insert_deduplication_token"] = dedup_token
            settings["insert_deduplicate"] = 1
        start = time.perf_counter()
        self._run(
            lambda: self.client.raw_insert(
                self.table(table), list(columns), data, settings=settings or None, fmt=fmt
            )
        )
        return time.perf_counter() - start

    def ping(self) -> bool:
        try:
            return bool(self.scalar("SELECT 1") == 1)
        except StoreError:
            return False

    def apply_schema(self, retention_days: int) -> list[str]:
        """Create or update every table (idempotent); returns the statements run."""
        stmts = schema.statements(self.database, retention_days, self.cluster)
        for stmt in stmts:
            self.command(stmt)
        if not self.scalar(f"SELECT count() FROM {self.table('longest_stays')}"):
            # Stays recorded before the view existed: the view now sees every new insert, and a max
            # taken twice is the same max, so filling after creating the view misses nothing.
            fill = f"INSERT INTO {self.table('longest_stays')} " + schema.LONGEST_STAYS_SELECT.format(
                source=self.table("scans")
            )
            self.command(fill)
            stmts.append(fill)
        return stmts

    def existing_tables(self) -> set[str]:
        rows = self.rows("SELECT name FROM system.tables WHERE database = {db:String}", {"db": self.database})
        return {r[0] for r in rows}

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # noqa: S110 - closing a broken client must not mask the real error
            pass
