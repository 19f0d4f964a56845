"""Worker ``notices``: tells the visitors of exposure sites.

* **Flagged sites.** ``POST /v1/exposure-sites`` queues the new site's id (``notices:queue``). The
  worker moves one id at a time to ``notices:working`` (put back on start if a worker died with it),
  screens the stays in ClickHouse with the exposure-screening semantics (``tracing.queries.trace.
  exposures``: a stay at the venue overlapping the window by any amount) and tells every visitor. The
  same site is screened once more :data:`RESCREEN_AFTER_S` later, for stays that were still on their
  way to ClickHouse when it was flagged (a worker that starts screens again the sites flagged in the
  last two such periods: a dead worker's second screenings were held in its memory); notices are
  kept per site, so no one is told twice.
* **Later visits.** It follows the alerts stream (consumer group ``notices``): each
  ``exposure_site_visit`` alert tells its person about the sites it names; an entry that cannot be
  decoded goes to the dead-letter stream ``notices:dead-letters``. Entries read and never
  acknowledged (the worker died, or Redis went away, while telling) are taken over once idle.
* **Texts.** Telling queues one text per new notice in the outbox stream; the worker sends them right
  after (:mod:`tracing.notices.texts`) and, every few seconds, takes over the texts a dead or failed
  send left pending.

The worker is a step of :class:`tracing.streams.runner.Runner` (:func:`notice_worker`): a failed round
(Redis or ClickHouse away) is retried after :data:`NOTICES_POLICY`'s pause on the injected clock.

Every screening writes an audit row (``exposure_notices``: site, level, persons told, guardians told
about a dependant, texts, persons turned yellow).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgspec

from checkin.platform.auth import Principal
from checkin.platform.context import Context
from checkin.platform.instants import parse_instant
from checkin.platform.redis_conn import async_client
from checkin.platform.redis_keys import NOTICES_GROUP
from checkin.platform.sms import SmsGateway, gateway_for
from tracing.notices.deliver import SiteFacts, Told, declare_metrics, tell
from tracing.notices.texts import TextSender
from tracing.queries import trace
from tracing.rules.alerts import from_fields
from tracing.storage import audit_log
from tracing.storage.store import Store, StoreError
from tracing.streams.dead_letters import DeadItem, DeadLetters
from tracing.streams.group import GroupReader, consumer_name, fields_of
from tracing.streams.retry import Clock, RetryPolicy, SystemClock
from tracing.streams.runner import REDIS_ERRORS, Runner

log = logging.getLogger("tracing.notices")

NOTICES_POLICY = RetryPolicy(first_delay_s=1.0, max_delay_s=1.0, multiplier=1.0)
"""After a failed round the worker waits 1 s and tries again."""
RESCREEN_AFTER_S = 30.0
POLL_MS = 500
WORKER = Principal(role="admin", key_id="worker:notices")
"""Who the audit rows of the worker's screenings name."""


class StoredSiteView(msgspec.Struct):
    """The fields of a stored exposure site (``tracing.api.exposure_sites.StoredSite``) told here."""

    site_id: str
    venue_id: int
    since_ms: int
    until_ms: int
    level: str = "inform"
    message: str = ""
    created_ms: int = 0


