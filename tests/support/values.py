"""Values every test shares: the suite's Redis, its admin key, a free TCP port, an own key prefix."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ADMIN_KEY = "adm_test_admin_key_for_the_suite"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_KEY}"}


@contextmanager
def own_prefix() -> Iterator[str]:
    """A key prefix of its own on the suite's Redis; every key under it is deleted on exit."""
    value = f"test:{uuid.uuid4().hex[:12]}:"
    try:
        yield value
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=value + "*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
        client.close()
