"""The phone's home, ``GET /v1/residents/me``, at a steady 1,000 requests a second on one ingest process.

Seeds a private ``redis-server`` (AOF everysec, as ``checkin up`` runs it) with ``--residents``
residents as the check-in path and the health feed leave them: a colour with its reason and time, a
negative test, a masked name, an open stay in ``person-stays`` (the string layout of
checkin/checkins/stays.lua) at one of ``--venues`` venues, a few notices, half of them read; every
``--family``-th resident checks in ``--dependants`` dependants, who have their own state and stays.
Then serves the ingest app with granian (one worker: one process) and drives the route with ``wrk``
at a fixed rate: each of ``--connections`` connections waits before every request
(wrk's ``delay()``), the wait calibrated in a short run so the whole reaches ``--rate``. Prints the
achieved rate, p50 and p99 (target p99 < 20 ms) and the server's CPU per request.

    .venv/bin/python -m loadtest.bench_home          # 30 s at 1,000 req/s, records docs/bench/home.json
    .venv/bin/python -m loadtest.bench_home --quick  # a short look, nothing recorded
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from loadtest.bench_ingest import (
    WrkResult,
    _cpu_s,
    bench_identities,
    free_port,
    granian,
    lua_list,
    run_wrk,
    stop,
    wait_http,
    wrk_threads_lua,
)
from loadtest.redis_proc import RedisProcess
from loadtest.results import Figure, record

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "bench:home:"
TARGET_P99_MS = 20.0

HOME_LUA = (
    wrk_threads_lua(6151)
    + """
