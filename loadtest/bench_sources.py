"""Source tracing (溯源) latency on a month of a city's stays, with an outbreak planted in it.

Reuses the history of loadtest/bench_trace.py (same ``--data-dir``, ``--generator`` and sizes: the
same check that the history is complete, and the same builder when it is not), then plants one
outbreak: an index person who spends two hours at a busy venue (100-400 stays that day) on each of
three days of the window, and twelve persons at each of those visits who arrive while the index person
is there and stay 45-90 minutes. On the other days every planted person has a stay with the history's
own chance (stays a day / residents) at a venue drawn from that day's stays, so the cases pass through
the station as often as anyone does. The planted persons have ids far above the residents' and are
deleted again at the end (and at the start, should a run have been cut short), so the history stays
what bench_trace.py expects to reuse.

Each query draws ``--cases`` (20) of the 36 contacts (7, 7 and 6 of the three visits) and asks
``POST /v1/trace/sources`` through the tracing API in process (auth, validation, the queries, audit
row, JSON) over the 14 days before today: the figures are its p95 and in how many answers the planted
venues ranked first among the common venues and the index person first among the possible sources. A
few larger questions (the outbreak's cases among ``--many`` cases in all) are timed too.

    python loadtest/bench_sources.py                     # the history of bench_trace.py's defaults
    python loadtest/bench_sources.py --generator backfill --data-dir var/bench-trace-backfill
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from loadtest.bench_trace import (  # noqa: E402
    DATABASE,
    HISTORY_FORMAT,
    STAY_COLUMNS,
    Api,
    backfill_with_command,
    default_generator,
    generate,
    iso,
    p95,
    settle,
)
from loadtest.results import Figure, record  # noqa: E402

PLANTED_FROM = 10**12
"""Person ids of the planted outbreak start here: far above any resident of the history."""
PLANTED_VENUES = 3
CONTACTS_PER_VENUE = 12
INDEX_STAY_MS = 2 * 3_600_000
WINDOW_DAYS = 14


def remove_planted(store: Any) -> None:
    """Delete every planted stay (a lightweight delete: the rows are masked at once, merged away later)."""
    for table in ("scans", "scans_by_person"):
        store.command(
            f"DELETE FROM {DATABASE}.{table} WHERE person_id >= {{p:UInt64}}",
            {"p": PLANTED_FROM},
            settings={"mutations_sync": 2},
        )


def busy_venues(store: Any, day_ms: int, count: int, rng: random.Random) -> list[tuple[int, str, str, str]]:
    """``count`` venues with 100..400 stays on that day (a busy restaurant, not the station), with codes."""
    rows = store.rows(
        f"SELECT venue_id, any(district), any(street), any(community) FROM {DATABASE}.scans "
        "WHERE at >= fromUnixTimestamp64Milli({d:Int64}, 'UTC') "
        "AND at < fromUnixTimestamp64Milli({d:Int64} + 86400000, 'UTC') "
        "GROUP BY venue_id HAVING count() BETWEEN 100 AND 400 ORDER BY cityHash64(venue_id, {s:UInt64}) "
        "LIMIT {n:UInt32}",
        {"d": day_ms, "s": rng.randrange(2**32), "n": count * 5},
    )
    picked = rng.sample(rows, count) if len(rows) >= count else rows
    return [(int(v), str(d), str(s), str(c)) for v, d, s, c in picked]


def stays_of_day(store: Any, day_ms: int, count: int, rng: random.Random) -> list[tuple[int, str, str, str]]:
    """The venues (with codes) of ``count`` stays drawn at random from the history's stays of that day:
    a venue comes up as often as the city visits it (the station more than a corner shop)."""
    rows = store.rows(
        f"SELECT venue_id, district, street, community FROM {DATABASE}.scans "
        "WHERE at >= fromUnixTimestamp64Milli({d:Int64}, 'UTC') "
        "AND at < fromUnixTimestamp64Milli({d:Int64} + 86400000, 'UTC') "
        "ORDER BY cityHash64(checkin_id, {s:UInt64}) LIMIT {n:UInt32}",
        {"d": day_ms, "s": rng.randrange(2**32), "n": count},
    )
    return [(int(v), str(d), str(s), str(c)) for v, d, s, c in rows]


def plant(store: Any, end: dt.datetime, per_person_day: float, rng: random.Random) -> dict[int, list[int]]:
    """Write the outbreak; returns planted venue -> the contacts met there (who may become cases).

    The index person spends two hours at a busy venue on each of :data:`PLANTED_VENUES` days; at each
    visit :data:`CONTACTS_PER_VENUE` persons arrive while the index person is there and stay 45-90 minutes
    (30 minutes or more together). On every other day of the window each planted person has a stay with
    the history's own chance (``per_person_day``: stays a day / residents) at a venue drawn from that
    day's stays, so the cases pass through the station as often as anyone."""
    days = [end - dt.timedelta(days=d) for d in (11, 7, 3)][:PLANTED_VENUES]
    index = PLANTED_FROM
    contacts = [PLANTED_FROM + 1 + n for n in range(PLANTED_VENUES * CONTACTS_PER_VENUE)]
    stays: list[tuple[int, tuple[int, str, str, str], int, int, str]] = []  # person, venue, at, end, ended_by
    planted: dict[int, list[int]] = {}
    visit_day: dict[int, set[dt.datetime]] = {index: set(days)}
    for k, day in enumerate(days):
        day_ms = int(day.timestamp() * 1000)
        busy = busy_venues(store, day_ms, 1, rng)[0]
        planted[busy[0]] = contacts[k * CONTACTS_PER_VENUE : (k + 1) * CONTACTS_PER_VENUE]
        start = day_ms + 4 * 3_600_000 + rng.randrange(0, 3_600_000)  # lunch, local time (UTC+8)
        stays.append((index, busy, start, start + INDEX_STAY_MS, "checkout"))
        for person in planted[busy[0]]:
            at = start + rng.randrange(0, 90 * 60_000)
            stays.append((person, busy, at, at + rng.randrange(45, 91) * 60_000, "checkout"))
            visit_day[person] = {day}
    for d in range(WINDOW_DAYS + 1):
        day = end - dt.timedelta(days=d)
        drawn = iter(stays_of_day(store, int(day.timestamp() * 1000), len(visit_day), rng))
        for person, own in visit_day.items():
            if day in own or rng.random() >= per_person_day:
                continue
            elsewhere = next(drawn, None)
            if elsewhere is None:
                break
            at = int(day.timestamp() * 1000) + rng.randrange(0, 14 * 3_600_000)  # 08:00-22:00 local
            stays.append((person, elsewhere, at, at + rng.randrange(30, 91) * 60_000, "natural"))
    rows = []
    for n, (person, (venue, district, street, community), at, end_ms, ended_by) in enumerate(stays):
        start_t = dt.datetime.fromtimestamp(at / 1000, dt.UTC)
        rows.append(
            [
                f"outbreak-{n}",
                person,
                venue,
                start_t,
                dt.datetime.fromtimestamp(end_ms / 1000, dt.UTC),
                0,
                district,
                street,
                community,
                "green",
                "pass",
                "",
                "phone",
                person,
                0.0,
                0.0,
                "",
                start_t,
                ended_by,
            ]
        )
    # a token of its own: the table deduplicates a block inserted before, and a run plants the same rows
    token = f"bench-sources-{time.time_ns()}"
    store.insert(
        "scans", [c.strip() for c in STAY_COLUMNS.split(",")], rows, column_oriented=False, dedup_token=token
    )
    planted_rows = int(
        store.scalar(f"SELECT count() FROM {DATABASE}.scans WHERE person_id >= {PLANTED_FROM}") or 0
    )
    if planted_rows != len(rows):
        raise RuntimeError(f"planted {len(rows)} stays but the table holds {planted_rows}")
    return planted


