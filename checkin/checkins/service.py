"""Check-ins: the hot path. One Redis call per check-in (``checkin.lua``).

The venue code is verified in process (HMAC, :mod:`venues.codes`); the script then
checks the code version and venue state, dedupes, reads the hot state of every person,
decides the verdict (docs/ARCHITECTURE.md "Verdict at the door"), XADDs one check-in entry per
person to the venue's stream shard, counts the day's entries and keeps a check-in record
for the check-out and for repeat scans. A batch (offline queue, sentinel upload) runs in one
script call on a single node, and in one call per shard, pipelined, in cluster mode.

The calls are built by :mod:`checkin.checkins.calls`, run by :mod:`checkin.checkins.scripts`, and
what they take and answer is in :mod:`checkin.checkins.wire`.

Check-in ids are 23 hex characters: the shard (3) and 80 random bits, so a check-out
finds the record's shard from the id alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from checkin.checkins.calls import (
    MAX_STAY_MS,
    Budget,
    Call,
    Item,
    ItemReply,
    add_item,
    call_group,
    location_args,
    parse_reply,
    persons_of,
    scan_instant,
    shard_of_checkin,
    start_call,
)
from checkin.checkins.refusals import reason_of, refusal
from checkin.checkins.scripts import scripts
from checkin.checkins.wire import (
    BatchIn,
    BatchOut,
    CheckinIn,
    CheckinOut,
    CheckoutOut,
    ItemResult,
    PersonOut,
    Record,
    SentinelOut,
    SentinelResult,
    VenueOut,
    record_decoder,
)
from checkin.platform.context import Context
from checkin.platform.errors import Conflict, DomainError, Gone, NotFound
from checkin.platform.instants import format_ms
from checkin.protection import REJECTIONS
from venues import codes

ACCEPTED = "checkin_accepted_total"
SCANS = "checkin_scan_entries_total"
DEDUPES = "checkin_dedupes_total"
CHECKOUTS = "checkin_checkouts_total"


def setup_metrics(metrics: Any) -> None:
    metrics.counter(ACCEPTED, "Check-ins accepted (new), by source (phone, batch, sentinel)")
    metrics.counter(SCANS, "Stream entries written for accepted check-ins (one per person), by source")
    metrics.counter(DEDUPES, "Repeat scans answered with the earlier check-in, by source")
    metrics.counter(CHECKOUTS, "Check-outs, by outcome")


@dataclass
class Tally:
    """What a request's items came to, counted in the metrics once at the end."""

    source: str
    accepted: int = 0
    entries: int = 0
    duplicates: int = 0

    def add(self, reply: ItemReply, persons: int) -> None:
        if reply.code == "ok":
            self.accepted += 1
            self.entries += persons
        elif reply.code == "dup":
            self.duplicates += 1

    def publish(self, ctx: Context) -> None:
        if self.accepted:
            ctx.metrics.inc(ACCEPTED, self.accepted, source=self.source)
            ctx.metrics.inc(SCANS, self.entries, source=self.source)
        if self.duplicates:
            ctx.metrics.inc(DEDUPES, self.duplicates, source=self.source)


def response_of(
    record: Record, duplicate: bool, degraded: bool, evaluated_at: int | None = None
) -> CheckinOut:
    people = [
        PersonOut(
            person_id=int(p.person_id),
            name_masked=p.name_masked,
            status=p.status,
            last_negative_test_at=format_ms(int(p.last_negative_test_ms))
            if p.last_negative_test_ms
            else None,
            verdict=p.verdict,
            reason=p.reason or None,
            stay_at=format_ms(int(p.stay_at_ms)) if p.stay_at_ms else None,
            stay_ends_at=format_ms(int(p.stay_ends_at_ms)) if p.stay_ends_at_ms else None,
            ended_by=p.ended_by or None,
        )
        for p in record.persons
    ]
    owner_end = people[0].stay_ends_at if people and people[0].stay_ends_at else None
    return CheckinOut(
        checkin_id=record.checkin_id,
        at=format_ms(int(record.at)),
        ends_at=owner_end or format_ms(int(record.checked_out_at or record.end)),
        venue=VenueOut(venue_id=int(record.venue_id), name=record.venue_name),
        people=people,
        duplicate=duplicate,
        degraded=degraded,
        checked_out_at=format_ms(int(record.checked_out_at)) if record.checked_out_at else None,
        evaluated_at=format_ms(evaluated_at) if evaluated_at is not None else None,
    )


# --- the ways in ----------------------------------------------------------------


def phone_item(
    index: int, persons: list[int], token_version: int, data: CheckinIn, claims: Any, at: int, source: str
) -> Item:
    """The item of a resident's scan (``claims``: the verified venue code)."""
    lat, lon, acc = location_args(data.location)
    return Item(
        index,
        claims.venue_id,
        str(claims.code_version),
        at,
        persons,
        source,
        data.client_id,
        lat,
        lon,
        acc,
        str(token_version),
        claims.kind,
    )