request = function()
  local t = tokens[math.random(#tokens)]
  return wrk.format("GET", "/v1/residents/me", {["Authorization"] = "Bearer " .. t})
end
delay = function()
  return DELAY_MS
end
"""
)


async def seed(env: dict[str, str], residents: int, venues: int, family: int, dependants: int) -> list[str]:
    """Residents, dependants and venues straight into Redis, in the layouts the product writes."""
    from checkin.platform import notices, resident_tokens
    from checkin.platform.context import Context
    from checkin.platform.instants import format_ms, now_ms
    from checkin.platform.redis_conn import connect
    from checkin.platform.settings import load_settings
    from checkin.residents.service import claim_persons
    from venues.model import Venue

    settings = load_settings(env)
    client = await connect(settings)
    ctx = Context.build(settings, client, "bench")
    rng = random.Random(7)
    pipe = client.pipeline(transaction=False)
    for vid in range(1, venues + 1):
        venue = Venue(
            venue_id=vid,
            name=f"幸福路{vid}号店",
            district="110105",
            street="110105001",
            community="110105001001",
            lat=39.9,
            lon=116.4,
        )
        pipe.hset(ctx.keys.venue(vid), mapping=venue.to_hash())
    await pipe.execute()
    owners_n = residents
    deps_n = -(-residents // family) * dependants
    idents = bench_identities(ctx, owners_n + deps_n, serial_digits=5)
    pids: list[int] = []
    for start in range(0, len(idents), 5000):
        pids += [
            pid for pid, _ in await claim_persons(ctx, idents[start : start + 5000], update_existing=True)
        ]
    owners, deps = pids[:owners_n], iter(pids[owners_n:])
    now = now_ms()
    tokens: list[str] = []
    pipe = client.pipeline(transaction=False)

    def person_state(pid: int, companions: list[int]) -> None:
        status = rng.choices(["green", "yellow", "red"], [90, 7, 3])[0]
        state = {
            "st": status,
            "sr": "" if status == "green" else "密接",
            "su": str(now - rng.randrange(86_400_000)),
        }
        state["nt"] = str(now - rng.randrange(72 * 3_600_000))
        if companions:
            state["cmp"] = "," + ",".join(str(c) for c in companions) + ","
        pipe.hset(ctx.keys.pstate(pid), mapping=state)
        # the kept stays (the layout of checkin/checkins/stays.lua): one ended yesterday, one open now
        entries = []
        for ago in (86_400_000, rng.randrange(1, 1_800_000)):
            at, end = now - ago, now - ago + 3_600_000
            vid = rng.randrange(1, venues + 1)
            tail = "3600\t110105\t110105001\t110105001001\tgreen\tpass"
            entries.append(f"{at}|{end}||0|{end}|{rng.getrandbits(64):016x}|{vid}|{tail}")
        pipe.set(ctx.keys.stays(pid), ";".join(entries))
        for k in range(rng.randrange(0, 4)):
            notice = notices.Notice(
                notice_id=f"{rng.getrandbits(72):018x}",
                venue_id=1,
                venue_name="幸福路1号店",
                since=format_ms(now - 7_200_000),
                until=format_ms(now - 3_600_000),
                level="inform",
                visited_at=format_ms(now - 5_000_000),
                at=format_ms(now - 3_000_000),
                acked_at=format_ms(now) if k % 2 else None,
            )
            pipe.hset(ctx.keys.notices(pid), notice.notice_id, msgspec.json.encode(notice))

    for n, pid in enumerate(owners):
        family_of = [next(deps) for _ in range(dependants)] if n % family == 0 else []
        person_state(pid, family_of)
        for dep in family_of:
            person_state(dep, [])
        tokens.append(resident_tokens.issue(ctx.keyring, pid, 86_400)[0])
        if len(pipe) > 5000:
            await pipe.execute()
    await pipe.execute()
    await client.aclose()
    return tokens


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000, help="requests a second to drive")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--residents", type=int, default=20_000)
    parser.add_argument("--venues", type=int, default=2_000)
    parser.add_argument("--family", type=int, default=3, help="every n-th resident has dependants")
    parser.add_argument("--dependants", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="a short look; nothing recorded")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("error: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    if args.quick:
        args.seconds, args.residents = 5, 2000
    work = Path(tempfile.mkdtemp(prefix="bench-home-"))
    rproc = RedisProcess(free_port(), work / "redis").start()
    from checkin.platform.keyring import Keyring

    env = {
        **os.environ,
        "CHECKIN_REDIS_URL": rproc.url,
        "CHECKIN_KEY_PREFIX": PREFIX,
        "CHECKIN_DATA_DIR": str(work / "var"),
        "CHECKIN_KEYRING": Keyring.generate(1),
        "CHECKIN_ADMIN_KEY": "bench-admin-key",
        "PYTHONPATH": str(ROOT),
    }
    proc = None
    try:
        tokens = asyncio.run(seed(env, args.residents, args.venues, args.family, args.dependants))
        port = free_port()
        proc = granian("checkin.app:create_app", port, 1, env, factory=True)
        wait_http(port)
        time.sleep(1.0)
        url = f"http://127.0.0.1:{port}"
        header = lua_list("tokens", tokens)

        def script(delay_ms: float) -> Path:
            # wrk takes whole milliseconds
            path = work / f"home-{round(delay_ms)}.lua"
            path.write_text(header + HOME_LUA.replace("DELAY_MS", str(max(0, round(delay_ms)))))
            return path

        # calibrate the wait per request so the connections together reach the rate: a connection's
        # loop is its answer time plus the wait, and the connections' loops add up to the rate
        target_ms: float = args.connections * 1000 / args.rate
        delay = target_ms

        def calibrate(seconds: int, result: WrkResult | None = None) -> float:
            probe = result or run_wrk(url, script(delay), seconds, args.connections)
            loop_ms: float = args.connections * 1000 / max(probe.rps, 1.0)
            return max(0.0, delay + 0.8 * (target_ms - loop_ms))

        for _ in range(4):
            delay = calibrate(3)
        # the measured run; run again (at most twice) when the rate it reached is off by more than 5 %
        for _ in range(3):
            cpu0, load0 = _cpu_s(proc.pid), os.getloadavg()[0]
            result: WrkResult = run_wrk(url, script(delay), args.seconds, args.connections)
            server_us = (_cpu_s(proc.pid) - cpu0) / max(1.0, result.rps * result.seconds) * 1e6
            load = max(load0, os.getloadavg()[0])
            if abs(result.rps - args.rate) <= 0.05 * args.rate:
                break
            delay = calibrate(0, result)
    finally:
        if proc is not None:
            stop(proc)
        rproc.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"GET /v1/residents/me: {result.rps:,.0f} req/s for {result.seconds:.0f} s, {result.non2xx} non-2xx, "
        f"{result.errors} socket errors; p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms "
        f"(target < {TARGET_P99_MS:.0f} ms); server CPU {server_us:.0f} us a request; "
        f"load average {load:.1f} on {os.cpu_count()} cores",
        flush=True,
    )
    if args.quick:
        return 0
    note = (
        f"one granian process, wrk -c{args.connections} paced to {result.rps:,.0f} req/s "
        f"for {args.seconds} s, "
        f"{result.non2xx} non-2xx; {args.residents:,} residents, every {args.family}rd with "
        f"{args.dependants} dependants; p50 {result.p50_ms:.2f} ms; server CPU {server_us:.0f} us a request; "
        f"machine load average {load:.1f} on {os.cpu_count()} cores during the run"
    )
    record(
        "home",
        "python -m loadtest.bench_home",
        [
            Figure(
                "GET /v1/residents/me p99 latency at 1,000 req/s",
                result.p99_ms,
                "ms",
                target=f"< {TARGET_P99_MS:.0f} ms",
                met=result.p99_ms < TARGET_P99_MS and result.non2xx == 0 and result.rps >= 0.95 * args.rate,
                note=note,
            )
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
