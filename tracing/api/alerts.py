"""Alerts API (analyst): history from ClickHouse, the live SSE feed from Redis, and ack.

* ``GET /v1/alerts``: history, newest first; filters ``since``, ``until``, ``kind``, ``severity``,
  ``scope`` (hierarchy-code prefix), ``acked``, ``venue_id``, ``limit``. Only alerts inside the key's
  jurisdiction are ever returned.
* ``GET /v1/alerts/stream``: Server-Sent Events. Each alert is ``event: alert``, ``id:`` = its entry id
  in the alerts stream, ``data:`` = the alert JSON. Reconnect with ``Last-Event-ID`` (header, or
  ``?last_event_id=``) to receive every alert published since, once. Without it the feed starts with
  alerts published after the connection. A comment line is sent as a heartbeat every 15 s of silence. If
  the requested position was already trimmed from the capped stream, an ``event: reset`` (plain-text data)
  says so and the feed continues from the oldest alert kept; reload ``GET /v1/alerts`` to fill the gap.
  Browsers' ``EventSource`` cannot send an ``Authorization`` header, so this route (and only this one)
  also accepts the API key as ``?key=...``; prefer the header where possible (URLs end up in logs).
  Optional filters: ``scope``, ``kind``, ``severity``.
* Every alert in the list and on the feed comes with its venue's name (``venue_names`` beside the list,
  ``venue_name`` added to each event's JSON), so a console never shows a venue as a bare id.
* State changes of an alert (``escalated``, ``acked``, ``resolved``: :mod:`tracing.api.alert_queue`,
  :mod:`tracing.rules.escalation`) come on the same feed as events of that name carrying the alert in
  its new state.

Reading alerts (the list, opening the stream) writes an audit row like a trace query: alerts name
venues and times of cases.

One reader task per process follows the alerts stream and fans out to the connected feeds; a feed that
cannot keep up is closed (the client resumes with Last-Event-ID, nothing is lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Request, get
from litestar.params import Parameter
from litestar.response import Stream

from checkin.platform import auth
from checkin.platform.auth import Principal
from checkin.platform.context import Context
from checkin.platform.errors import BadInput, Unprocessable
from checkin.platform.instants import format_ms, parse_instant
from checkin.platform.openapi_doc import INSTANT, SECURITY
from checkin.platform.service import Part
from checkin.platform.settings import ALERT_KINDS
from tracing.api import audit
from tracing.queries import trace
from tracing.rules import alerts as al
from tracing.storage.store import Store

log = logging.getLogger("tracing.api.alerts")

HEARTBEAT_S = 15.0
NAMES_TTL_S = 600.0
NAMES_CACHED = 200_000
QUEUE_LIMIT = 10_000
STREAM_ID_PATTERN = r"^[0-9]{1,20}-[0-9]{1,20}$"
STREAM_ID_RE = re.compile(STREAM_ID_PATTERN)
SEVERITIES = ("info", "warning", "critical")


class AlertList(msgspec.Struct):
    alerts: list[al.Alert]
    count: int
    venue_names: dict[int, str] = msgspec.field(default_factory=dict)
    """Name of every venue the alerts name (the console never shows a venue as a bare id)."""


# --- history -----------------------------------------------------------------------------------------


KIND = Parameter(schema_extra={"enum": list(ALERT_KINDS)})
SEVERITY = Parameter(schema_extra={"enum": list(SEVERITIES)})
SCOPE = Parameter(query="scope", schema_extra={"pattern": al.SCOPE_PATTERN})


def _check_filters(kind: str | None, severity: str | None, scope: str) -> None:
    if kind is not None and kind not in ALERT_KINDS:
        raise BadInput(f"kind: expected one of {', '.join(ALERT_KINDS)}, got {kind!r}")
    if severity is not None and severity not in SEVERITIES:
        raise BadInput(f"severity: expected one of {', '.join(SEVERITIES)}, got {severity!r}")
    if not al.SCOPE_RE.fullmatch(scope):
        raise BadInput(f"scope: expected a hierarchy code prefix (digits), got {scope!r}")


def query_alerts(
    store: Store,
    *,
    since_ms: int,
    until_ms: int,
    key_scope: str,
    scope: str = "",
    kind: str | None = None,
    severity: str | None = None,
    acked: bool | None = None,
    venue_id: int | None = None,
    limit: int = 200,
) -> list[al.Alert]:
    """Blocking: alerts in [since, until) inside both scopes, newest first."""
    sql = (
        f"SELECT * FROM {store.table('alerts')} FINAL "
        "WHERE at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC') "
        "AND at < fromUnixTimestamp64Milli({until:Int64}, 'UTC') "
        "AND startsWith(community, {key_scope:String}) AND startsWith(community, {scope:String}) "
        "AND ({kind:String} = '' OR kind = {kind:String}) "
        "AND ({severity:String} = '' OR toString(severity) = {severity:String}) "
        "AND ({acked:Int8} < 0 OR acked = {acked:Int8}) "
        "AND ({venue_id:Int64} < 0 OR venue_id = {venue_id:Int64}) "
        "ORDER BY at DESC, alert_id DESC LIMIT {limit:UInt32}"
    )
    params = {
        "since": since_ms,
        "until": until_ms,
        "key_scope": key_scope,
        "scope": scope,
        "kind": kind or "",
        "severity": severity or "",
        "acked": -1 if acked is None else int(acked),
        "venue_id": -1 if venue_id is None else venue_id,
        "limit": limit,
    }
    return [al.from_row(row) for row in store.dicts(sql, params)]


@get(
    "/v1/alerts",
    summary="Alert history, newest first (analyst; the key's jurisdiction only)",
    tags=["alerts"],
    problems=(422,),
)
async def list_alerts(
    request: Request[Any, Any, Any],
    ctx: Context,
    store: Store,
    principal: Principal,
    since: Annotated[str | None, INSTANT] = None,
    until: Annotated[str | None, INSTANT] = None,
    kind: Annotated[str | None, KIND] = None,
    severity: Annotated[str | None, SEVERITY] = None,
    scope_prefix: Annotated[str, SCOPE] = "",
    acked: bool | None = None,
    venue_id: int | None = None,
    limit: Annotated[int, Parameter(ge=1, le=10_000)] = 200,
) -> AlertList:
    principal.require("analyst")
    _check_filters(kind, severity, scope_prefix)
    now_ms = int(time.time() * 1000)
    until_ms = parse_instant("until", until) if until else now_ms + 3_600_000
    since_ms = parse_instant("since", since) if since else until_ms - 7 * 86_400_000
    if since_ms >= until_ms:
        raise Unprocessable("since must be before until", reason="empty_window")
    found = await asyncio.to_thread(
        query_alerts,
        store,
        since_ms=since_ms,
        until_ms=until_ms,
        key_scope=principal.scope,
        scope=scope_prefix,
        kind=kind,
        severity=severity,
        acked=acked,
        venue_id=venue_id,
        limit=limit,
    )
    params: dict[str, Any] = {
        "since": format_ms(since_ms),
        "until": format_ms(until_ms),
        "kind": kind,
        "severity": severity,
        "scope": scope_prefix,
        "acked": acked,
        "venue_id": venue_id,
        "limit": limit,
    }
    await audit.record(ctx, store, principal, "alerts", "", params, len(found), audit.client_ip(request))
    names = await namer_of(ctx, store).names({a.venue_id for a in found})
    return AlertList(alerts=found, count=len(found), venue_names=names)


# --- one alert -------------------------------------------------------------------------------------------


def find_alert(store: Store, alert_id: str) -> al.Alert | None:
    """Blocking: the current version of one alert (its id bounds the time range searched)."""
    ms = int(alert_id[:12], 16)
    rows = store.dicts(
        f"SELECT * FROM {store.table('alerts')} FINAL WHERE alert_id = {{id:String}} "
        "AND at >= fromUnixTimestamp64Milli({lo:Int64}, 'UTC') "
        "AND at < fromUnixTimestamp64Milli({hi:Int64}, 'UTC') LIMIT 1",
        {"id": alert_id, "lo": ms - 8 * 86_400_000, "hi": ms + 86_400_000},
    )
    return al.from_row(rows[0]) if rows else None


async def find_in_stream(ctx: Context, alert_id: str) -> al.Alert | None:
    """An alert not yet copied to ClickHouse: look for it in the live stream after its scan's time."""
    start = f"{int(alert_id[:12], 16)}-0"
    entries = await ctx.redis.xrange(ctx.keys.alerts_stream(), min=start, max="+", count=20_000)
    found: al.Alert | None = None
    for _eid, fields in entries:
        try:
            alert = al.from_fields(fields)
        except (KeyError, msgspec.DecodeError, msgspec.ValidationError):
            continue
        if alert.alert_id == alert_id:
            found = alert  # the last entry of the alert holds its latest state
    return found


