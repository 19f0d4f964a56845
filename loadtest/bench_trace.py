"""Contact-trace latency over a month of a city's scans in the embedded engine.

Builds (or reuses) a history of ``--days`` x ``--scans-per-day`` stays in its
own embedded ClickHouse under ``--data-dir``, then times, through the tracing
API in process (auth, validation, queries, audit row, JSON), random index
persons' contacts at depth 1 and 2 over a 14-day window and exposure screening
of 10 sites x 1 day. Figures go to docs/bench/trace.json (``--name``).

History: ``checkin backfill --days N`` (tracing.storage.backfill; the default when it is
installed), or with ``--generator sql`` an ``INSERT ... SELECT FROM numbers()``
per day written here: Zipf-like venue popularity
(239,000 venues), uniform residents (3.85 M), morning/lunch/evening peaks in
local time, venue dwell 30-120 min, 15 % of stays ended early by a check-out
(a second, newer row version), so FINAL has real work to do. Either way a person is
in one place at a time: a stay ends at the person's next stay when that starts
first (``ended_by = 'next_stay'``; here a newer row version, as the check-in script
writes it when the next stay arrives).

    python loadtest/bench_trace.py                       # 30 days x 1.7 M (51 M stays)
    python loadtest/bench_trace.py --days 3 --queries 50 # a quick look
    python loadtest/bench_trace.py --days 7 --name trace_7d --data-dir var/bench-trace-7d  # growth
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from checkin.platform.progress import Progress  # noqa: E402
from loadtest.results import Figure, record  # noqa: E402

DATABASE = "bench"
LOCAL_OFFSET_H = 8  # the reference city's local time is UTC+8
HISTORY_FORMAT = "one place at a time"
"""Written beside the generator's name: a history built before stays were cut by the next one is rebuilt."""
STAY_COLUMNS = (
    "checkin_id, person_id, venue_id, at, end_at, version, district, street, community, status, verdict, "
    "reason, source, owner_id, lat, lon, stream_id, received_at, ended_by"
)

GEN_SQL = """
INSERT INTO {db}.scans ({columns})
SELECT
    concat('b', toString({{day:UInt32}}), '-', toString(number)) AS checkin_id,
    1 + cityHash64(number, {{day:UInt32}}, 'person') % {{persons:UInt64}} AS person_id,
    toUInt32(1 + floor({{venues:UInt32}}
        * pow((cityHash64(number, {{day:UInt32}}, 'venue') % 1000003) / 1000003, 2))) AS venue_id,
    fromUnixTimestamp64Milli({{day_ms:Int64}} + toInt64(3600000 * modulo(48 - {offset}
        + [7.5, 12.0, 18.5][1 + cityHash64(number, {{day:UInt32}}, 'peak') % 3]
        + ((cityHash64(number, {{day:UInt32}}, 't1') % 1000)
           + (cityHash64(number, {{day:UInt32}}, 't2') % 1000)
           + (cityHash64(number, {{day:UInt32}}, 't3') % 1000) - 1500) / 1000 * 2.5, 24)), 'UTC') AS at,
    at + toIntervalMinute([30, 60, 60, 90, 120][1 + venue_id % 5]) AS end_at,
    0 AS version,
    concat('6201', leftPad(toString(1 + (venue_id % 427) % 50 % 8), 2, '0')) AS district,
    concat(district, leftPad(toString(1 + (venue_id % 427) % 50), 3, '0')) AS street,
    concat(street, leftPad(toString(1 + venue_id % 427), 3, '0')) AS community,
    'green' AS status, 'pass' AS verdict, '' AS reason, 'phone' AS source, person_id AS owner_id,
    0 AS lat, 0 AS lon, '' AS stream_id, at AS received_at, 'natural' AS ended_by
FROM numbers({{rows:UInt64}})
"""