async def check_in(
    ctx: Context,
    owner: int,
    token_version: int,
    data: CheckinIn,
    claims: Any,
    ip: str,
    now: int,
    lite: bool,
) -> CheckinOut:
    """One phone check-in (``claims`` = the verified venue code; the owner's token version and the
    resident's and address's scan budgets are checked by the script)."""
    persons = persons_of(owner, data.companions)
    at = scan_instant(ctx, data.scanned_at, now)
    codes.check_scanned_at(claims, ctx.settings.rotating_step_s, at)
    budget = resident_budget(ctx, owner, ip)
    call = start_call(ctx, ctx.keys.shard_of(claims.venue_id), now, "l" if lite else "", budget)
    add_item(ctx, call, phone_item(0, persons, token_version, data, claims, at, "phone"))
    reply = parse_reply(await scripts(ctx).run("checkin", call.keys, call.args))[0]
    if reply.code not in ("ok", "dup"):
        raise await refusal(ctx, budget, reply.code, reply.payload, claims.venue_id, now)
    record = record_decoder.decode(reply.payload)
    tally = Tally("phone")
    tally.add(reply, len(record.persons))
    tally.publish(ctx)
    if reply.code == "ok":
        return response_of(record, False, lite)
    return response_of(record, True, lite, now)


def resident_budget(ctx: Context, owner: int, ip: str) -> Budget:
    s = ctx.settings
    return Budget("resident", str(owner), s.rate_resident_per_min, ip, s.rate_ip_per_min)


async def run_calls(ctx: Context, calls: list[Call]) -> list[tuple[Item, ItemReply]]:
    """Run the calls (pipelined) and pair each item with the script's reply to it."""
    replies = await scripts(ctx).run_many("checkin", [(c.keys, c.args) for c in calls])
    out: list[tuple[Item, ItemReply]] = []
    for call, reply in zip(calls, replies, strict=True):
        out.extend(zip(call.items, parse_reply(reply), strict=True))
    return out


async def check_in_batch(
    ctx: Context,
    owner: int,
    token_version: int,
    data: BatchIn,
    keyring_verify: Any,
    ip: str,
    now: int,
    lite: bool,
) -> tuple[BatchOut, int | None]:
    """An offline queue of one resident: each item verified and answered on its own, each counted
    against the scan budgets like a single check-in. Returns the answer and, when items were
    refused for the budget, the seconds until it has room again (Retry-After)."""
    results: list[ItemResult | None] = [None] * len(data.items)
    calls: dict[int, Call] = {}
    flags = "b" + ("l" if lite else "")
    budget = resident_budget(ctx, owner, ip)
    for index, entry in enumerate(data.items):
        try:
            claims = keyring_verify(entry.code)
            persons = persons_of(owner, entry.companions)
            at = scan_instant(ctx, entry.scanned_at, now)
            codes.check_scanned_at(claims, ctx.settings.rotating_step_s, at)
        except DomainError as exc:
            reason = reason_of(exc)
            ctx.metrics.inc(REJECTIONS, reason=reason)
            results[index] = ItemResult(index=index, status=exc.status, error=exc.detail, error_reason=reason)
            continue
        group = call_group(ctx, claims.venue_id)
        call = calls.get(group)
        if call is None:
            call = calls[group] = start_call(ctx, ctx.keys.shard_of(claims.venue_id), now, flags, budget)
        add_item(ctx, call, phone_item(index, persons, token_version, entry, claims, at, "batch"))
    answered = await run_calls(ctx, list(calls.values())) if calls else []
    if any(reply.code == "revoked" for _, reply in answered):
        # one owner, one version: every item was refused before anything was written
        raise await refusal(ctx, budget, "revoked", b"", 0, now)
    tally = Tally("batch")
    retry_after: int | None = None
    for item, reply in answered:
        tally.add(reply, len(item.persons))
        if reply.code == "ok":
            results[item.index] = ItemResult(
                item.index, 201, reply.payload.decode(), format_ms(item.at_ms), False
            )
        elif reply.code == "dup":
            results[item.index] = ItemResult(item.index, 200, reply.payload.decode(), None, True)
        else:
            err = await refusal(ctx, budget, reply.code, reply.payload, item.venue_id, now)
            retry_after = err.retry_after if reply.code == "rate" else retry_after
            results[item.index] = ItemResult(
                item.index, err.status, error=err.detail, error_reason=err.extra.get("reason")
            )
    tally.publish(ctx)
    final = [r for r in results if r is not None]
    out = BatchOut(
        accepted=tally.accepted,
        duplicates=tally.duplicates,
        rejected=len(final) - tally.accepted - tally.duplicates,
        results=final,
    )
    return out, retry_after


