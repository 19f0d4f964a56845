"""Alerts: the model, dedupe, the live stream and the ClickHouse history.

An alert is raised by one scan entry. Its ``alert_id`` is derived from that entry (stream entry time,
shard, sequence, kind): sortable by time, and the same when the scan is delivered again after a crash,
so a re-published alert replaces itself in ClickHouse instead of adding a row.

Dedupe (docs/ARCHITECTURE.md): at most one alert per (kind, person, venue, local day), capacity at
most one per venue and hour. The dedupe key holds the scan entry id that won it (``SET NX GET`` with
a TTL to the end of the day/hour); a redelivered scan finds its own id there and publishes again,
anything else is a duplicate. The state lives in Redis, so it survives restarts.

Publishing goes to Redis first (``checkin:alerts``, capped with ``MAXLEN ~``: a live feed); a separate
consumer group on that stream (:mod:`tracing.rules.history`) batches the alerts into ClickHouse, retrying,
so a slow ClickHouse never delays the live feed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Sequence
from importlib import resources
from typing import Annotated, Any

import msgspec
from redis.crc import key_slot

from checkin.platform.context import Context
from checkin.platform.instants import format_ms, from_ms, parse_instant, seconds_to_local_day_end, to_ms
from tracing.rules.checks import KIND_INDEX, Candidate
from tracing.storage.store import Store

log = logging.getLogger("tracing.rules.alerts")

ALERT_ID_RE = re.compile(r"^[0-9a-f]{22}$")
ALERT_COLUMNS = [
    "alert_id",
    "kind",
    "severity",
    "at",
    "person_id",
    "venue_id",
    "district",
    "street",
    "community",
    "details",
    "acked",
    "acked_by",
    "acked_at",
    "level",
    "escalated_at",
    "resolved",
    "resolved_by",
    "resolved_at",
    "outcome",
    "note",
    "version",
]
LEVELS = ("community", "street", "district", "city")
"""Command-centre levels, lowest first: an alert starts at ``community`` and escalates upwards."""
OUTCOMES = ("handled", "isolated", "tested", "referred", "false_alarm", "duplicate")
"""Dispositions a resolve may record (docs/ARCHITECTURE.md, "Command centre escalation")."""
NOTE_MAX = 500
EVENTS = ("escalated", "acked", "resolved")
"""State changes published on the alerts stream (field ``e``) next to the alerts themselves."""


class Alert(msgspec.Struct, kw_only=True):
    alert_id: Annotated[str, msgspec.Meta(examples=["018e3a5c7f200020004f00"])]
    kind: Annotated[str, msgspec.Meta(examples=["red_code_entry"])]
    severity: Annotated[str, msgspec.Meta(examples=["critical"])]
    at: Annotated[str, msgspec.Meta(examples=["2026-03-15T09:12:44.218Z"])]
    """Instant of the scan that raised it (RFC 3339 UTC, ms)."""
    person_id: Annotated[int | None, msgspec.Meta(examples=[100230])]
    venue_id: Annotated[int, msgspec.Meta(examples=[1024])]
    district: Annotated[str, msgspec.Meta(examples=["110101"])]
    street: Annotated[str, msgspec.Meta(examples=["110101001"])]
    community: Annotated[str, msgspec.Meta(examples=["110101001002"])]
    details: Annotated[dict[str, Any], msgspec.Meta(examples=[{"status": "red", "verdict": "deny"}])]
    acked: bool = False
    acked_by: str = ""
    acked_at: str | None = None
    level: str = "community"
    """Command-centre level holding the alert: community, street, district, city."""
    escalated_at: str | None = None
    """When it reached its level (its previous level's start + ``CHECKIN_ESCALATION_S``)."""
    resolved: bool = False
    resolved_by: str = ""
    resolved_at: str | None = None
    outcome: str = ""
    note: str = ""

    def level_since_ms(self) -> int:
        """Instant the alert arrived at its current level."""
        return parse_instant("escalated_at", self.escalated_at or self.at)


SCOPE_PATTERN = r"^[0-9]{0,12}$"
SCOPE_RE = re.compile(SCOPE_PATTERN)
"""A jurisdiction: a hierarchy code prefix (none = the city, 6 digits a district, 9 a street, 12 a
community)."""


def level_of_scope(scope: str) -> str:
    """An analyst key's level: the length of its scope (12 digits community, 9 street, 6 district)."""
    if len(scope) >= 12:
        return "community"
    if len(scope) >= 9:
        return "street"
    if len(scope) >= 6:
        return "district"
    return "city"


REV_BITS = 48
REV_MAX = (1 << REV_BITS) - 1


def state_version(alert: Alert, event_ms: int) -> int:
    """The ClickHouse row version of the alert's state (ReplacingMergeTree keeps the highest).

    State only moves forward: resolved > acked > a higher level > a lower one, so rows written by the
    escalation worker and by analysts in any order (or twice, after a restart) settle on the furthest
    state; between two writes of the same state the earlier event wins (its low bits are larger), so a
    second ack or resolve never rewrites the first. The raised alert itself is version 0.
    """
    rank = LEVELS.index(alert.level) if alert.level in LEVELS else 0
    if rank == 0 and not alert.acked and not alert.resolved:
        return 0
    flags = (int(alert.resolved) << 5) | (int(alert.acked) << 4) | rank
    return (flags << REV_BITS) | (REV_MAX - max(0, min(event_ms, REV_MAX)))


def _instant(name: str, value: str | None) -> Any:
    return from_ms(parse_instant(name, value)) if value else None


def _text(value: Any) -> str | None:
    return format_ms(to_ms(value)) if value is not None else None


# --- time ------------------------------------------------------------------------------------------


# --- ids --------------------------------------------------------------------------------------------


def stream_id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def make_alert_id(entry_id: str, shard: int, kind: str) -> str:
    """22 hex digits: entry ms (12), shard (3), entry sequence (5), kind (2)."""
    ms, seq = stream_id_key(entry_id)
    return f"{ms:012x}{shard & 0xFFF:03x}{seq & 0xFFFFF:05x}{KIND_INDEX[kind]:02x}"


AUDIT_SHARD = 0xFFF
"""The shard digits of an alert no scan raised (scan streams have fewer than 4096 shards)."""


def audit_alert_id(at_ms: int, kind: str, subject: str) -> str:
    """The id of an alert raised by a request, not a scan: its instant, :data:`AUDIT_SHARD`, 20 bits
    of the subject's hash (one alert per subject and instant) and the kind."""
    bits = int.from_bytes(hashlib.sha256(subject.encode()).digest()[:4], "big") & 0xFFFFF
    return f"{at_ms:012x}{AUDIT_SHARD:03x}{bits:05x}{KIND_INDEX[kind]:02x}"


# --- the model in Redis and ClickHouse ----------------------------------------------------------------


def alert_from_candidate(cand: Candidate, shard: int) -> Alert:
    ev = cand.event
    return Alert(
        alert_id=make_alert_id(ev.entry_id, shard, cand.kind),
        kind=cand.kind,
        severity=cand.severity,
        at=format_ms(ev.at_ms),
        person_id=cand.person_id,
        venue_id=ev.venue_id,
        district=ev.district,
        street=ev.street,
        community=ev.community,
        details={**cand.details, "checkin_id": ev.checkin_id, "scan_entry": ev.entry_id},
    )


def to_fields(alert: Alert, event: str = "") -> dict[str, bytes]:
    """Stream entry of one alert: the JSON document plus the community for scope filtering; a state
    change (escalated, acked, resolved) also names itself in ``e``."""
    fields = {"c": alert.community.encode(), "a": msgspec.json.encode(alert)}
    if event:
        fields["e"] = event.encode()
    return fields


_decoder = msgspec.json.Decoder(Alert)


def from_fields(fields: dict[bytes, bytes]) -> Alert:
    return _decoder.decode(fields[b"a"])


def to_row(alert: Alert) -> list[Any]:
    """The ClickHouse row; its version follows from the alert's state (see :func:`state_version`)."""
    return [
        alert.alert_id,
        alert.kind,
        alert.severity,
        from_ms(parse_instant("at", alert.at)),
        alert.person_id,
        alert.venue_id,
        alert.district,
        alert.street,
        alert.community,
        msgspec.json.encode(alert.details).decode(),
        1 if alert.acked else 0,
        alert.acked_by,
        _instant("acked_at", alert.acked_at),
        alert.level,
        _instant("escalated_at", alert.escalated_at),
        1 if alert.resolved else 0,
        alert.resolved_by,
        _instant("resolved_at", alert.resolved_at),
        alert.outcome,
        alert.note,
        state_version(alert, state_event_ms(alert)),
    ]


def from_row(row: dict[str, Any]) -> Alert:
    return Alert(
        alert_id=row["alert_id"],
        kind=row["kind"],
        severity=row["severity"],
        at=format_ms(to_ms(row["at"])),
        person_id=row["person_id"],
        venue_id=row["venue_id"],
        district=row["district"],
        street=row["street"],
        community=row["community"],
        details=msgspec.json.decode(row["details"]) if row["details"] else {},
        acked=bool(row["acked"]),
        acked_by=row["acked_by"],
        acked_at=_text(row.get("acked_at")),
        level=str(row.get("level") or "community"),
        escalated_at=_text(row.get("escalated_at")),
        resolved=bool(row.get("resolved")),
        resolved_by=row.get("resolved_by") or "",
        resolved_at=_text(row.get("resolved_at")),
        outcome=row.get("outcome") or "",
        note=row.get("note") or "",
    )


def state_event_ms(alert: Alert) -> int:
    """When the alert's state was reached, from the alert itself (so every writer computes the same
    version for the same state)."""
    stamp = alert.resolved_at if alert.resolved else alert.acked_at if alert.acked else alert.escalated_at
    return parse_instant("at", stamp) if stamp else 0


def insert_alerts(store: Store, alerts: Sequence[Alert], dedup_token: str | None = None) -> None:
    rows = [to_row(a) for a in alerts]
    columns: list[Sequence[Any]] = [list(col) for col in zip(*rows, strict=True)] if rows else []
    if not columns:
        return
    store.insert("alerts", ALERT_COLUMNS, columns, dedup_token=dedup_token)


# --- the rule-state script -------------------------------------------------------------------------

RULES_LUA = (resources.files("tracing.rules") / "rules.lua").read_text(encoding="utf-8")
"""One script for every rule-state operation of a batch (``rules.lua`` says what each op does)."""

Op = tuple[str, str, str, str, str]
"""(key, name, a1, a2, a3)"""


async def run_ops(ctx: Context, script: Any, now_ms: int, ops: Sequence[Op]) -> list[Any]:
    """Run ops through the script: one call on a single node, one call per hash slot on a cluster."""
    if not ops:
        return []
    groups: dict[int, list[int]] = {}
    if ctx.keys.cluster:
        for i, op in enumerate(ops):
            groups.setdefault(key_slot(op[0].encode()), []).append(i)
    else:
        groups[0] = list(range(len(ops)))
    out: list[Any] = [None] * len(ops)

    async def call(indexes: list[int]) -> None:
        keys = [ops[i][0] for i in indexes]
        packed = msgspec.json.encode([ops[i][1:] for i in indexes])
        result = await script(keys=keys, args=[now_ms, packed])
        for i, value in zip(indexes, result, strict=False):
            out[i] = value

    await asyncio.gather(*(call(ix) for ix in groups.values()))
    return out


def rules_script(ctx: Context) -> Any:
    return ctx.shared("rules_script", lambda: ctx.redis.register_script(RULES_LUA))


# --- dedupe and publish --------------------------------------------------------------------------------


async def publish_one(ctx: Context, alert: Alert) -> None:
    """XADD one alert raised outside the rule engine (``bulk_read``) to the alerts stream: the live
    feed, the level queue and (through the ``alerts-history`` group) ClickHouse take it like any."""
    await ctx.redis.xadd(
        ctx.keys.alerts_stream(),
        to_fields(alert),  # type: ignore[arg-type]
        maxlen=ctx.settings.alerts_stream_maxlen,
        approximate=True,
    )


def dedupe_key_ttl(ctx: Context, cand: Candidate, tz: str) -> tuple[str, int]:
    ev = cand.event
    if cand.kind == "capacity_exceeded":
        hour_end_s = (cand.dedupe_hour + 1) * 3600
        ttl = max(60, int(hour_end_s - time.time()) + 600)
        return ctx.keys.capacity_dedupe(ev.venue_id, cand.dedupe_hour), min(ttl, 7200)
    ttl = seconds_to_local_day_end(ev.at_ms, tz) + 3600
    return ctx.keys.rule_dedupe(cand.kind, ev.person_id, ev.venue_id, cand.dedupe_day), min(ttl, 26 * 3600)


async def publish(ctx: Context, candidates: Sequence[tuple[Candidate, int]], now_ms: int) -> list[Alert]:
    """Dedupe then XADD the winners to the alerts stream; returns the alerts published.

    ``candidates`` pairs each candidate with the shard of its scan entry.
    """
    if not candidates:
        return []
    script = rules_script(ctx)
    ops: list[Op] = []
    for cand, _shard in candidates:
        key, ttl = dedupe_key_ttl(ctx, cand, ctx.settings.tz)
        ops.append((key, "dd", cand.event.entry_id, str(ttl), ""))
    previous = await run_ops(ctx, script, now_ms, ops)
    winners: list[Alert] = []
    for (cand, shard), prev in zip(candidates, previous, strict=True):
        if prev is None or prev.decode() == cand.event.entry_id:
            winners.append(alert_from_candidate(cand, shard))
    if winners:
        stream, cap = ctx.keys.alerts_stream(), str(ctx.settings.alerts_stream_maxlen)
        publish_ops: list[Op] = []
        for alert in winners:
            fields = to_fields(alert)
            publish_ops.append((stream, "xadd", fields["c"].decode(), fields["a"].decode(), cap))
        await run_ops(ctx, script, now_ms, publish_ops)
    return winners
