"""The rule engine: consumer group ``rules`` on the scan streams -> alerts.

One loop reads every shard (``XREADGROUP ... >``), decodes entries (an undecodable entry is acked and
counted: the sink dead-letters it), updates and reads the state the rules need in one script call,
evaluates the pure rules of :mod:`tracing.rules.checks`, dedupes and publishes the alerts to the alerts
stream (:func:`tracing.rules.alerts.publish`), and XACKs the scans last. A batch whose processing failed
(Redis away) is held and retried; entries left pending by a dead consumer are reclaimed with XAUTOCLAIM.
ClickHouse is written by a separate task reading the alerts stream (:mod:`tracing.rules.history`), so a slow
ClickHouse never delays an alert.

State in Redis, every key with a TTL so memory follows activity, not history:

* ``rules:occupancy:{venue}``: sorted set of open stays (member ``checkin_id:person_id``, score = stay
  end ms); a check-out moves the end or removes the stay; expires after the last stay ends.
* ``rules:last-checkin:{person}``: the person's latest check-in (time, venue location) and the one before it
  (so a scan redelivered after a crash is compared with the right predecessor);
  kept ``impossible_travel_window_hours``.
* ``rules:dedupe:...`` / ``rules:capacity:...``: dedupe keys, until the end of the local day / the hour.
* ``rules:venue-alerts:{venue}``: the venue's latest capacity alerts (kind, instant, counts; no person),
  what its operator page shows; the last :data:`VENUE_ALERTS_KEPT`, for two days.
* ``rules:exposure-sites``: the flagged periods (managed by the API), cached here and reloaded when
  their generation counter changes.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from typing import Any

import msgspec

from checkin.platform.context import Context
from checkin.platform.redis_conn import async_client
from checkin.platform.redis_keys import RULES_GROUP
from checkin.platform.scan_stream import PoisonEntry, ScanEvent, decode_scan
from tracing.rules import checks as rc
from tracing.rules.alerts import Alert, Op, publish, rules_script, run_ops, stream_id_key
from tracing.rules.history import alerts_history
from tracing.storage.store import Store
from tracing.streams.dead_letters import DeadItem, DeadLetters
from tracing.streams.group import Entry, GroupReader, consumer_name, fields_of
from tracing.streams.retry import Clock, RetryPolicy, SystemClock
from tracing.streams.runner import Runner, served
from venues.model import OPERATOR_ALERT_KINDS, VenueAlert

log = logging.getLogger("tracing.rules.engine")

CAPACITY_CACHE_S = 10.0
VENUE_ALERTS_KEPT = 50
VENUE_ALERTS_TTL_S = 2 * 86_400


def _previous(raw: bytes | None) -> rc.PreviousCheckin | None:
    if not raw:
        return None
    at, lat, lon, vid = raw.decode().split(",")
    return rc.PreviousCheckin(at_ms=int(at), lat=float(lat), lon=float(lon), venue_id=int(vid))


class RuleEngine:
    """Evaluates batches of scan events against Redis state; ``clock`` gives "now" (seconds)."""

    def __init__(self, ctx: Context, clock: rc.Clock = time.time, capacity_cache_s: float = CAPACITY_CACHE_S):
        self.ctx = ctx
        self.cfg = rc.RuleConfig.from_settings(ctx.settings)
        self.clock = clock
        self.capacity_cache_s = capacity_cache_s
        self._capacity: dict[int, tuple[int, float]] = {}
        self._sites_gen: bytes | None = b"-"
        self._sites: dict[int, list[rc.ExposureSite]] = {}
        self.travel_ttl_ms = ctx.settings.impossible_travel_window_hours * 3_600_000

    # --- cached lookups -----------------------------------------------------------------------------
    async def _refresh_sites(self) -> None:
        keys = self.ctx.keys
        gen = await self.ctx.redis.get(keys.exposure_sites_gen())
        if gen == self._sites_gen:
            return
        raw: dict[bytes, bytes] = await self.ctx.redis.hgetall(keys.exposure_sites())
        sites: dict[int, list[rc.ExposureSite]] = {}
        for value in raw.values():
            try:
                site = msgspec.json.decode(value, type=rc.ExposureSite)
            except msgspec.DecodeError:
                continue
            sites.setdefault(site.venue_id, []).append(site)
        self._sites, self._sites_gen = sites, gen

    async def _capacities(self, venue_ids: set[int]) -> dict[int, int]:
        now = time.monotonic()
        out: dict[int, int] = {}
        missing: list[int] = []
        for vid in venue_ids:
            cached = self._capacity.get(vid)
            if cached is not None and cached[1] > now:
                out[vid] = cached[0]
            else:
                missing.append(vid)
        if missing:
            ops: list[Op] = [(self.ctx.keys.venue(vid), "cap", "", "", "") for vid in missing]
            values = await run_ops(self.ctx, rules_script(self.ctx), 0, ops)
            if len(self._capacity) > 500_000:
                self._capacity.clear()
            for vid, value in zip(missing, values, strict=True):
                try:
                    cap = int(value) if value else 0
                except ValueError:
                    cap = 0
                out[vid] = cap
                # spread the expiries so a large venue set is not refreshed all at once
                self._capacity[vid] = (cap, now + self.capacity_cache_s * (0.5 + random.random() / 2))
        return out

    # --- one batch ---------------------------------------------------------------------------------------
    async def evaluate(self, batch: Sequence[tuple[int, ScanEvent]]) -> list[tuple[rc.Candidate, int]]:
        """State updates and rule evaluation for a batch (shard, event); returns candidates before dedupe."""
        cfg, keys = self.cfg, self.ctx.keys
        now_ms = int(self.clock() * 1000)
        track_occupancy = cfg.on("capacity_exceeded")
        track_travel = cfg.on("impossible_travel")
        if cfg.on("exposure_site_visit"):
            await self._refresh_sites()
        capacities: dict[int, int] = {}
        if track_occupancy:
            capacities = await self._capacities({ev.venue_id for _, ev in batch if ev.kind == "in"})

        ops: list[Op] = []
        plan: list[dict[str, int]] = []  # per event: where its lookups landed in the results
        for _shard, ev in batch:
            where: dict[str, int] = {}
            member = f"{ev.checkin_id}:{ev.person_id}"
            if track_occupancy:
                if ev.kind == "in" and rc.stay_covers(ev, now_ms) and capacities.get(ev.venue_id, 0) > 0:
                    ttl = ev.end_ms - now_ms + 60_000
                    where["occ"] = len(ops)
                    ops.append((keys.occupancy(ev.venue_id), "occ", member, str(ev.end_ms), str(ttl)))
                elif ev.kind == "out":
                    ops.append((keys.occupancy(ev.venue_id), "out", member, str(ev.end_ms), ""))
            if track_travel and ev.kind == "in" and ev.venue_lat is not None and ev.venue_lon is not None:
                value = f"{ev.at_ms},{ev.venue_lat:.5f},{ev.venue_lon:.5f},{ev.venue_id}"
                where["last"] = len(ops)
                ops.append((keys.last_checkin(ev.person_id), "last", value, str(self.travel_ttl_ms), ""))
            plan.append(where)
        results = await run_ops(self.ctx, rules_script(self.ctx), now_ms, ops)

        out: list[tuple[rc.Candidate, int]] = []
        for (shard, ev), where in zip(batch, plan, strict=True):
            if ev.kind != "in":
                continue
            cands = rc.door_rules(ev, cfg)
            cands += rc.exposure_rule(ev, self._sites.get(ev.venue_id, ()), cfg)
            if "occ" in where:
                cands += rc.capacity_rule(
                    ev, int(results[where["occ"]]), capacities[ev.venue_id], now_ms, cfg
                )
            if "last" in where:
                cands += rc.travel_rule(ev, _previous(results[where["last"]]), cfg)
            cands += rc.remote_rule(ev, cfg)
            out.extend((c, shard) for c in cands)
        return out

    async def process(self, batch: Sequence[tuple[int, ScanEvent]]) -> list[Alert]:
        """Evaluate, dedupe and publish; returns the alerts published."""
        candidates = await self.evaluate(batch)
        alerts = await publish(self.ctx, candidates, int(self.clock() * 1000))
        for alert in alerts:
            self.ctx.metrics.inc("rules_alerts_total", kind=alert.kind)
        await self._remember_for_venues(alerts)
        return alerts

    async def _remember_for_venues(self, alerts: Sequence[Alert]) -> None:
        """Keep each venue's alerts its operator may see (:data:`venues.model.OPERATOR_ALERT_KINDS`),
        without persons, beside the venue for the operator page (the ingest API reads no ClickHouse)."""
        mine = [a for a in alerts if a.kind in OPERATOR_ALERT_KINDS]
        if not mine:
            return
        pipe = self.ctx.redis.pipeline(transaction=False)
        for alert in mine:
            details = alert.details
            row = VenueAlert(
                alert_id=alert.alert_id,
                kind=alert.kind,
                at=alert.at,
                occupancy=details.get("occupancy"),
                capacity=details.get("capacity"),
            )
            key = self.ctx.keys.venue_alerts(alert.venue_id)
            pipe.lpush(key, msgspec.json.encode(row))
            pipe.ltrim(key, 0, VENUE_ALERTS_KEPT - 1)
            pipe.expire(key, VENUE_ALERTS_TTL_S)
        await pipe.execute()


def declare_metrics(ctx: Context) -> None:
    m = ctx.metrics
    m.counter("rules_scans_total", "Scan entries evaluated by the rule engine")
    m.counter("rules_alerts_total", "Alerts published, by kind")
    m.counter(
        "rules_poison_total", "Scan entries the rule engine could not decode (acked; the sink keeps them)"
    )
    m.counter("rules_errors_total", "Rule batches that failed and were retried")
    m.counter("alerts_history_rows_total", "Alerts written to ClickHouse")
    m.counter("alerts_history_failures_total", "Failed ClickHouse inserts of alerts (retried)")
    m.histogram("rules_delay_seconds", "From scan receipt to its evaluation by the rule engine")


RULES_POLICY = RetryPolicy(first_delay_s=0.4)
"""Backoff of the rule consumer after a Redis failure (0.4 s doubling to 5 s)."""
CLAIM_EVERY_S = 5.0


class RulesConsumer:
    """Reads the scan streams for group ``rules`` and feeds :class:`RuleEngine`; acks after publishing.

    Built from the stream core: a :class:`~tracing.streams.group.GroupReader` on its own
    connection and the dead-letter policy in its acknowledge-only form (the sink keeps the dead
    letters of these streams); a step of :class:`~tracing.streams.runner.Runner`
    (:func:`rules_consumer` builds both). A batch whose processing failed is held and retried.
    """

    def __init__(
        self,
        ctx: Context,
        engine: RuleEngine,
        *,
        name: str | None = None,
        count: int = 1000,
        block_ms: int = 200,
        clock: Clock | None = None,
        redis_client: Any = None,
    ) -> None:
        self.ctx = ctx
        self.engine = engine
        self.count = count
        self.block_ms = block_ms
        self.reader = GroupReader(
            redis_client if redis_client is not None else async_client(ctx.settings),
            ctx.keys.streams(),
            RULES_GROUP,
            name or consumer_name("rules"),
            cluster=ctx.keys.cluster,
        )
        self.dead = DeadLetters(self.reader, None, ctx.metrics, "rules_poison_total")
        self.clock: Clock = clock or SystemClock()
        self.streams = self.reader.streams
        self.held: list[tuple[int, Entry]] = []
        self._last_claim = -CLAIM_EVERY_S

    @property
    def name(self) -> str:
        return self.reader.consumer

    async def setup(self) -> None:
        await self.reader.ensure()

    async def close(self) -> None:
        await self.reader.close()

    async def _read(self) -> list[tuple[int, Entry]]:
        """Entries to process: reclaimed idle ones first (every few seconds), else new ones."""
        now = self.clock.monotonic()
        if now - self._last_claim > CLAIM_EVERY_S:
            self._last_claim = now
            claimed = await self.reader.claim_idle(self.ctx.settings.sink_claim_idle_ms, self.count)
            if claimed:
                return [(shard, e) for shard, entries in claimed for e in entries]
        got = await self.reader.read(self.count, self.block_ms)
        return [(shard, e) for shard, entries in got for e in entries]

    async def handle(self, entries: Sequence[tuple[int, Entry]]) -> list[Alert]:
        batch: list[tuple[int, ScanEvent]] = []
        poison: list[DeadItem] = []
        for shard, entry in entries:
            try:
                batch.append((shard, decode_scan(bytes(entry[0]), fields_of(entry[1]))))
            except PoisonEntry as exc:
                poison.append(self.dead.item(shard, entry, exc.reason))
        alerts = await self.engine.process(batch)
        by_shard: dict[int, list[bytes]] = {}
        for shard, ev in batch:
            by_shard.setdefault(shard, []).append(ev.entry_id.encode())
        await self.reader.ack(by_shard)
        await self.dead.send(poison)
        metrics = self.ctx.metrics
        metrics.inc("rules_scans_total", float(len(batch)))
        now_ms = time.time() * 1000
        for _, ev in batch[-1:]:
            metrics.observe("rules_delay_seconds", max(0.0, now_ms - stream_id_key(ev.entry_id)[0]) / 1000)
        return alerts

    async def poll(self, stop: asyncio.Event) -> bool:
        """One batch: the one held after a failure, else what :meth:`_read` returns."""
        entries = self.held or await self._read()
        if not entries:
            return False
        self.held = entries
        await self.handle(entries)
        self.held = []
        return True

    async def join(self, stop: asyncio.Event) -> bool:
        return True  # a held batch stays pending in Redis


def rules_consumer(ctx: Context, store: Store) -> Runner:
    """The factory of the rule consumer: its step, the retry policy, errors counted."""
    declare_metrics(ctx)
    consumer = RulesConsumer(ctx, RuleEngine(ctx))
    return Runner(
        consumer,
        RULES_POLICY,
        consumer.clock,
        on_error=lambda exc: ctx.metrics.inc("rules_errors_total"),
    )


run_rules = served(rules_consumer, alerts_history())
"""Worker "rules" on its own (as :mod:`tracing.workers` registers it): the rule consumer and, beside
it, the alerts history writer."""