CHECKOUT_SQL = """
INSERT INTO {db}.scans ({columns})
SELECT checkin_id, person_id, venue_id, at,
       at + toIntervalMinute(5 + cityHash64(checkin_id, 'out') % 20) AS end_at, 1 AS version,
       district, street, community, status, verdict, reason, source, owner_id, lat, lon, stream_id,
       received_at, 'checkout' AS ended_by
FROM (
    SELECT * FROM {db}.scans
    WHERE at >= fromUnixTimestamp64Milli({{day_ms:Int64}}, 'UTC')
      AND at < fromUnixTimestamp64Milli({{day_ms:Int64}} + 86400000, 'UTC')
      AND version = 0 AND cityHash64(checkin_id, 'co') % 100 < 15
)
"""
"""15 % of a day's stays checked out after 5-25 minutes (the filter sits in a subquery: the outer
aliases ``version`` and ``end_at`` would shadow the columns in a WHERE beside them)."""

CUT_SQL = """
INSERT INTO {db}.scans ({columns})
SELECT checkin_id, person_id, venue_id, at, next_at AS end_at, version + 1 AS version,
       district, street, community, status, verdict, reason, source, owner_id, lat, lon, stream_id,
       received_at, 'next_stay' AS ended_by
FROM (
    SELECT * FROM (
        SELECT *, leadInFrame(at, 1, toDateTime64('2299-12-31 00:00:00', 3, 'UTC')) OVER (
            PARTITION BY person_id ORDER BY at, checkin_id ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING
        ) AS next_at
        FROM {db}.scans FINAL
        WHERE at >= fromUnixTimestamp64Milli({{day_ms:Int64}}, 'UTC')
          AND at < fromUnixTimestamp64Milli({{day_ms:Int64}} + 86400000 + 7200000, 'UTC')
    )
    WHERE at < fromUnixTimestamp64Milli({{day_ms:Int64}} + 86400000, 'UTC')
      AND next_at > at AND next_at < end_at
)
"""
"""A day's stays cut by the person's next stay (that day or within the longest dwell, 2 h, after it)."""

VENUES_SQL = """
INSERT INTO {db}.venues (venue_id, name, type, district, street, community, capacity, dwell_minutes, active,
                          code_version, updated_at)
SELECT toUInt32(number + 1) AS venue_id, concat('Venue ', toString(venue_id)), 'shop',
       concat('6201', leftPad(toString(1 + (venue_id % 427) % 50 % 8), 2, '0')) AS district,
       concat(district, leftPad(toString(1 + (venue_id % 427) % 50), 3, '0')) AS street,
       concat(street, leftPad(toString(1 + venue_id % 427), 3, '0')), 200,
       [30, 60, 60, 90, 120][1 + venue_id % 5], 1, 1, now64(3)
FROM numbers({{venues:UInt32}})
"""


def generate(store: Any, days: int, per_day: int, venues: int, persons: int, end_day: dt.date) -> float:
    """Write ``days`` days of history ending the day before ``end_day``; returns seconds taken."""
    db = store.database
    started = time.monotonic()
    store.command(VENUES_SQL.format(db=db), {"venues": venues})
    total = days * per_day
    bar = Progress("history", total, "rows")
    for n in range(days):
        day = end_day - dt.timedelta(days=days - n)
        day_ms = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 1000
        params = {
            "day": day.toordinal(),
            "day_ms": day_ms,
            "rows": per_day,
            "persons": persons,
            "venues": venues,
        }
        store.command(
            GEN_SQL.format(db=db, offset=LOCAL_OFFSET_H, columns=STAY_COLUMNS),
            params,
            settings={"max_insert_threads": 2},
        )
        store.command(CHECKOUT_SQL.format(db=db, columns=STAY_COLUMNS), {"day_ms": day_ms})
        bar.update((n + 1) * per_day)
    bar.finish()
    # one place at a time: once every day is written, each stay the person's next one starts in is cut
    for n in range(days):
        day = end_day - dt.timedelta(days=days - n)
        day_ms = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 1000
        store.command(CUT_SQL.format(db=db, columns=STAY_COLUMNS), {"day_ms": day_ms})
    return time.monotonic() - started