# --- venue names ------------------------------------------------------------------------------------------


class VenueNamer:
    """Venue names for alert answers and the live feed, from the venue mirror, cached per process for
    :data:`NAMES_TTL_S` (a name changes rarely; a day's alerts name a few thousand venues at most)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.cache: dict[int, tuple[float, str]] = {}

    async def names(self, venue_ids: set[int]) -> dict[int, str]:
        now = time.monotonic()
        fresh = {v: hit[1] for v in venue_ids if (hit := self.cache.get(v)) is not None and hit[0] > now}
        missing = [v for v in venue_ids if v not in fresh and v]
        if missing:
            try:
                found = await asyncio.to_thread(trace.venue_names, self.store, missing)
            except Exception as exc:  # a name is a courtesy: the alert goes out without it
                log.warning("alerts: venue names unavailable (%s)", exc)
                found = {}
            if len(self.cache) > NAMES_CACHED:
                self.cache.clear()
            for v in missing:
                self.cache[v] = (now + NAMES_TTL_S, found.get(v, ""))
                fresh[v] = found.get(v, "")
        return {v: name for v, name in fresh.items() if name}

    async def payload(self, payload: bytes) -> bytes:
        """The alert JSON with ``venue_name`` added (unchanged when the venue has no name)."""
        try:
            doc = msgspec.json.decode(payload)
        except msgspec.DecodeError:
            return payload
        venue = doc.get("venue_id") if isinstance(doc, dict) else None
        if not isinstance(venue, int) or isinstance(venue, bool):
            return payload
        name = (await self.names({venue})).get(venue)
        if not name:
            return payload
        doc["venue_name"] = name
        return msgspec.json.encode(doc)


def namer_of(ctx: Context, store: Store) -> VenueNamer:
    return ctx.shared("alert_venue_namer", lambda: VenueNamer(store))


# --- live feed --------------------------------------------------------------------------------------------


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


@get(
    "/v1/alerts/stream",
    summary="Live alerts as Server-Sent Events (analyst); resume with Last-Event-ID; ?key= for EventSource",
    tags=["alerts"],
    media_type="text/event-stream",
    security=SECURITY,
)
async def alerts_stream(
    request: Request[Any, Any, Any],
    ctx: Context,
    store: Store,
    key: str | None = None,
    last_event_id: Annotated[str | None, Parameter(schema_extra={"pattern": STREAM_ID_PATTERN})] = None,
    scope_prefix: Annotated[str, SCOPE] = "",
    kind: Annotated[str | None, KIND] = None,
    severity: Annotated[str | None, SEVERITY] = None,
) -> Stream:
    authorization = request.headers.get("authorization") or (f"Bearer {key}" if key else None)
    principal = await auth.authenticate(ctx, authorization)
    principal.require("analyst")
    _check_filters(kind, severity, scope_prefix)
    resume = request.headers.get("last-event-id") or last_event_id
    if resume is not None:
        resume = resume.strip()
        if not STREAM_ID_RE.fullmatch(resume):
            raise BadInput(f"Last-Event-ID: expected a stream entry id like 1712345678901-0, got {resume!r}")
    flt = FeedFilter(key_scope=principal.scope, scope=scope_prefix, kind=kind, severity=severity)
    params = {"scope": scope_prefix, "kind": kind, "severity": severity, "resume": resume}
    await audit.record(ctx, store, principal, "alerts_stream", "", params, 0, audit.client_ip(request))
    return Stream(
        feed(ctx, hub_of(ctx), flt, resume, namer=namer_of(ctx, store)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def on_shutdown(ctx: Context) -> None:
    hub = ctx.extras.get("alert_hub")
    if isinstance(hub, AlertHub):
        await hub.close()


PART = Part("alerts", routes=[list_alerts, alerts_stream], on_shutdown=on_shutdown)