async def current(ctx: Context, owner: int, checkin_id: str, now: int) -> CheckinOut:
    """One of the owner's check-ins (of the last 13 h) with every person judged again now: what a
    resumed page shows, never a verdict remembered on the phone. Anyone else's, or an unknown id: 404."""
    shard = shard_of_checkin(ctx, checkin_id)
    keys = ctx.keys
    reply = await scripts(ctx).run(
        "reevaluate",
        [keys.checkin_record(shard, checkin_id)],
        [
            owner,
            now,
            ctx.settings.unknown_status,
            keys.venue_prefix(shard),
            keys.pstate_prefix(shard),
            keys.stays_prefix(shard),
        ],
    )
    if reply[0] != b"ok":
        raise NotFound(f"no check-in {checkin_id} of yours in the last 13 h")
    return response_of(record_decoder.decode(reply[1]), False, False, now)


async def check_out(ctx: Context, owner: int, checkin_id: str, now: int) -> CheckoutOut:
    shard = shard_of_checkin(ctx, checkin_id)
    reply = await scripts(ctx).run(
        "checkout",
        [ctx.keys.stream(shard), ctx.keys.checkin_record(shard, checkin_id)],
        [now, owner, MAX_STAY_MS, ctx.keys.stays_prefix(shard)],
    )
    code = reply[0].decode()
    ctx.metrics.inc(CHECKOUTS, outcome=code)
    if code == "missing":
        raise NotFound(
            f"no open check-in {checkin_id} of yours (unknown, someone else's, or older than 13 h)"
        )
    if code == "done":
        raise Conflict(f"check-in {checkin_id} was already checked out at {format_ms(int(reply[1]))}")
    if code == "early":
        raise Conflict(
            f"check-in {checkin_id} starts at {format_ms(int(reply[1]))}; it cannot end before that"
        )
    if code == "late":
        raise Gone(
            f"check-in {checkin_id} started at {format_ms(int(reply[1]))}, more than 12 h ago; "
            "the stay has already ended"
        )
    record = record_decoder.decode(reply[2])
    return CheckoutOut(
        checkin_id=checkin_id,
        at=format_ms(int(record.at)),
        ended_at=format_ms(int(reply[1])),
        people=[int(p.person_id) for p in record.persons],
    )


async def check_in_sentinel(
    ctx: Context,
    venue_id: int,
    device: str,
    scans: Sequence[tuple[int, int, str] | DomainError],
    now: int,
    lite: bool,
) -> tuple[SentinelOut, int | None]:
    """Scans at one door: per scan (person id, scan instant, the pass's token version or "" for an
    id card) or the error found while resolving it; counted against the device's scan budget.
    Returns the answer and the Retry-After of scans refused for the budget (else None)."""
    budget = Budget("device", device, ctx.settings.rate_device_per_min)
    call = start_call(ctx, ctx.keys.shard_of(venue_id), now, "l" if lite else "", budget)
    results: list[SentinelResult | None] = [None] * len(scans)
    retry_after: int | None = None
    for index, scan in enumerate(scans):
        if isinstance(scan, DomainError):
            retry_after = scan.retry_after or retry_after
            results[index] = SentinelResult(
                index=index, status=scan.status, error=scan.detail, error_reason=scan.extra.get("reason")
            )
            continue
        pid, at, version = scan
        add_item(ctx, call, Item(index, venue_id, "", at, [pid], "sentinel", token_version=version))
    tally = Tally("sentinel")
    for item, reply in await run_calls(ctx, [call]) if call.items else []:
        tally.add(reply, 1)
        if reply.code not in ("ok", "dup"):
            exc = await refusal(ctx, budget, reply.code, reply.payload, item.venue_id, now)
            retry_after = exc.retry_after if reply.code == "rate" else retry_after
            results[item.index] = SentinelResult(
                index=item.index, status=exc.status, error=exc.detail, error_reason=exc.extra.get("reason")
            )
            continue
        record = record_decoder.decode(reply.payload)
        person = record.persons[0]
        results[item.index] = SentinelResult(
            index=item.index,
            status=200 if reply.code == "dup" else 201,
            at=format_ms(int(record.at)),
            duplicate=reply.code == "dup",
            name_masked=person.name_masked,
            health_status=person.status,
            verdict=person.verdict,
            reason=person.reason or None,
        )
    tally.publish(ctx)
    final = [r for r in results if r is not None]
    out = SentinelOut(
        venue_id=venue_id,
        accepted=tally.accepted,
        duplicates=tally.duplicates,
        rejected=len(final) - tally.accepted - tally.duplicates,
        results=final,
    )
    return out, retry_after