def settle(store: Any) -> float:
    """Merge each day's parts, as background merges do to every partition older than a few hours."""
    started = time.monotonic()
    for table in ("scans", "scans_by_person"):
        parts = store.rows(
            "SELECT partition_id FROM system.parts WHERE database = {db:String} AND table = {t:String} "
            "AND active GROUP BY partition_id HAVING count() > 1 ORDER BY partition_id",
            {"db": store.database, "t": table},
        )
        bar = Progress(f"merging {table}", len(parts), "days")
        for (partition,) in parts:
            store.command(
                f"OPTIMIZE TABLE {store.database}.{table} PARTITION {{p:String}} FINAL", {"p": partition}
            )
            bar.advance(1)
        bar.finish()
    return time.monotonic() - started


def backfill_with_command(data_dir: Path, days: int, per_day: int, venues: int, persons: int) -> float:
    """``checkin backfill`` in a child process (it opens the embedded engine itself)."""
    import subprocess

    started = time.monotonic()
    env = {
        **os.environ,
        "CHECKIN_DATA_DIR": str(data_dir),
        "CHECKIN_CLICKHOUSE_DSN": f"chdb://{data_dir / 'clickhouse'}",
        "CHECKIN_CLICKHOUSE_DATABASE": DATABASE,
        "CHECKIN_RETENTION_DAYS": str(days + 7),
    }
    command = [sys.executable, "-m", "checkin.cli", "backfill", "--days", str(days)]
    command += ["--scans-per-day", str(per_day), "--venues", str(venues), "--residents", str(persons)]
    subprocess.run(command, env=env, check=True)
    return time.monotonic() - started


def default_generator() -> str:
    try:
        import tracing.storage.backfill  # noqa: F401
    except ModuleNotFoundError:
        return "sql"
    return "backfill"


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


class Api:
    """The tracing app in process over the bench Store (real handlers, audit rows included)."""

    def __init__(self, store: Any, data_dir: Path, days: int) -> None:
        from litestar.testing import TestClient

        from checkin.platform.keyring import Keyring
        from checkin.platform.settings import load_settings
        from tracing.app import create_app

        admin = "bench-admin-key-" + os.urandom(6).hex()
        settings = load_settings(
            {
                **{k: v for k, v in os.environ.items() if k.startswith("CHECKIN_")},
                "CHECKIN_DATA_DIR": str(data_dir),
                "CHECKIN_CLICKHOUSE_DSN": store.dsn,
                "CHECKIN_CLICKHOUSE_DATABASE": DATABASE,
                "CHECKIN_ADMIN_KEY": admin,
                "CHECKIN_KEYRING": Keyring.generate(1),
                "CHECKIN_KEY_PREFIX": f"bench:{os.getpid()}:",
                "CHECKIN_RETENTION_DAYS": str(days + 7),
            }
        )
        self.client = TestClient(app=create_app(settings, store=store, workers=()))
        self.client.__enter__()
        self.headers = {"Authorization": f"Bearer {admin}"}

    def post(self, path: str, body: dict[str, Any], refusable: bool = False) -> tuple[float, Any]:
        """Time one call; when ``refusable``, a 422 (a depth 2 too broad to answer) comes back as None."""
        start = time.perf_counter()
        r = self.client.post(path, json=body, headers=self.headers)
        took = time.perf_counter() - start
        if refusable and r.status_code == 422:
            return took, None
        if r.status_code not in (200, 404):
            raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")
        return took, r.json()

    def close(self) -> None:
        self.client.__exit__(None, None, None)


def refused_note(refused: list[float], answered: int) -> str:
    """Depth-2 traces refused as too broad (422) are left out of the figure and counted here."""
    if not refused:
        return f"none of {answered} refused as too broad"
    return (
        f"{len(refused)} of {answered + len(refused)} refused as too broad (422, left out of the p95; "
        f"refused in {statistics.median(refused) * 1000:.0f} ms median)"
    )


def iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def run_queries(
    api: Api, rng: random.Random, n: int, persons: int, venues: int, end: dt.datetime
) -> dict[str, Any]:
    window = {"since": iso(end - dt.timedelta(days=14)), "until": iso(end)}
    d1: list[float] = []
    d2: list[float] = []
    ex: list[float] = []
    found1: list[int] = []
    found2: list[int] = []
    exposed: list[int] = []
    refused2: list[float] = []
    for _ in range(3):  # warm the caches and the code paths
        api.post("/v1/trace/contacts", {"person_id": rng.randrange(1, persons), **window, "reason": "bench"})
    for i in range(n):
        person = rng.randrange(1, persons + 1)
        took, body = api.post(
            "/v1/trace/contacts", {"person_id": person, **window, "depth": 1, "reason": "bench"}
        )
        d1.append(took)
        found1.append(body.get("contacts_total", 0))
        if i % 2 == 0:
            took, body = api.post(
                "/v1/trace/contacts",
                {"person_id": person, **window, "depth": 2, "reason": "bench"},
                refusable=True,
            )
            if body is None:
                refused2.append(took)
            else:
                d2.append(took)
                found2.append(body.get("second_degree_total", 0))
        if i % 2 == 1:
            sites = []
            for _ in range(10):
                day = end - dt.timedelta(days=rng.randrange(1, 14))
                start = day.replace(hour=0, minute=0, second=0, microsecond=0)
                venue = 1 + int(venues * rng.random() ** 2)
                sites.append(
                    {"venue_id": venue, "since": iso(start), "until": iso(start + dt.timedelta(days=1))}
                )
            took, body = api.post("/v1/trace/exposures", {"sites": sites, "reason": "bench"})
            ex.append(took)
            exposed.append(body["count"])
    return {
        "d1": d1,
        "d2": d2,
        "ex": ex,
        "found1": found1,
        "found2": found2,
        "exposed": exposed,
        "refused2": refused2,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--scans-per-day", type=int, default=1_700_000)
    parser.add_argument("--venues", type=int, default=239_000)
    parser.add_argument("--persons", type=int, default=3_850_000)
    parser.add_argument("--queries", type=int, default=200, help="index persons timed (depth 2 on half)")
    parser.add_argument("--data-dir", default=str(ROOT / "var" / "bench-trace"))
    parser.add_argument(
        "--generator",
        choices=("sql", "backfill"),
        default=default_generator(),
        help="backfill = `checkin backfill` (default when present); sql = this script's INSERT ... SELECT",
    )
    parser.add_argument("--fresh", action="store_true", help="drop and rebuild the history")
    parser.add_argument(
        "--no-settle", action="store_true", help="time before each day's parts are merged (worst case)"
    )
    parser.add_argument("--name", default="trace", help="result file docs/bench/<name>.json")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.days < 1 or args.scans_per_day < 1 or args.queries < 2:
        print("error: --days, --scans-per-day must be >= 1 and --queries >= 2", file=sys.stderr)
        return 2

    import logging

    from tracing.storage.store import Store

    logging.getLogger("httpx").setLevel(logging.WARNING)
    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(f"chdb://{data_dir / 'clickhouse'}", DATABASE)
    if args.fresh:
        store.command(f"DROP DATABASE IF EXISTS {DATABASE}")
    store.apply_schema(args.days + 7)
    today = dt.datetime.now(dt.UTC).date()
    expected = args.days * args.scans_per_day
    have = int(store.scalar(f"SELECT count() FROM {DATABASE}.scans FINAL") or 0)  # stays, however written
    marker = data_dir / "generator.txt"
    made_by = marker.read_text().strip() if marker.exists() else ""
    wanted = f"{args.generator}, {HISTORY_FORMAT}"
    build_s = None
    if have != expected or made_by != wanted:
        if have:
            store.command(f"DROP DATABASE IF EXISTS {DATABASE}")
            store.apply_schema(args.days + 7)
        if args.generator == "backfill":
            store.close()
            build_s = backfill_with_command(
                data_dir, args.days, args.scans_per_day, args.venues, args.persons
            )
            store = Store(f"chdb://{data_dir / 'clickhouse'}", DATABASE)
        else:
            build_s = generate(store, args.days, args.scans_per_day, args.venues, args.persons, today)
        marker.write_text(wanted + "\n")
        print(f"history built in {build_s:,.0f} s", file=sys.stderr)
    if not args.no_settle:
        print(f"parts merged in {settle(store):,.0f} s", file=sys.stderr)
    rows, cut = store.rows(
        f"SELECT count(), countIf(ended_by = 'next_stay') FROM {DATABASE}.scans FINAL",
        settings={"do_not_merge_across_partitions_select_final": 1},
    )[0]
    rows, cut = int(rows), int(cut)
    parts = int(
        store.scalar(
            "SELECT count() FROM system.parts WHERE database = {db:String} AND table = 'scans' AND active",
            {"db": DATABASE},
        )
        or 0
    )
    bytes_on_disk = int(
        store.scalar(
            "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = {db:String} AND active",
            {"db": DATABASE},
        )
        or 0
    )
    print(
        f"{rows:,} stays, {parts} active parts in scans, {bytes_on_disk / 1e9:.2f} GB on disk",
        file=sys.stderr,
    )

    end = dt.datetime.combine(today, dt.time(0), dt.UTC)
    api = Api(store, data_dir, args.days)
    rng = random.Random(args.seed)
    load_before = os.getloadavg()[0]
    try:
        res = run_queries(api, rng, args.queries, args.persons, args.venues, end)
    finally:
        api.close()
        store.close()

    merged = "day parts unmerged" if args.no_settle else "day parts merged"
    scale = f"{rows / 1e6:.1f} M stays ({args.generator} history), {args.days} days, 14-day window, {merged}"
    scale += ", embedded engine, API in process, first page of 1,000 rows per list with whole-list totals"
    scale += f", cumulative overlap >= 15 min, index persons of --seed {args.seed}"
    scale += (
        f", machine load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
        "(others' work shares the cores)"
    )
    figures = [
        Figure(
            "contacts depth 1 p95",
            p95(res["d1"]) * 1000,
            "ms",
            "< 100 ms",
            p95(res["d1"]) < 0.1,
            note=f"{scale}; median {statistics.median(res['d1']) * 1000:.1f} ms, "
            f"mean {statistics.mean(res['found1']):.1f} contacts",
        ),
        Figure(
            "contacts depth 2 p95",
            p95(res["d2"]) * 1000,
            "ms",
            "< 1000 ms",
            p95(res["d2"]) < 1.0,
            note=f"{scale}; median {statistics.median(res['d2']) * 1000:.1f} ms, "
            f"max {max(res['d2']) * 1000:.0f} ms, mean {statistics.mean(res['found2']):.1f} second-degree "
            f"(max {max(res['found2'])}); {refused_note(res['refused2'], len(res['d2']))}",
        ),
        Figure(
            "exposure screening 10 sites x 1 day p95",
            p95(res["ex"]) * 1000,
            "ms",
            "< 200 ms",
            p95(res["ex"]) < 0.2,
            note=f"{scale}; median {statistics.median(res['ex']) * 1000:.1f} ms, "
            f"mean {statistics.mean(res['exposed']):.0f} persons",
        ),
        Figure(
            "trace history size",
            rows / 1e6,
            "M stays",
            note=f"{bytes_on_disk / 1e9:.2f} GB on disk, {parts} parts; "
            f"{cut / max(rows, 1):.1%} of stays ended by the person's next stay",
        ),
    ]
    if build_s is not None:
        figures.append(Figure("trace history build rate", rows / build_s, "stays/s", note=args.generator))
    command = "python loadtest/bench_trace.py " + " ".join(argv if argv is not None else sys.argv[1:])
    record(args.name, command.strip(), figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
