"""The live alerts feed (Server-Sent Events): one reader task per process follows the alerts stream and
fans out to the connected feeds; a feed that cannot keep up is closed (the client resumes with
Last-Event-ID, nothing is lost). The route is :func:`tracing.api.alerts.alerts_stream`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from checkin.platform.context import Context
from tracing.api.alert_names import VenueNamer
from tracing.rules import alerts as al

log = logging.getLogger("tracing.api.alert_feed")

HEARTBEAT_S = 15.0
QUEUE_LIMIT = 10_000


class Subscriber:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, bytes, bytes, str] | None] = asyncio.Queue(QUEUE_LIMIT)
        self.overflow = False

    def offer(self, item: tuple[str, bytes, bytes, str] | None) -> None:
        if self.overflow:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflow = True


class AlertHub:
    """Follows the alerts stream once per process and fans entries out to the connected feeds."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        ctx.stop_signal.when_stopping(self.end_feeds)

    def subscribe(self) -> Subscriber:
        sub = Subscriber()
        if self._closed:  # the service is stopping: the feed ends at once
            sub.offer(None)
            return sub
        self.subscribers.add(sub)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._follow(), name="alerts-hub")
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    async def _follow(self) -> None:
        redis, stream = self.ctx.redis, self.ctx.keys.alerts_stream()
        last = "0-0"
        with contextlib.suppress(Exception):
            newest = await redis.xrevrange(stream, count=1)
            if newest:
                last = newest[0][0].decode()
        while not self._closed:
            try:
                resp = await redis.xread({stream: last}, count=1000, block=1000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("alerts feed: reading the stream failed (%s)", exc)
                await asyncio.sleep(1.0)
                continue
            for _stream, items in resp or []:
                for eid, fields in items:
                    last = eid.decode()
                    item = (last, fields.get(b"c", b""), fields.get(b"a", b""), event_of(fields))
                    for sub in list(self.subscribers):
                        sub.offer(item)

    def end_feeds(self) -> None:
        """Every connected feed ends (the service is stopping; clients reconnect elsewhere or later)."""
        self._closed = True
        for sub in list(self.subscribers):
            sub.offer(None)

    async def close(self) -> None:
        self.end_feeds()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


def hub_of(ctx: Context) -> AlertHub:
    return ctx.shared("alert_hub", lambda: AlertHub(ctx))


def event_of(fields: dict[bytes, bytes]) -> str:
    """SSE event name of a stream entry: ``alert``, or the state change it records."""
    event = fields.get(b"e", b"").decode()
    return event if event in al.EVENTS else "alert"


def sse(event: str, data: bytes | str, event_id: str | None = None) -> bytes:
    text = data.decode() if isinstance(data, bytes) else data
    head = f"id: {event_id}\n" if event_id else ""
    body = "".join(f"data: {line}\n" for line in text.split("\n"))
    return f"{head}event: {event}\n{body}\n".encode()


class FeedFilter(msgspec.Struct, frozen=True):
    key_scope: str = ""
    scope: str = ""
    kind: str | None = None
    severity: str | None = None

    def wants(self, community: bytes, payload: bytes) -> bool:
        text = community.decode()
        if not (text.startswith(self.key_scope) and text.startswith(self.scope)):
            return False
        if self.kind is None and self.severity is None:
            return True
        try:
            alert = al.from_fields({b"a": payload})
        except (msgspec.DecodeError, msgspec.ValidationError):
            return False
        return (self.kind is None or alert.kind == self.kind) and (
            self.severity is None or alert.severity == self.severity
        )


async def trimmed_after(redis: Any, stream: str, position: tuple[int, int]) -> bool:
    """True when alerts after ``position`` may have been trimmed (the stream is trimmed from its head)."""
    if position == (0, 0):
        return False
    try:
        info = await redis.xinfo_stream(stream)
    except Exception:
        return False

    def key(value: Any) -> tuple[int, int]:
        return al.stream_id_key(value.decode() if isinstance(value, bytes) else str(value))

    if key(info.get("max-deleted-entry-id") or b"0-0") > position:
        return True
    first = info.get("first-entry")
    if first:
        return key(first[0]) > position
    return key(info.get("last-generated-id") or b"0-0") > position


async def feed(
    ctx: Context,
    hub: AlertHub,
    flt: FeedFilter,
    last_event_id: str | None,
    heartbeat_s: float = HEARTBEAT_S,
    namer: VenueNamer | None = None,
) -> AsyncIterator[bytes]:
    """The SSE byte stream of one client: missed alerts after ``last_event_id``, then live ones, each
    with its venue's name when ``namer`` is given."""

    async def named(payload: bytes) -> bytes:
        return payload if namer is None else await namer.payload(payload)

    redis, stream = ctx.redis, ctx.keys.alerts_stream()
    sub = hub.subscribe()
    try:
        if last_event_id is None:
            newest = await redis.xrevrange(stream, count=1)
            position = al.stream_id_key(newest[0][0].decode()) if newest else (0, 0)
            yield b"retry: 2000\n\n"
        else:
            yield b"retry: 2000\n\n"
            position = al.stream_id_key(last_event_id)
            if await trimmed_after(redis, stream, position):
                yield sse(
                    "reset", "alerts after the given id were trimmed from the live feed; reload /v1/alerts"
                )
            cursor = last_event_id
            while True:
                batch = await redis.xrange(stream, min=f"({cursor}", max="+", count=1000)
                if not batch:
                    break
                for eid_raw, fields in batch:
                    eid = eid_raw.decode()
                    cursor = eid
                    position = al.stream_id_key(eid)
                    payload = fields.get(b"a", b"")
                    if flt.wants(fields.get(b"c", b""), payload):
                        yield sse(event_of(fields), await named(payload), eid)
        while True:
            try:
                item = await asyncio.wait_for(sub.queue.get(), timeout=heartbeat_s)
            except TimeoutError:
                if sub.overflow:
                    return
                yield b": heartbeat\n\n"
                continue
            items = [item]
            while len(items) < 500 and not sub.queue.empty():  # what has queued up goes out in one write
                items.append(sub.queue.get_nowait())
            chunk: list[bytes] = []
            for entry in items:
                if entry is None:
                    break
                eid, community, payload, event = entry
                key = al.stream_id_key(eid)
                if key <= position:
                    continue
                position = key
                if flt.wants(community, payload):
                    chunk.append(sse(event, await named(payload), eid))
            if chunk:
                yield b"".join(chunk)
            if None in items or (sub.overflow and sub.queue.empty()):
                return
    finally:
        hub.unsubscribe(sub)
