"""A lean pipelined Redis connection for the check-in hot path (single-node Redis).

redis-py's asyncio client spends most of a check-in's CPU on packing the command in
Python and on pool bookkeeping (measured ~250 us per EVALSHA here, against ~10 us for
this one). This connection packs with hiredis, parses with ``hiredis.Reader``, and lets
every concurrent request share one socket: commands written in the same event-loop
tick go out in one ``write``, replies come back in order and resolve their futures.

Used only for single-node Redis; in cluster mode the check-in path uses the redis-py
cluster client (slot routing). A lost connection fails the requests in flight with
:class:`ConnectionError` (the caller answers 503) and the next call reconnects.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlparse

import hiredis

if TYPE_CHECKING:
    from checkin.platform.context import Context


class RedisReplyError(Exception):
    """An error reply (``-ERR ...``) from Redis."""


class _Batch:
    """Waiter of a pipelined batch: collects ``count`` replies, then resolves one future."""

    __slots__ = ("count", "fut", "replies")

    def __init__(self, fut: asyncio.Future[list[Any]], count: int) -> None:
        self.fut = fut
        self.count = count
        self.replies: list[Any] = []


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiters: collections.deque[Any] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None
        self.out: list[bytes] = []
        self.flush_scheduled = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        gets = self.reader.gets
        waiters = self.waiters
        while True:
            reply = gets()
            if reply is False:
                return
            head = waiters[0]
            if type(head) is _Batch:
                head.replies.append(reply)
                if len(head.replies) < head.count:
                    continue
                waiters.popleft()
                if not head.fut.done():
                    head.fut.set_result(head.replies)
                continue
            fut = waiters.popleft()
            if fut.done():
                continue
            if isinstance(reply, hiredis.ReplyError):
                fut.set_exception(RedisReplyError(str(reply)))
            else:
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or ConnectionError("Redis closed the connection")
        self.transport = None
        while self.waiters:
            head = self.waiters.popleft()
            fut = head.fut if type(head) is _Batch else head
            if not fut.done():
                fut.set_exception(ConnectionError(f"Redis connection lost: {self.lost}"))

    def flush(self) -> None:
        self.flush_scheduled = False
        if self.out and self.transport is not None:
            data = b"".join(self.out) if len(self.out) > 1 else self.out[0]
            self.out = []
            self.transport.write(data)


def _expire(fut: asyncio.Future[Any], timeout_s: float) -> None:
    # the reply, when it comes, is skipped: replies are matched to waiters in order
    if not fut.done():
        fut.set_exception(TimeoutError(f"Redis did not answer within {timeout_s} s"))


class HotRedis:
    """One shared connection per event loop; ``await execute(*args)`` returns the raw reply."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        parsed = urlparse(url)
        self.unix_path = parsed.path if parsed.scheme == "unix" else ""
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 6379
        self.password = unquote(parsed.password) if parsed.password else None
        self.username = unquote(parsed.username) if parsed.username else None
        self.tls = parsed.scheme == "rediss"
        db_text = (parsed.path or "/0").lstrip("/") if not self.unix_path else ""
        self.db = int(db_text) if db_text.isdigit() else 0
        self.timeout_s = timeout_s
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            current = self._proto
            if current is not None and current.transport is not None:
                return current
            loop = asyncio.get_running_loop()
            proto: _Protocol
            if self.unix_path:
                _, proto = await asyncio.wait_for(
                    loop.create_unix_connection(_Protocol, self.unix_path), self.timeout_s
                )
            else:
                context = ssl.create_default_context() if self.tls else None
                _, proto = await asyncio.wait_for(
                    loop.create_connection(_Protocol, self.host, self.port, ssl=context), self.timeout_s
                )
            self._proto = proto
            if self.password is not None:
                auth = (self.username, self.password) if self.username else (self.password,)
                await self._send(proto, ("AUTH", *auth))
            if self.db:
                await self._send(proto, ("SELECT", self.db))
            return proto

    async def _send(self, proto: _Protocol, args: tuple[Any, ...]) -> Any:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        proto.waiters.append(fut)
        proto.out.append(hiredis.pack_command(args))
        if not proto.flush_scheduled:
            proto.flush_scheduled = True
            loop.call_soon(proto.flush)
        timer = loop.call_later(self.timeout_s, _expire, fut, self.timeout_s)
        try:
            return await fut
        finally:
            timer.cancel()

    async def execute(self, *args: Any) -> Any:
        proto = self._proto
        if proto is None or proto.transport is None:
            proto = await self._connect()
        return await self._send(proto, args)

    async def pipeline(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send many commands in one write; the replies in order (error replies are returned as
        ``hiredis.ReplyError`` values, not raised)."""
        if not commands:
            return []
        proto = self._proto
        if proto is None or proto.transport is None:
            proto = await self._connect()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[Any]] = loop.create_future()
        proto.waiters.append(_Batch(fut, len(commands)))
        pack = hiredis.pack_command
        proto.out.append(b"".join([pack(c) for c in commands]))
        if not proto.flush_scheduled:
            proto.flush_scheduled = True
            loop.call_soon(proto.flush)
        timer = loop.call_later(self.timeout_s + len(commands) / 10_000, _expire, fut, self.timeout_s)
        try:
            return await fut
        finally:
            timer.cancel()

    async def evalsha(self, script: bytes, sha: bytes, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA, loading the script once when Redis does not know it (NOSCRIPT)."""
        try:
            return await self.execute("EVALSHA", sha, len(keys), *keys, *args)
        except RedisReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self.execute("SCRIPT", "LOAD", script)
        return await self.execute("EVALSHA", sha, len(keys), *keys, *args)

    def close(self) -> None:
        proto = self._proto
        self._proto = None
        if proto is not None and proto.transport is not None:
            proto.transport.close()


def hot_of(ctx: Context) -> HotRedis | None:
    """The shared hot-path connection of a service context (None with Redis Cluster)."""
    if ctx.settings.is_redis_cluster:
        return None
    return ctx.shared("hot_redis", lambda: HotRedis(ctx.settings.redis_url))


async def run_commands(ctx: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    """Pipelined commands over the hot connection, or a redis-py pipeline with Redis Cluster;
    an error reply raises :class:`RedisReplyError`."""
    if not commands:
        return []
    hot = hot_of(ctx)
    if hot is None:
        pipe = ctx.redis.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute())
    replies = await hot.pipeline(commands)
    for reply in replies:
        if isinstance(reply, hiredis.ReplyError):
            raise RedisReplyError(str(reply))
    return replies
