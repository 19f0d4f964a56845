"""The venue mirror: registry changes reach the ClickHouse ``venues`` table (real
Redis, real embedded ClickHouse), including after a failed insert."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest

from checkin.platform.auth import Principal
from checkin.platform.context import Context
from checkin.platform.instants import now_us
from checkin.platform.settings import Settings
from tests.support.failing_store import FailingStore
from tracing.sink import venue_mirror
from tracing.storage.store import Store, StoreError
from tracing.workers import WORKERS
from venues import importer, inputs, registry

ADMIN = Principal(role="admin", key_id="admin")


def new_venue(venue_id: int, **over: Any) -> inputs.VenueIn:
    fields: dict[str, Any] = {
        "venue_id": venue_id,
        "name": f"场所{venue_id}",
        "district": "620102",
        "street": "620102001",
        "community": "620102001001",
        "lat": 36.0,
        "lon": 103.8,
        **over,
    }
    return inputs.VenueIn(**fields)


def mirrored(store: Store) -> dict[int, dict[str, Any]]:
    rows = store.dicts(f"SELECT * FROM {store.table('venues')} FINAL ORDER BY venue_id")
    return {r["venue_id"]: r for r in rows}


async def test_changes_are_mirrored_and_the_queue_drains(
    settings: Settings, store: FailingStore, redis_client: Any
) -> None:
    ctx = Context.build(settings, redis_client, "tracing")
    await registry.create_venue(ctx, ADMIN, new_venue(1, requires_negative_test_hours=24, capacity=80))
    await registry.create_venue(ctx, ADMIN, new_venue(2, type="hospital"))
    assert await venue_mirror.mirror_once(ctx, store) == 2
    rows = mirrored(store)
    assert rows[1]["name"] == "场所1" and rows[1]["requires_negative_test_hours"] == 24
    assert rows[1]["capacity"] == 80 and rows[2]["type"] == "hospital"
    assert rows[2]["requires_negative_test_hours"] is None and rows[2]["active"] == 1
    assert await redis_client.zcard(ctx.keys.venue_mirror_queue()) == 0

    await registry.patch_venue(ctx, ADMIN, 1, inputs.VenuePatch(name="改名", active=False, reason="停业"))
    await registry.rotate_code(ctx, ADMIN, 2)
    store.fail_next(1)
    with pytest.raises(StoreError):
        await venue_mirror.mirror_once(ctx, store)
    assert await redis_client.zcard(ctx.keys.venue_mirror_queue()) == 2  # nothing lost
    assert await venue_mirror.mirror_once(ctx, store) == 2
    rows = mirrored(store)
    assert (rows[1]["name"], rows[1]["active"], rows[2]["code_version"]) == ("改名", 0, 2)


async def test_an_id_changed_during_the_insert_stays_queued(
    settings: Settings, store: Store, redis_client: Any
) -> None:
    ctx = Context.build(settings, redis_client, "tracing")
    await registry.create_venue(ctx, ADMIN, new_venue(5))
    original = store.insert

    def insert_then_change(*args: Any, **kwargs: Any) -> float:
        took = original(*args, **kwargs)
        # Another writer changes the venue while the batch is being inserted.
        asyncio.run_coroutine_threadsafe(
            redis_client.zadd(ctx.keys.venue_mirror_queue(), {"5": now_us() + 1}), loop
        ).result()
        return took

    loop = asyncio.get_running_loop()
    store.insert = insert_then_change  # type: ignore[method-assign]
    try:
        assert await venue_mirror.mirror_once(ctx, store) == 0
    finally:
        store.insert = original  # type: ignore[method-assign]
    assert await redis_client.zcard(ctx.keys.venue_mirror_queue()) == 1
    assert await venue_mirror.mirror_once(ctx, store) == 1


async def test_csv_import_is_mirrored_by_the_background_worker(
    settings: Settings, store: Store, redis_client: Any, sync_redis: Any
) -> None:
    run = WORKERS["mirror"]
    ctx = Context.build(settings, redis_client, "tracing")
    rows = [",".join(importer.COLUMNS)]
    for i in range(1, 1201):
        rows.append(f"{i},店{i},,office,620102,620102001,620102001001,36.0,103.8,10,30,")
    report = await asyncio.to_thread(
        importer.import_stream, sync_redis, ctx.keys, io.BytesIO("\n".join(rows).encode())
    )
    assert report.created == 1200
    stop = asyncio.Event()
    task = asyncio.create_task(run(ctx, store, stop))
    try:
        for _ in range(100):
            if await redis_client.zcard(ctx.keys.venue_mirror_queue()) == 0:
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    count = store.scalar(f"SELECT count() FROM {store.table('venues')} FINAL WHERE dwell_minutes = 30")
    assert count == 1200
