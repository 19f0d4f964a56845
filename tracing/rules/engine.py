"""The rule engine: consumer group ``rules`` on the scan streams -> alerts.

One loop reads every shard (``XREADGROUP ... >``), decodes entries (an undecodable entry is acked and
counted: the sink dead-letters it), updates and reads the state the rules need in one script call,
evaluates the pure rules of :mod:`tracing.rule_checks`, dedupes and publishes the alerts to the alerts
stream (:func:`tracing.rules.alerts.publish`), and XACKs the scans last. A batch whose processing failed
(Redis away) is held and retried; entries left pending by a dead consumer are reclaimed with XAUTOCLAIM.
ClickHouse is written by a separate task reading the alerts stream (``run_history_writer``), so a slow
ClickHouse never delays an alert.

State in Redis, every key with a TTL so memory follows activity, not history:

* ``rules:occ:{venue}``: sorted set of open stays (member ``checkin_id:person_id``, score = stay end ms);
  a check-out moves the end or removes the stay; expires after the last stay ends.
* ``rules:last:{person}``: the person's latest check-in (time, venue location) and the one before it
  (so a scan redelivered after a crash is compared with the right predecessor);
  kept ``impossible_travel_window_hours``.
* ``rules:dd:...`` / ``rules:cap:...``: dedupe keys, until the end of the local day / the hour.
* ``rules:exposure_sites``: the flagged periods (managed by the API), cached here and reloaded when
  their generation counter changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import Sequence

import msgspec
from redis import exceptions as redis_errors

from checkin.platform.context import Context
from checkin.platform.redis_keys import RULES_GROUP
from checkin.platform.scan_stream import PoisonEntry, ScanEvent, decode_scan
from tracing.rules import checks as rc
from tracing.rules.alerts import (
    Alert,
    Op,
    ensure_group,
    publish,
    rules_script,
    run_history_writer,
    run_ops,
    stream_id_key,
)
from tracing.storage.store import Store

log = logging.getLogger("tracing.rules.engine")

CAPACITY_CACHE_S = 10.0


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
        return alerts


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


def consumer_name() -> str:
    return f"rules-{socket.gethostname()}-{os.getpid()}"


class RulesConsumer:
    """Reads the scan streams for group ``rules`` and feeds :class:`RuleEngine`; acks after publishing."""

    def __init__(
        self,
        ctx: Context,
        engine: RuleEngine,
        *,
        name: str | None = None,
        count: int = 1000,
        block_ms: int = 200,
    ) -> None:
        self.ctx = ctx
        self.engine = engine
        self.name = name or consumer_name()
        self.count = count
        self.block_ms = block_ms
        self.streams = ctx.keys.streams()
        self._last_claim = 0.0

    async def setup(self) -> None:
        for stream in self.streams:
            await ensure_group(self.ctx.redis, stream, RULES_GROUP)

    async def _read(self) -> list[tuple[int, bytes, dict[bytes, bytes]]]:
        """Entries to process: reclaimed idle ones first (every few seconds), else new ones."""
        redis = self.ctx.redis
        out: list[tuple[int, bytes, dict[bytes, bytes]]] = []
        now = time.monotonic()
        if now - self._last_claim > 5.0:
            self._last_claim = now
            for shard, stream in enumerate(self.streams):
                claimed = await redis.xautoclaim(
                    stream,
                    RULES_GROUP,
                    self.name,
                    self.ctx.settings.sink_claim_idle_ms,
                    "0-0",
                    count=self.count,
                )
                out.extend((shard, eid, f) for eid, f in claimed[1] if f)
            if out:
                return out
        if self.ctx.keys.cluster:  # one slot per stream: one read per shard, no cross-slot command
            for shard, stream in enumerate(self.streams):
                got = await redis.xreadgroup(RULES_GROUP, self.name, {stream: ">"}, count=self.count)
                out.extend((shard, eid, f) for _, items in got or [] for eid, f in items)
            if not out:
                await asyncio.sleep(min(self.block_ms, 50) / 1000)
            return out
        resp = await redis.xreadgroup(
            RULES_GROUP, self.name, {s: ">" for s in self.streams}, count=self.count, block=self.block_ms
        )
        index = {s: i for i, s in enumerate(self.streams)}
        for stream, items in resp or []:
            shard = index[stream.decode() if isinstance(stream, bytes) else stream]
            out.extend((shard, eid, f) for eid, f in items)
        return out

    async def handle(self, entries: Sequence[tuple[int, bytes, dict[bytes, bytes]]]) -> list[Alert]:
        batch: list[tuple[int, ScanEvent]] = []
        poison = 0
        for shard, eid, fields in entries:
            try:
                batch.append((shard, decode_scan(eid, fields)))
            except PoisonEntry as exc:
                poison += 1
                log.warning("rules: skipping undecodable scan entry: %s", exc)
        alerts = await self.engine.process(batch)
        pipe = self.ctx.redis.pipeline(transaction=False)
        by_shard: dict[int, list[bytes]] = {}
        for shard, eid, _ in entries:
            by_shard.setdefault(shard, []).append(eid)
        for shard, ids in by_shard.items():
            pipe.xack(self.streams[shard], RULES_GROUP, *ids)
        await pipe.execute()
        metrics = self.ctx.metrics
        metrics.inc("rules_scans_total", float(len(batch)))
        if poison:
            metrics.inc("rules_poison_total", float(poison))
        now_ms = time.time() * 1000
        for _, ev in batch[-1:]:
            metrics.observe("rules_delay_seconds", max(0.0, now_ms - stream_id_key(ev.entry_id)[0]) / 1000)
        return alerts

    async def run(self, stop: asyncio.Event) -> None:
        await self.setup()
        held: list[tuple[int, bytes, dict[bytes, bytes]]] = []
        failures = 0
        while not stop.is_set():
            try:
                entries = held or await self._read()
                if entries:
                    held = entries
                    await self.handle(entries)
                    held = []
                failures = 0
            except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
                failures += 1
                self.ctx.metrics.inc("rules_errors_total")
                log.warning("rules: Redis unavailable (%s); retrying", exc)
                await _sleep_or_stop(stop, min(5.0, 0.2 * 2**failures))
            except redis_errors.ResponseError as exc:
                failures += 1
                self.ctx.metrics.inc("rules_errors_total")
                if "NOGROUP" in str(exc):
                    with contextlib.suppress(redis_errors.RedisError):
                        await self.setup()
                log.warning("rules: %s; retrying", exc)
                await _sleep_or_stop(stop, min(5.0, 0.2 * 2**failures))


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def run_rules(ctx: Context, store: Store, stop: asyncio.Event) -> None:
    """Background worker "rules": the rule consumer plus the alerts history writer."""
    declare_metrics(ctx)
    consumer = RulesConsumer(ctx, RuleEngine(ctx))
    history = asyncio.create_task(run_history_writer(ctx, store, stop), name="alerts-history")
    try:
        await consumer.run(stop)
    finally:
        try:
            await asyncio.wait_for(history, timeout=20)
        except (TimeoutError, asyncio.CancelledError):
            history.cancel()
        except Exception:
            log.exception("alerts history writer failed")