class NoticeWorker:
    name = "notices"

    def __init__(
        self, ctx: Context, store: Store, gateway: SmsGateway | None = None, clock: Clock | None = None
    ) -> None:
        self.ctx = ctx
        self.store = store
        self.gateway = gateway or gateway_for(ctx.settings)
        self.reader = GroupReader(
            async_client(ctx.settings),
            [ctx.keys.alerts_stream()],
            NOTICES_GROUP,
            consumer_name("notices"),
            cluster=ctx.keys.cluster,
        )
        self.dead = DeadLetters(
            self.reader, ctx.keys.notices_dead_letters(), ctx.metrics, "notices_dead_letters_total"
        )
        self.texts = TextSender(ctx, self.gateway)
        self.rescreen: list[tuple[float, str]] = []
        self.clock: Clock = clock or SystemClock()
        self.taken_over_at: dict[str, float] = {}
        """When idle entries were last taken over, per stream read (``texts``, ``visits``)."""

    async def ensure(self) -> None:
        """Create the consumer groups (alerts, texts)."""
        await self.reader.ensure()
        await self.texts.ensure()

    async def close(self) -> None:
        await self.reader.close()
        await self.texts.close()
        await self.gateway.close()

    def take_over_due(self, what: str) -> bool:
        """True every half of the pending timeout (once per ``what``): time to take over the entries
        a dead or failed worker left idle."""
        now = self.clock.monotonic()
        if now - self.taken_over_at.get(what, float("-inf")) < self.ctx.settings.sink_claim_idle_ms / 2000:
            return False
        self.taken_over_at[what] = now
        return True

    async def send_texts(self, told: Told | None = None) -> None:
        """Send the queued texts; every half of the pending timeout, also those a dead or failed
        send left behind."""
        sent = await self.texts.drain(self.take_over_due("texts"))
        if told is not None:
            told.texted += sent.sent + sent.duplicate
            told.text_failures += sent.failed + sent.refused

    # --- sites ------------------------------------------------------------------------------------
    async def site(self, site_id: str) -> SiteFacts | None:
        keys = self.ctx.keys
        raw = await self.ctx.redis.hget(keys.exposure_sites(), site_id)
        if raw is None:
            return None  # removed since
        s = msgspec.json.decode(raw, type=StoredSiteView)
        name = await self.ctx.redis.hget(keys.venue(s.venue_id), "name")
        level: Any = s.level if s.level in ("inform", "test", "isolate") else "inform"
        return SiteFacts(
            s.site_id, s.venue_id, (name or b"").decode(), s.since_ms, s.until_ms, level, s.message
        )

    async def screen(self, site_id: str) -> Told | None:
        """Tell everyone ClickHouse holds at the site during its window."""
        site = await self.site(site_id)
        if site is None:
            return None
        found = await asyncio.to_thread(
            trace.exposures, self.store, [trace.Site(site.venue_id, site.since_ms, site.until_ms)]
        )
        now = int(time.time() * 1000)
        told = await tell(self.ctx, site, [(e.person_id, e.first_ms) for e in found], now, "flag")
        await self.send_texts(told)
        params = {
            "site_id": site.site_id,
            "venue_id": site.venue_id,
            "level": site.level,
            "family": told.family,
            "texted": told.texted,
            "text_failures": told.text_failures,
            "turned_yellow": told.turned_yellow,
            "visitors": told.visitors,
        }
        await audit_log.record(
            self.ctx, self.store, WORKER, "exposure_notices", "exposure site", params, told.notified
        )
        return told

    async def flagged_step(self) -> bool:
        """Screen one queued site; False when there was none."""
        keys = self.ctx.keys
        now = self.clock.monotonic()
        due = [site_id for at, site_id in self.rescreen if at <= now]
        if due:
            self.rescreen = [(at, s) for at, s in self.rescreen if at > now]
            for site_id in due:
                await self.screen(site_id)
        site_id = await self.ctx.redis.lmove(keys.notify_queue(), keys.notify_working(), "LEFT", "RIGHT")
        if site_id is None:
            return False
        text = site_id.decode()
        await self.screen(text)
        await self.ctx.redis.lrem(keys.notify_working(), 1, site_id)
        self.rescreen.append((now + RESCREEN_AFTER_S, text))
        return True

    # --- later visits --------------------------------------------------------------------------------
    async def visits_step(self, block_ms: int) -> None:
        """Tell the persons of new ``exposure_site_visit`` alerts; every half of the pending timeout,
        also of the alerts a worker read and never acknowledged (it died, or Redis went away while it
        was telling): a new worker has a new consumer name and would never read them again."""
        batches = await self.reader.read(500, block_ms)
        if self.take_over_due("visits"):
            batches += await self.reader.claim_idle(self.ctx.settings.sink_claim_idle_ms)
        ids: list[bytes] = []
        dead: list[DeadItem] = []
        for _, entries in batches:
            for entry in entries:
                fields = fields_of(entry[1])
                if b"e" in fields:
                    ids.append(bytes(entry[0]))
                    continue  # a state change (escalated, acked, resolved) of an alert already seen
                try:
                    alert = from_fields(fields)
                except (KeyError, ValueError) as exc:  # msgspec's decode errors are ValueErrors
                    dead.append(self.dead.item(0, entry, f"undecodable entry: {type(exc).__name__}"))
                    continue
                ids.append(bytes(entry[0]))
                if alert.kind != "exposure_site_visit" or alert.person_id is None:
                    continue
                at = parse_instant("at", alert.at)
                for site_id in alert.details.get("site_ids", []):
                    site = await self.site(str(site_id))
                    if site is not None:
                        now = int(time.time() * 1000)
                        await tell(self.ctx, site, [(alert.person_id, at)], now, "visit")
        await self.dead.send(dead)
        if ids:
            await self.send_texts()
            await self.reader.ack({0: ids})

    # --- the step ---------------------------------------------------------------------------------
    async def setup(self) -> None:
        keys = self.ctx.keys
        await self.ensure()
        # a site a dead worker was telling goes back to the front of the queue
        while await self.ctx.redis.lmove(keys.notify_working(), keys.notify_queue(), "RIGHT", "LEFT"):
            pass
        # a dead worker's pending second screenings are not known: screen again every site flagged
        # recently enough to have had one still due
        recent = int(time.time() * 1000) - int(2 * RESCREEN_AFTER_S * 1000)
        due = self.clock.monotonic() + RESCREEN_AFTER_S
        for raw in (await self.ctx.redis.hgetall(keys.exposure_sites())).values():
            site = msgspec.json.decode(raw, type=StoredSiteView)
            if site.created_ms >= recent:
                self.rescreen.append((due, site.site_id))

    async def poll(self, stop: asyncio.Event) -> bool:
        busy = await self.flagged_step()
        await self.visits_step(0 if busy else POLL_MS)
        await self.send_texts()
        return True

    async def join(self, stop: asyncio.Event) -> bool:
        return True  # what is not told yet stays queued or pending


def notice_worker(ctx: Context, store: Store) -> Runner:
    """The factory of worker ``notices``."""
    declare_metrics(ctx)
    ctx.metrics.counter("notices_dead_letters_total", "Alert entries the notices worker could not decode")
    worker = NoticeWorker(ctx, store)
    return Runner(worker, NOTICES_POLICY, worker.clock, retry_on=(*REDIS_ERRORS, StoreError))
