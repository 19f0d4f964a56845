"""Redis connections from one DSN, with a few retries on the first connect."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from checkin.platform.settings import Settings

AsyncRedis = Any  # redis.asyncio.Redis or redis.asyncio.cluster.RedisCluster: same command API

SOCKET_TIMEOUT_S = 30.0
"""A command with no answer for this long fails instead of waiting forever; well above the longest
blocking read the services issue (1 s)."""


def _plain_url(url: str) -> str:
    return url.replace("redis+cluster://", "redis://").replace("rediss+cluster://", "rediss://")


def has_password(url: str) -> bool:
    return urlsplit(url).password is not None


def with_password(url: str, password: str) -> str:
    """The URL with this password (and no user name): what the private redis-server requires."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    netloc = f":{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def redacted(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def async_client(settings: Settings, url: str | None = None) -> AsyncRedis:
    target = _plain_url(url or settings.redis_url)
    if settings.is_redis_cluster:
        return AsyncRedisCluster.from_url(target, decode_responses=False, socket_timeout=SOCKET_TIMEOUT_S)
    return aioredis.Redis.from_url(
        target, decode_responses=False, health_check_interval=30, socket_timeout=SOCKET_TIMEOUT_S
    )


def sync_client(settings: Settings, url: str | None = None) -> Any:
    target = _plain_url(url or settings.redis_url)
    if settings.is_redis_cluster:
        return redis.RedisCluster.from_url(target, decode_responses=False)
    return redis.Redis.from_url(target, decode_responses=False)


async def connect(settings: Settings, attempts: int = 5, delay_s: float = 0.5) -> AsyncRedis:
    """An async client that answered PING; retried a few times at start."""
    last: Exception | None = None
    for attempt in range(attempts):
        client = async_client(settings)
        try:
            await client.ping()
            return client
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            last = exc
            await client.aclose()
            await asyncio.sleep(delay_s * (attempt + 1))
    raise ConnectionError(f"Redis at {redacted(settings.redis_url)} did not answer: {last}")


def reachable(url: str, timeout_s: float = 1.0) -> bool:
    """True when a Redis server answers PING at this URL."""
    try:
        client = redis.Redis.from_url(
            _plain_url(url), socket_connect_timeout=timeout_s, socket_timeout=timeout_s
        )
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


def wait_until_reachable(url: str, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if reachable(url, 0.5):
            return True
        time.sleep(0.1)
    return False
