"""Chaos run: processes keep dying under load, and nothing accepted is lost or counted twice.

    python -m loadtest.chaos --minutes 20 --rate 1000

``checkin up`` runs on its own data dir, ports and private redis-server (both services, all tracing
workers). A small city is seeded through the API and a few of its residents get a red code (their
check-ins raise alerts). Phones check in at ``--rate`` from ``--clients`` clients, each check-in
retried with its ``client_id`` until accepted, as the phone page does. Every ``--kill-every``
seconds one process gets kill -9: an ingest worker, the tracing service, the private redis-server,
in turn (which worker at random); the launcher (or granian, for a worker) starts it again. Two
venues are flagged as exposure sites during the run, one early and one half-way.

At the end, once the sink and the notices worker have caught up (within 5 minutes, or the run
fails: a scan unwritten, a site unscreened or a text unsent), the run prints what it finds: the
check-ins answered, stored, missing and duplicated, check-ins stored that no phone was told about,
stays of one person overlapping, alerts and alerts raised twice, notices expected and readable,
texts sent and sent twice, and the longest time no check-in was accepted. Exit status 0 only when
every promise held.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import json
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

from checkin.platform.settings import Settings
from loadtest.chaos_audit import (
    Reckoning,
    Site,
    backlog,
    check_notices,
    check_store,
    exposed,
    readable_notices,
    texts_by_key,
    wait_for,
)
from loadtest.chaos_kills import KINDS, Kill, kill_one, wait_until_back
from loadtest.chaos_phones import Tally, run_phones
from loadtest.results import Figure, record
from loadtest.seed import SeedFile
from loadtest.system import System, seed_city, start_system, stop_system, system_env
from tracing.storage.store import Store

RED_SHARE = 0.02  # of the sampled residents, given a red code: their check-ins raise alerts
SETTLE_S = 300.0  # after the load: for the sink and the notices worker to catch up
NOTICES_S = 180.0  # then: for every visitor of a flagged site to hold its notice and its text


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def call_until_answered(
    send: Callable[[], httpx.Response], what: str, timeout_s: float = 90.0
) -> httpx.Response:
    """An operator's call made while processes die: retried until the service answers it."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            resp = send()
            if resp.status_code < 500 and resp.status_code != 429:
                resp.raise_for_status()
                return resp
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: no answer within {timeout_s:g} s")
        time.sleep(1.0)


def give_red_codes(system: System, seed: SeedFile, share: float) -> list[int]:
    admin = {"Authorization": f"Bearer {system.admin_key}"}
    key = httpx.post(
        f"{system.ingest}/v1/keys", json={"role": "health", "name": "chaos run"}, headers=admin, timeout=30
    )
    key.raise_for_status()
    health = {"Authorization": f"Bearer {key.json()['key']}"}
    red = [r.person_id for r in seed.residents[: max(1, int(len(seed.residents) * share))]]
    with httpx.Client(timeout=30, headers=health) as http:
        for person in red:
            http.put(
                f"{system.ingest}/v1/health/{person}", json={"status": "red", "reason": "chaos run"}
            ).raise_for_status()
    return red


