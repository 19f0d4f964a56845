"""Redis Cluster failover under check-in load: how long a shard is down, what a killed master loses.

A local Redis Cluster (3 masters + 3 replicas) backs the ingest app (in process). Writers
check in continuously at venues of one stream shard; after ``--before`` seconds the master
owning that shard's slot is killed with SIGKILL. Writers retry on 503 (as phones do, with
the same ``client_id``) until the replica has taken over, then go on for ``--after`` seconds.
Finally every check-in answered 201 is looked up in the shard's stream on the promoted
master: Redis replicates asynchronously, so the last writes a master acknowledged before it
died may never have reached its replica. Those are counted, not hidden.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from checkin.platform.keyring import Keyring
from checkin.platform.redis_conn import sync_client
from checkin.platform.redis_keys import RedisKeys
from checkin.platform.scan_stream import decode_scan
from checkin.platform.settings import Settings, load_settings
from loadtest.redis_cluster import LocalCluster
from loadtest.results import Figure, record

ADMIN = "adm_bench_failover_admin_key_000"
VICTIM_SHARD = 2
COMMUNITY = {"district": "110105", "street": "110105001", "community": "110105001001"}


def _id_number(seq: int) -> str:
    body = f"110105{19700101 + seq % 28:08d}{seq % 1000:03d}"
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(c) * w for c, w in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


class Load:
    def __init__(self, client: AsyncTestClient[Any], codes: list[str], tokens: list[str]) -> None:
        self.client = client
        self.codes = codes
        self.tokens = tokens
        self.next = 0
        self.acked: list[tuple[float, str]] = []
        self.unavailable = 0
        self.killed_at = 0.0
        self.first_after_kill = 0.0
        self.stop = False

    async def writer(self) -> None:
        while not self.stop:
            n = self.next
            self.next += 1
            token = self.tokens[n % len(self.tokens)]
            code = self.codes[(n // len(self.tokens)) % len(self.codes)]
            while not self.stop:
                sent = time.monotonic()
                r = await self.client.post(
                    "/v1/checkins",
                    json={"code": code, "client_id": f"w{n}"},
                    headers={"Authorization": f"Bearer {token}"},
                )
                await asyncio.sleep(0)  # the in-process test client answers without yielding
                if r.status_code in (200, 201):  # 200: a retry of a check-in that did land
                    now = time.monotonic()
                    self.acked.append((now, str(r.json()["checkin_id"])))
                    if self.killed_at and sent > self.killed_at and not self.first_after_kill:
                        self.first_after_kill = now
                    break
                if r.status_code != 503:
                    raise RuntimeError(f"check-in answered {r.status_code}: {r.text}")
                self.unavailable += 1
                await asyncio.sleep(0.05)


async def _run(settings: Settings, cluster: LocalCluster, before: float, after: float, writers: int) -> Any:
    from checkin.app import create_app

    keys = RedisKeys(settings.key_prefix, settings.stream_shards, True)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    async with AsyncTestClient(app=create_app(settings)) as client:
        codes = []
        for i in range(40):
            venue_id = 1000 + i * settings.stream_shards + VICTIM_SHARD
            r = await client.post(
                "/v1/venues",
                json={"venue_id": venue_id, "name": f"V{venue_id}", "lat": 39.9, "lon": 116.4, **COMMUNITY},
                headers=admin,
            )
            r.raise_for_status()
            codes.append((await client.get(f"/v1/venues/{venue_id}/code", headers=admin)).json()["token"])
        lines = b"".join(
            json.dumps({"name": "张三", "phone": f"139{i:08d}", "id_number": _id_number(i)}).encode() + b"\n"
            for i in range(200)
        )
        r = await client.post("/v1/residents/import", content=lines, headers=admin)
        r.raise_for_status()
        tokens = [json.loads(line)["token"] for line in r.text.splitlines() if line.strip()]
        victim = cluster.master_of(keys.stream(VICTIM_SHARD))
        load = Load(client, codes, tokens)
        tasks = [asyncio.create_task(load.writer()) for _ in range(writers)]
        started = time.monotonic()
        await asyncio.sleep(before)
        acked_before = len(load.acked)
        print(f"killing {victim} after {acked_before} check-ins", flush=True)
        cluster.kill(victim)  # blocks the loop: no check-in runs while the master dies
        load.killed_at = time.monotonic()
        while not load.first_after_kill and time.monotonic() - load.killed_at < 60:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        print(f"shard back after {load.first_after_kill - load.killed_at:.1f} s", flush=True)
        await asyncio.sleep(after)
        load.stop = True
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - started
        promoted = cluster.master_of(keys.stream(VICTIM_SHARD))
    check = sync_client(settings)
    try:
        stored = {decode_scan(eid, f).checkin_id for eid, f in check.xrange(keys.stream(VICTIM_SHARD))}
    finally:
        check.close()
    acked_ids = {cid for _, cid in load.acked}
    lost = acked_ids - stored
    in_flight = [t for t, cid in load.acked if t <= load.killed_at]
    last_before = max(in_flight) if in_flight else load.killed_at
    return {
        "victim": victim,
        "promoted": promoted,
        "acked": len(acked_ids),
        "acked_before": acked_before,
        "lost": len(lost),
        "outage_s": load.first_after_kill - load.killed_at,
        "gap_s": load.killed_at - last_before,
        "rate": len(load.acked) / elapsed,
        "unavailable": load.unavailable,
    }


def run(before: float, after: float, writers: int) -> list[Figure]:
    root = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    cluster = LocalCluster(root / "cluster").start()
    try:
        settings = load_settings(
            {
                "CHECKIN_DATA_DIR": str(root / "var"),
                "CHECKIN_REDIS_URL": cluster.url,
                "CHECKIN_REDIS_CLUSTER": "1",
                "CHECKIN_KEY_PREFIX": "bench:failover:",
                "CHECKIN_ADMIN_KEY": ADMIN,
                "CHECKIN_KEYRING": Keyring.generate(1),
                "CHECKIN_CLICKHOUSE_DSN": f"chdb://{root / 'clickhouse'}",
                # one test client stands for a city of phones: no per-address limits
                "CHECKIN_RATE_REGISTER_PER_MIN": "1000000",
                "CHECKIN_RATE_IP_PER_MIN": "1000000",
                "CHECKIN_RATE_RESIDENT_PER_MIN": "1000000",
            }
        )
        out = asyncio.run(_run(settings, cluster, before, after, writers))
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(out)
    note = (
        f"{writers} writers at one shard's venues, master killed after {before:g} s "
        "(cluster-node-timeout 2 s)"
    )
    return [
        Figure(
            "check-ins to the shard unavailable after SIGKILL of its master", out["outage_s"], "s", note=note
        ),
        Figure("check-ins acknowledged (201) during the run", out["acked"], "check-ins", note=note),
        Figure(
            "acknowledged check-ins missing on the promoted replica",
            out["lost"],
            "check-ins",
            note="async replication; the last 201 came "
            f"{out['gap_s'] * 1000:.1f} ms before the kill; WAIT 1 after XADD would close this window",
        ),
        Figure(
            "check-in rate through one in-process ingest app on the cluster",
            out["rate"],
            "check-ins/s",
            note="the in-process test client serves one request at a time: not a throughput figure",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", type=float, default=2.0, help="seconds of load before the kill")
    parser.add_argument("--after", type=float, default=2.0, help="seconds of load after the shard is back")
    parser.add_argument("--writers", type=int, default=32)
    args = parser.parse_args()
    record(
        "redis_failover",
        f"python -m loadtest.bench_failover --before {args.before:g} --after {args.after:g} "
        f"--writers {args.writers}",
        run(args.before, args.after, args.writers),
    )


if __name__ == "__main__":
    main()
