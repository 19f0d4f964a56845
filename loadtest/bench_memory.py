"""Redis memory per resident, per venue and per check-in, from ``MEMORY USAGE`` samples.

The ingest app (in process, single-node Redis, own key prefix) registers residents, creates
venues and takes check-ins (with ``client_id``, as the phone page sends them); then every key
under the prefix is measured with ``MEMORY USAGE ... SAMPLES 0`` and summed by kind. The
figures size a Redis Cluster (docs/DEPLOY.md). The prefix is deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import redis
from litestar.testing import AsyncTestClient

from checkin.platform.keyring import Keyring
from checkin.platform.settings import load_settings
from loadtest.results import Figure, record

ADMIN = "adm_bench_memory_admin_key_0000"
COMMUNITY = {"district": "110105", "street": "110105001", "community": "110105001001"}


def _id_number(seq: int) -> str:
    body = f"110105{19700101 + seq % 28:08d}{seq % 1000:03d}"
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(c) * w for c, w in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


def _kind(key: str, prefix: str) -> str:
    """Key family: the prefix-less name up to the first id or hash tag."""
    rest = key[len(prefix) :]
    parts = []
    for part in rest.split(":"):
        if part.isdigit() or part.startswith("{") or len(part) > 20:
            break
        parts.append(part)
    return ":".join(parts) or rest


async def _load(settings: Any, residents: int, venues: int, checkins: int) -> None:
    from checkin.app import create_app

    admin = {"Authorization": f"Bearer {ADMIN}"}
    async with AsyncTestClient(app=create_app(settings)) as client:
        codes = []
        for i in range(venues):
            r = await client.post(
                "/v1/venues",
                json={"name": f"餐厅 {i}", "address": "某区某街 12 号", "lat": 39.9, "lon": 116.4}
                | COMMUNITY,
                headers=admin,
            )
            r.raise_for_status()
            vid = r.json()["venue_id"]
            codes.append((await client.get(f"/v1/venues/{vid}/code", headers=admin)).json()["token"])
        lines = b"".join(
            json.dumps({"name": "张三丰", "phone": f"139{i:08d}", "id_number": _id_number(i)}).encode()
            + b"\n"
            for i in range(residents)
        )
        r = await client.post("/v1/residents/import", content=lines, headers=admin)
        r.raise_for_status()
        tokens = [json.loads(line)["token"] for line in r.text.splitlines() if line.strip()]
        for n in range(checkins):
            r = await client.post(
                "/v1/checkins",
                json={"code": codes[n % len(codes)], "client_id": secrets.token_hex(8)},
                headers={"Authorization": f"Bearer {tokens[n % len(tokens)]}"},
            )
            r.raise_for_status()


def run(residents: int, venues: int, checkins: int, redis_url: str) -> list[Figure]:
    root = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    prefix = f"bench:mem:{secrets.token_hex(4)}:"
    client = redis.Redis.from_url(redis_url)
    try:
        settings = load_settings(
            {
                "CHECKIN_DATA_DIR": str(root / "var"),
                "CHECKIN_REDIS_URL": redis_url,
                "CHECKIN_KEY_PREFIX": prefix,
                "CHECKIN_ADMIN_KEY": ADMIN,
                "CHECKIN_KEYRING": Keyring.generate(1),
                "CHECKIN_CLICKHOUSE_DSN": f"chdb://{root / 'clickhouse'}",
                "CHECKIN_RATE_REGISTER_PER_MIN": "1000000",
                "CHECKIN_RATE_IP_PER_MIN": "1000000",
                "CHECKIN_RATE_RESIDENT_PER_MIN": "1000000",
            }
        )
        asyncio.run(_load(settings, residents, venues, checkins))
        by_kind: dict[str, int] = defaultdict(int)
        for key in client.scan_iter(match=prefix + "*", count=1000):
            name = key.decode()
            by_kind[_kind(name, prefix)] += int(client.memory_usage(name, samples=0) or 0)
    finally:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
        client.close()
        shutil.rmtree(root, ignore_errors=True)
    print(dict(sorted(by_kind.items())))
    resident = sum(v for k, v in by_kind.items() if k.startswith(("person", "person-state")))
    venue = sum(v for k, v in by_kind.items() if k.startswith(("venue", "venues")))
    stream = by_kind.get("scans", 0)
    per_checkin = sum(v for k, v in by_kind.items() if k in ("checkin-record", "dedupe", "venue-entries"))
    pstate = by_kind.get("person-state", 0)
    kinds = ", ".join(f"{k} {v / 1024:.0f} KiB" for k, v in sorted(by_kind.items()))
    return [
        Figure(
            "Redis memory per resident (profile, id index, one person-state copy)",
            resident / residents,
            "bytes",
            note=f"{residents} residents; person-state alone {pstate / residents:.0f} B: "
            "a cluster keeps one per shard",
        ),
        Figure("Redis memory per venue (hash and indexes)", venue / venues, "bytes", note=f"{venues} venues"),
        Figure(
            "Redis memory per scan stream entry (not yet trimmed)",
            stream / checkins,
            "bytes",
            note="all four shard streams; the sink trims what every group acked",
        ),
        Figure(
            "Redis memory per check-in of keys kept for the check-out window (record, dedupe)",
            per_checkin / checkins,
            "bytes",
            note=f"expire with their TTL; {checkins} check-ins; by kind: {kinds}",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--residents", type=int, default=2000)
    parser.add_argument("--venues", type=int, default=500)
    parser.add_argument("--checkins", type=int, default=4000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    record(
        "redis_memory",
        f"python -m loadtest.bench_memory --residents {args.residents} --venues {args.venues} "
        f"--checkins {args.checkins}",
        run(args.residents, args.venues, args.checkins, args.redis_url),
    )


if __name__ == "__main__":
    main()
