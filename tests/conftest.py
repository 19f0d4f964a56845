"""Shared fixtures: real Redis (own key prefix per test) and the real embedded
ClickHouse engine (one data path per test session, own database per test)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from litestar.testing import AsyncTestClient

from checkin.platform.context import Context
from checkin.platform.keyring import Keyring
from checkin.platform.settings import Settings, load_settings
from tests.support.browser import async_chromium
from tests.support.failing_store import FailingStore
from tests.support.values import ADMIN_KEY, REDIS_URL, own_prefix
from tracing.notices.worker import NoticeWorker
from tracing.storage.store import Store


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clickhouse")


@pytest.fixture
def prefix() -> Iterator[str]:
    with own_prefix() as value:
        yield value


@pytest.fixture
def make_settings(tmp_path: Path, prefix: str, chdb_path: Path) -> Any:
    database = f"t_{uuid.uuid4().hex[:10]}"

    def build(**overrides: Any) -> Settings:
        env = {
            "CHECKIN_DATA_DIR": str(tmp_path / "var"),
            "CHECKIN_REDIS_URL": REDIS_URL,
            "CHECKIN_KEY_PREFIX": prefix,
            "CHECKIN_CLICKHOUSE_DSN": f"chdb://{chdb_path}",
            "CHECKIN_CLICKHOUSE_DATABASE": database,
            "CHECKIN_ADMIN_KEY": ADMIN_KEY,
            "CHECKIN_KEYRING": Keyring.generate(1),
            "CHECKIN_PUBLIC_BASE_URL": "http://testserver.local",
        }
        env.update({f"CHECKIN_{k.upper()}": str(v) for k, v in overrides.items()})
        return load_settings(env)

    return build


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    settings: Settings = make_settings()
    return settings


@pytest.fixture
async def redis_client() -> AsyncIterator[Any]:
    client = aioredis.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
def sync_redis() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def store(settings: Settings) -> Iterator[FailingStore]:
    """The test's ClickHouse database; ``store.fail_next(n)`` makes its next requests fail."""
    st = FailingStore(settings.effective_clickhouse_dsn, settings.clickhouse_database)
    st.apply_schema(settings.retention_days)
    yield st
    st.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
    st.close()


@pytest.fixture
async def notice_worker(settings: Settings, store: Store) -> AsyncIterator[NoticeWorker]:
    """The tracing service's notices worker in process, its consumer groups created; tests step it."""
    client = aioredis.Redis.from_url(settings.redis_url)
    worker = NoticeWorker(Context.build(settings, client, "tracing"), store)
    await worker.ensure()
    yield worker
    await worker.close()
    await client.aclose()


@pytest.fixture
async def ingest(settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    """The ingest app in process (it opens its own Redis client inside the client's loop)."""
    from checkin.app import create_app

    app = create_app(settings)
    async with AsyncTestClient(app=app) as client:
        yield client


@pytest.fixture
async def tracing(settings: Settings, store: Store) -> AsyncIterator[AsyncTestClient[Any]]:
    from tracing.app import create_app

    app = create_app(settings, store=store, workers=())
    async with AsyncTestClient(app=app) as client:
        yield client


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Debian chromium (async Playwright); skipped when missing, failed under CI=true."""
    async with async_chromium() as b:
        yield b