def draw_cases(planted: dict[int, list[int]], n: int, rng: random.Random) -> list[int]:
    """``n`` cases drawn from the outbreak, spread over its venues as evenly as ``n`` allows (20 of 3 x 12
    contacts: 7, 7 and 6, the venue with 6 drawn at random)."""
    venues = list(planted)
    rng.shuffle(venues)
    out: list[int] = []
    for k, venue in enumerate(venues):
        take = n // len(venues) + (1 if k < n % len(venues) else 0)
        out += rng.sample(planted[venue], take)
    return out


def ranked_first(answer: dict[str, Any], planted: dict[int, list[int]], cases: list[int]) -> bool:
    """The planted venues (those where at least two of the drawn cases were) lead the common venues,
    and the index person leads the possible sources."""
    chosen = set(cases)
    lead = [v for v, met in planted.items() if len(chosen.intersection(met)) >= 2]
    top = [v["venue_id"] for v in answer["common_venues"][: len(lead)]]
    sources = answer["possible_sources"]
    return sorted(top) == sorted(lead) and bool(sources) and sources[0]["person_id"] == PLANTED_FROM


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--scans-per-day", type=int, default=1_700_000)
    parser.add_argument("--venues", type=int, default=239_000)
    parser.add_argument("--persons", type=int, default=3_850_000)
    parser.add_argument("--data-dir", default=str(ROOT / "var" / "bench-trace"))
    parser.add_argument("--generator", choices=("sql", "backfill"), default=default_generator())
    parser.add_argument("--queries", type=int, default=50, help="questions of --cases outbreak cases timed")
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--many", type=int, default=500, help="cases in all of the few larger questions")
    parser.add_argument("--name", default="sources", help="result file docs/bench/<name>.json")
    parser.add_argument("--seed", type=int, default=27)
    args = parser.parse_args(argv)
    if args.queries < 2 or not PLANTED_VENUES * 2 <= args.cases <= PLANTED_VENUES * CONTACTS_PER_VENUE:
        print(
            f"error: --queries must be >= 2 and --cases 6..{PLANTED_VENUES * CONTACTS_PER_VENUE}",
            file=sys.stderr,
        )
        return 2

    import logging

    from tracing.storage.store import Store

    logging.getLogger("httpx").setLevel(logging.WARNING)
    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(f"chdb://{data_dir / 'clickhouse'}", DATABASE)
    store.apply_schema(args.days + 7)
    remove_planted(store)  # a run cut short left its outbreak behind
    today = dt.datetime.now(dt.UTC).date()
    expected = args.days * args.scans_per_day
    have = int(store.scalar(f"SELECT count() FROM {DATABASE}.scans FINAL") or 0)
    marker = data_dir / "generator.txt"
    wanted = f"{args.generator}, {HISTORY_FORMAT}"
    if have != expected or (marker.read_text().strip() if marker.exists() else "") != wanted:
        print(f"building the history of bench_trace.py in {data_dir} ({wanted})", file=sys.stderr)
        if have:
            store.command(f"DROP DATABASE IF EXISTS {DATABASE}")
            store.apply_schema(args.days + 7)
        if args.generator == "backfill":
            store.close()
            backfill_with_command(data_dir, args.days, args.scans_per_day, args.venues, args.persons)
            store = Store(f"chdb://{data_dir / 'clickhouse'}", DATABASE)
        else:
            generate(store, args.days, args.scans_per_day, args.venues, args.persons, today)
        marker.write_text(wanted + "\n")
        settle(store)

    end = dt.datetime.combine(today, dt.time(0), dt.UTC)
    rng = random.Random(args.seed)
    planted = plant(store, end, args.scans_per_day / args.persons, rng)
    window = {"since": iso(end - dt.timedelta(days=WINDOW_DAYS)), "until": iso(end)}
    api = Api(store, data_dir, args.days)
    times: list[float] = []
    first: list[bool] = []
    found: list[int] = []
    many: list[float] = []
    try:
        for _ in range(3):  # warm the caches and the code paths
            api.post(
                "/v1/trace/sources",
                {"person_ids": draw_cases(planted, args.cases, rng), **window, "reason": "b"},
            )
        for _ in range(args.queries):
            cases = draw_cases(planted, args.cases, rng)
            took, answer = api.post("/v1/trace/sources", {"person_ids": cases, **window, "reason": "bench"})
            times.append(took)
            first.append(ranked_first(answer, planted, cases))
            found.append(len(answer["possible_sources"]))
        for _ in range(5):
            cases = draw_cases(planted, args.cases, rng)
            cases += [rng.randrange(1, args.persons + 1) for _ in range(args.many - len(cases))]
            took, answer = api.post("/v1/trace/sources", {"person_ids": cases, **window, "reason": "bench"})
            many.append(took)
    finally:
        api.close()
        remove_planted(store)
        left = int(store.scalar(f"SELECT count() FROM {DATABASE}.scans FINAL") or 0)
        store.close()
    if left != expected:
        print(f"warning: the history holds {left:,} stays after the outbreak was removed", file=sys.stderr)

    scale = (
        f"{expected / 1e6:.1f} M stays ({args.generator} history), 14-day window, embedded engine, API in "
        f"process; outbreak planted at {PLANTED_VENUES} venues x {CONTACTS_PER_VENUE} contacts "
        f"(in a part of its own each day, not merged), seed {args.seed}"
    )
    figures = [
        Figure(
            f"source tracing, {args.cases} cases of one outbreak, p95",
            p95(times) * 1000,
            "ms",
            "< 1000 ms",
            p95(times) < 1.0,
            note=f"{scale}; median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms, "
            f"mean {statistics.mean(found):.0f} possible sources",
        ),
        Figure(
            "source tracing: planted venues and index person ranked first",
            sum(first),
            "answers",
            f"{len(first)} of {len(first)}",
            all(first),
            note=scale,
        ),
        Figure(
            f"source tracing, {args.many} cases (the outbreak's among random residents), max",
            max(many) * 1000,
            "ms",
            note=f"{scale}; median {statistics.median(many) * 1000:.0f} ms over {len(many)} questions",
        ),
    ]
    command = "python loadtest/bench_sources.py " + " ".join(argv if argv is not None else sys.argv[1:])
    record(args.name, command.strip(), figures)
    return 0 if all(first) else 1


if __name__ == "__main__":
    raise SystemExit(main())