def flag_site(system: System, tracer_key: str, venue_id: int, since: float, until: float) -> Site:
    body = {
        "venue_id": venue_id,
        "since": iso(since),
        "until": iso(until),
        "reason": "chaos run",
        "level": "inform",
    }
    resp = call_until_answered(
        lambda: httpx.post(
            f"{system.tracing}/v1/exposure-sites",
            json=body,
            headers={"Authorization": f"Bearer {tracer_key}"},
            timeout=10,
        ),
        "flag an exposure site",
    )
    return Site(str(resp.json()["site_id"]), venue_id, iso(since), iso(until))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=20.0, help="length of the load (default 20)")
    ap.add_argument("--rate", type=float, default=1000.0, help="check-ins a second (default 1000)")
    ap.add_argument("--kill-every", type=float, default=60.0, help="seconds between kills (default 60)")
    ap.add_argument("--clients", type=int, default=64, help="phones sending at once (default 64)")
    ap.add_argument("--workers", type=int, default=2, help="ingest workers (default 2)")
    ap.add_argument("--venues", type=int, default=2000, help="venues of the city (default 2000)")
    ap.add_argument("--residents", type=int, default=4000, help="residents of the city (default 4000)")
    ap.add_argument("--sample", type=int, default=2000, help="residents and venues that check in (2000)")
    ap.add_argument("--seed", type=int, default=1, help="random seed of the phones and the kills (1)")
    ap.add_argument("--data-dir", help="working dir (default: a fresh temporary directory)")
    ap.add_argument("--summary", help="also write the counts to this JSON file")
    ap.add_argument("--no-record", action="store_true", help="do not write docs/bench/chaos.json")
    args = ap.parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # a line per event as it happens, even into a file
    if min(args.minutes, args.rate, args.kill_every) <= 0 or min(args.clients, args.sample) <= 0:
        print(
            "error: --minutes, --rate, --kill-every, --clients and --sample must be positive", file=sys.stderr
        )
        return 2
    if args.sample > args.residents or args.sample > args.venues:
        print("error: --sample cannot exceed --residents or --venues", file=sys.stderr)
        return 2
    seconds = args.minutes * 60
    work = Path(args.data_dir or tempfile.mkdtemp(prefix="checkin-chaos-"))
    env = system_env(work, args.workers)
    print(
        f"chaos: data in {work}; {args.minutes:g} min at {args.rate:g}/s, kill -9 every {args.kill_every:g} s"
    )
    system = start_system(work, env)
    tally = Tally()
    kills: list[Kill] = []
    sites: list[Site] = []
    result = Reckoning()
    caught_up = False
    try:
        seed = seed_city(system, args.venues, args.residents, args.sample, companions=0, devices=0)
        red = give_red_codes(system, seed, RED_SHARE)
        print(f"seeded: {len(seed.venues):,} venue codes, {len(seed.residents):,} residents ({len(red)} red)")
        rng = random.Random(args.seed)
        flagged = rng.sample([v.venue_id for v in seed.venues], 2)
        window = (time.time() - 600, time.time() + seconds + 600)
        load = threading.Thread(
            target=lambda: asyncio.run(
                run_phones(
                    system.ingest,
                    seed.residents,
                    [v.token for v in seed.venues],
                    args.rate,
                    seconds,
                    args.clients,
                    tally,
                    seed=args.seed,
                )
            ),
            daemon=True,
        )
        start = time.monotonic()
        load.start()
        launcher = psutil.Process(system.proc.pid)
        events: list[tuple[float, str]] = [(min(10.0, seconds / 6), "flag"), (seconds / 2, "flag")]
        events += [(k * args.kill_every, "kill") for k in range(1, int(seconds // args.kill_every) + 1)]
        for offset, what in sorted(events):
            if offset >= seconds:
                break
            time.sleep(max(0.0, start + offset - time.monotonic()))
            if what == "flag":
                site = flag_site(system, seed.tracer_key, flagged[len(sites)], *window)
                sites.append(site)
                print(f"  t={time.monotonic() - start:5.0f}s  venue {site.venue_id} flagged ({site.site_id})")
                continue
            kind = KINDS[len(kills) % len(KINDS)]
            kill = kill_one(launcher, kind, rng, time.monotonic() - start)
            if kill is None:
                print(f"  t={time.monotonic() - start:5.0f}s  no {kind} running to kill; skipped")
                continue
            kills.append(kill)
            kill.back_after_s = wait_until_back(
                launcher, kill, args.workers, system.healthy, max(5.0, args.kill_every - 5)
            )
            back = f"back after {kill.back_after_s:.1f} s" if kill.back_after_s else "NOT back"
            so_far = f"{len(tally.accepted):,} accepted so far"
            print(f"  t={kill.at:5.0f}s  kill -9 {kind} (pid {kill.pid}); {back}; {so_far}")
        load.join()
        silence, silence_at = tally.longest_silence(start, start + seconds)
        print(
            f"load done: {tally.created:,} created, {tally.retries:,} retries; waiting for sink and notices"
        )
        caught_up = wait_for(lambda: not any(backlog(system.redis_url).values()), SETTLE_S)
        if not caught_up:
            print(f"not caught up after {SETTLE_S:g} s: {backlog(system.redis_url)}")
        tokens = {r.person_id: r.token for r in seed.residents}
        outbox = Path(env["CHECKIN_DATA_DIR"]) / "sms-outbox.ndjson"

        def notices_done() -> bool:
            expected = exposed(system.tracing, seed.tracer_key, sites)
            check_notices(
                result, expected, readable_notices(system.ingest, tokens, expected), texts_by_key(outbox)
            )
            return result.notices_readable == result.notices_expected and not result.texts_missing

        wait_for(notices_done, NOTICES_S, every_s=5.0)
    finally:
        stop_system(system.proc)
    settings = Settings()
    store = Store(
        f"chdb://{Path(env['CHECKIN_DATA_DIR']).resolve() / 'clickhouse'}", settings.clickhouse_database
    )
    try:
        check_store(result, store, tally.owners, settings.tz)
    finally:
        store.close()
    restarts = sum(1 for line in system.lines if "exited with code" in line)
    report = {
        "minutes": args.minutes,
        "rate_target": args.rate,
        "kills": [{"at_s": round(k.at, 1), "kind": k.kind, "back_after_s": k.back_after_s} for k in kills],
        "restarts_by_launcher": restarts,
        "answered": result.answered,
        "created_201": tally.created,
        "stored": result.stored,
        "missing": len(result.missing),
        "duplicated": result.duplicated,
        "stored_unanswered": result.unanswered_stored,
        "stays_overlapping": result.overlapping,
        "refused": dict(tally.refused),
        "gave_up": tally.gave_up,
        "retries": tally.retries,
        "alerts": result.alerts,
        "alerts_twice": result.alerts_twice,
        "notices_expected": result.notices_expected,
        "notices_readable": result.notices_readable,
        "texts_sent": result.texts_sent,
        "texts_twice": result.texts_twice,
        "texts_missing": result.texts_missing,
        "longest_silence_s": round(silence, 2),
        "longest_silence_at_s": round(silence_at, 1),
        "caught_up": caught_up,
        "kept": result.kept and caught_up and not tally.refused and not tally.gave_up,
    }
    print_report(report, result.missing)
    if args.summary:
        Path(args.summary).write_text(json.dumps(report, indent=1))
    if not args.no_record:
        record_run(args, report)
    return 0 if report["kept"] and kills else 1


REPORTED = (
    *("answered", "stored", "missing", "duplicated", "stored_unanswered", "stays_overlapping"),
    *("gave_up", "refused"),
    *("alerts", "alerts_twice", "notices_expected", "notices_readable", "texts_sent", "texts_twice"),
    *("texts_missing", "caught_up", "restarts_by_launcher"),
)


def print_report(report: dict[str, object], missing: list[str]) -> None:
    print("\nchaos run:")
    for name in REPORTED:
        print(f"  {name:<20} {report[name]}")
    print(f"  longest time no check-in was accepted: {report['longest_silence_s']} s "
          f"(from t={report['longest_silence_at_s']} s)")  # fmt: skip
    if missing:
        print(f"  missing check-ins (first 10): {', '.join(missing[:10])}")
    print("every promise held" if report["kept"] else "A PROMISE WAS BROKEN")


def record_run(args: argparse.Namespace, report: dict[str, object]) -> None:
    command = f"python -m loadtest.chaos --minutes {args.minutes:g} --rate {args.rate:g}"
    kills = report["kills"]
    assert isinstance(kills, list)
    note = (
        f"{len(kills)} kill -9 ({', '.join(sorted({k['kind'] for k in kills}))}); "
        f"{report['answered']:,} check-ins answered, {report['stored']:,} stored, "
        f"{report['missing']} missing, "
        f"{report['duplicated']} duplicated; {report['alerts']:,} alerts, {report['alerts_twice']} twice; "
        f"{report['notices_readable']}/{report['notices_expected']} notices readable, "
        f"{report['texts_twice']} texts twice"
    )
    record(
        "chaos",
        command,
        [
            Figure(
                figure=f"chaos run, {args.minutes:g} min: promises kept",
                value=1.0 if report["kept"] else 0.0,
                unit="(1 = all)",
                target="1",
                met=bool(report["kept"]),
                note=note,
            ),
            Figure(
                figure="chaos run: longest time no check-in was accepted",
                value=float(str(report["longest_silence_s"])),
                unit="s",
                note="phones retry with backoff (0.25 s doubling to 4 s); includes the redis-server restarts",
            ),
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
