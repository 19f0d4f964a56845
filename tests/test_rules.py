"""Each rule fires exactly when it should, fed through the real scan streams and Redis state."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from checkin.platform.instants import format_ms, local_day
from checkin.platform.scan_stream import decode_scan
from checkin.platform.settings import Settings
from tests.support.rules import BASE_MS, Clock, Harness, scan, venue
from tracing.rules import checks as rc
from tracing.streams.group import fields_of

HOUR = 3_600_000


def kinds(alerts: list[Any]) -> list[str]:
    return sorted(a.kind for a in alerts)


# --- pure functions -------------------------------------------------------------------------------


def _travel(kmh_needed: float, distance_lat: float = 0.09) -> tuple[list[rc.Candidate], float]:
    cfg = rc.RuleConfig(enabled=frozenset(["impossible_travel"]))
    a, b = venue(1, lat=31.2, lon=121.4), venue(2, lat=31.2 + distance_lat, lon=121.4)
    km = rc.haversine_km(a.lat, a.lon, b.lat, b.lon)
    minutes_ms = round(km / kmh_needed * HOUR)
    prev = rc.PreviousCheckin(at_ms=BASE_MS, lat=a.lat, lon=a.lon, venue_id=1)
    return rc.travel_rule(scan(b, 7, BASE_MS + minutes_ms), prev, cfg), km


def test_impossible_travel_boundary_149_vs_151_kmh() -> None:
    slow, km = _travel(149.0)
    assert 9.9 < km < 10.1 and slow == []
    fast, _ = _travel(151.0)
    assert [c.kind for c in fast] == ["impossible_travel"]
    assert 150.5 < fast[0].details["kmh"] < 151.5 and fast[0].details["from_venue_id"] == 1


def test_impossible_travel_needs_more_than_min_distance() -> None:
    near, km = _travel(10_000.0, distance_lat=0.0175)  # ~1.95 km in under a minute
    assert km < 2.0 and near == []
    far, km = _travel(10_000.0, distance_lat=0.0185)  # ~2.06 km
    assert km > 2.0 and [c.kind for c in far] == ["impossible_travel"]


def test_remote_scan_threshold_and_accuracy() -> None:
    cfg = rc.RuleConfig(enabled=frozenset(["remote_scan"]))
    v = venue(1, lat=31.2, lon=121.4)
    inside = scan(v, 1, lat=31.2 + 0.0089, lon=121.4)  # ~0.99 km
    outside = scan(v, 1, lat=31.2 + 0.0091, lon=121.4)  # ~1.01 km
    fuzzy = scan(v, 1, lat=31.2 + 0.0091, lon=121.4, accuracy_m=50.0)
    assert rc.remote_rule(inside, cfg) == []
    assert [c.kind for c in rc.remote_rule(outside, cfg)] == ["remote_scan"]
    assert rc.remote_rule(fuzzy, cfg) == []  # within the phone's own error
    assert rc.remote_rule(scan(v, 1), cfg) == []  # no location sent


def test_local_day_follows_the_configured_zone() -> None:
    utc_day = time.strftime("%Y%m%d", time.gmtime(BASE_MS / 1000))
    next_day = time.strftime("%Y%m%d", time.gmtime(BASE_MS / 1000 + 86_400))
    assert local_day(BASE_MS, "UTC") == utc_day
    assert local_day(BASE_MS, "Asia/Shanghai") == next_day  # 04:26 local


# --- through the streams -------------------------------------------------------------------------------


async def test_door_rules_fire_only_on_matching_check_ins(settings: Settings, redis_client: Any) -> None:
    h = Harness(settings, redis_client)
    v = venue(11)
    await h.add_venues(v)
    alerts = await h.run(
        scan(v, 1, status="red", verdict="deny", reason="red_code"),
        scan(v, 2, status="yellow", verdict="restricted"),
        scan(v, 3, verdict="deny", reason="test_expired"),
        scan(v, 4, watchlisted=True),
        scan(v, 5),
        scan(v, 6, kind="out", status="red", watchlisted=True, end_ms=BASE_MS + 60_000),
    )
    assert sorted((a.kind, a.person_id) for a in alerts) == [
        ("red_code_entry", 1),
        ("test_expired_entry", 3),
        ("watchlist_entry", 4),
        ("yellow_code_entry", 2),
    ]
    red = next(a for a in alerts if a.kind == "red_code_entry")
    assert red.severity == "critical" and red.venue_id == 11 and red.community == v.community
    assert red.at == format_ms(BASE_MS) and red.at.endswith("T20:26:40.000Z") and red.district == v.district
    assert await h.pending() == 0  # everything acked
    assert [a.alert_id for _, a in await h.stream_alerts()] == [a.alert_id for a in alerts]


async def test_watchlist_expiry_is_the_flag_at_scan_time(settings: Settings, redis_client: Any) -> None:
    h = Harness(settings, redis_client)
    v1, v2 = venue(12), venue(13)
    # on the watchlist at the first scan; the entry expired before the second (the door clears the flag)
    first = await h.run(scan(v1, 9, watchlisted=True))
    second = await h.run(scan(v2, 9, BASE_MS + HOUR, watchlisted=False))
    assert kinds(first) == ["watchlist_entry"] and second == []


async def test_disabled_rules_raise_nothing(make_settings: Any, redis_client: Any) -> None:
    h = Harness(make_settings(rules_enabled="yellow_code_entry"), redis_client)
    v = venue(14)
    alerts = await h.run(scan(v, 1, status="red", watchlisted=True), scan(v, 2, status="yellow"))
    assert kinds(alerts) == ["yellow_code_entry"]


async def test_capacity_exactly_reached_vs_exceeded(settings: Settings, redis_client: Any) -> None:
    clock = Clock()
    h = Harness(settings, redis_client, clock)
    v = venue(21, capacity=3)
    await h.add_venues(v)
    assert await h.run(*(scan(v, p) for p in (1, 2, 3))) == []  # exactly at capacity
    over = await h.run(scan(v, 4))
    assert kinds(over) == ["capacity_exceeded"]
    assert (
        over[0].person_id is None and over[0].details["occupancy"] == 4 and over[0].details["capacity"] == 3
    )
    assert await h.run(scan(v, 5)) == []  # once per venue and hour
    clock.ms += HOUR - 60_000  # next hour; the first four stays have 1 min left, still inside
    assert kinds(await h.run(scan(v, 6, clock.ms))) == ["capacity_exceeded"]


async def test_capacity_counts_only_open_stays(settings: Settings, redis_client: Any) -> None:
    clock = Clock()
    h = Harness(settings, redis_client, clock)
    v = venue(22, capacity=2, dwell_minutes=30)
    free = venue(23, capacity=0)
    await h.add_venues(v, free)
    first = scan(v, 1)
    await h.run(first, scan(v, 2))
    # a check-out ends person 1's stay: the third arrival makes 2, not 3
    out = scan(v, 1, kind="out", checkin_id=first.checkin_id, end_ms=BASE_MS + 60_000)
    clock.ms += 120_000
    assert await h.run(out, scan(v, 3, clock.ms)) == []
    # after the dwell time the old stays are over
    clock.ms = BASE_MS + 33 * 60_000  # person 3 (arrived at +2 min) left at +32 min
    assert await h.run(scan(v, 4, clock.ms), scan(v, 5, clock.ms)) == []
    # capacity 0 means no rule
    assert await h.run(*(scan(free, p) for p in range(10, 20))) == []


async def test_exposure_site_period_covers_the_scan(settings: Settings, redis_client: Any) -> None:
    h = Harness(settings, redis_client)
    v, other = venue(31), venue(32)
    site = {"site_id": "s1", "venue_id": 31, "since_ms": BASE_MS, "until_ms": BASE_MS + 2 * HOUR}
    await redis_client.hset(h.ctx.keys.exposure_sites(), "s1", msgspec.json.encode(site))
    await redis_client.incr(h.ctx.keys.exposure_sites_gen())
    alerts = await h.run(
        scan(v, 1, BASE_MS - 1),
        scan(v, 2, BASE_MS),
        scan(v, 3, BASE_MS + 2 * HOUR - 1),
        scan(v, 4, BASE_MS + 2 * HOUR),
        scan(other, 5, BASE_MS + HOUR),
    )
    assert sorted(a.person_id for a in alerts) == [2, 3]
    assert {a.kind for a in alerts} == {"exposure_site_visit"} and alerts[0].details["site_ids"] == ["s1"]
    # removing the site (generation bump) stops the rule
    await redis_client.hdel(h.ctx.keys.exposure_sites(), "s1")
    await redis_client.incr(h.ctx.keys.exposure_sites_gen())
    assert await h.run(scan(v, 6, BASE_MS + HOUR)) == []


async def test_impossible_travel_through_the_streams(settings: Settings, redis_client: Any) -> None:
    h = Harness(settings, redis_client)
    a, b = venue(41, lat=31.2, lon=121.4), venue(42, lat=31.29, lon=121.4)  # 10 km apart
    far = venue(43, lat=31.2 + 0.9, lon=121.4)  # 100 km from a
    assert await h.run(scan(a, 1, BASE_MS)) == []
    assert await h.run(scan(b, 1, BASE_MS + 4_500_000)) == []  # 10 km in 75 min
    fast = await h.run(scan(far, 1, BASE_MS + 4_500_000 + 20 * 60_000))  # then 90 km in 20 min
    assert kinds(fast) == ["impossible_travel"] and fast[0].details["from_venue_id"] == 42
    # another person doing the same trip slowly raises nothing
    assert await h.run(scan(a, 2, BASE_MS), scan(far, 2, BASE_MS + 2 * HOUR)) == []


async def test_remote_scan_through_the_streams(settings: Settings, redis_client: Any) -> None:
    h = Harness(settings, redis_client)
    v = venue(51, lat=31.2, lon=121.4)
    alerts = await h.run(
        scan(v, 1, lat=31.25, lon=121.4, accuracy_m=20.0),
        scan(v, 2, lat=31.2005, lon=121.4, accuracy_m=20.0),
    )
    assert [(a.kind, a.person_id) for a in alerts] == [("remote_scan", 1)]
    assert 5.4 < alerts[0].details["distance_km"] < 5.7


async def test_dedupe_per_kind_person_venue_local_day(settings: Settings, redis_client: Any) -> None:
    h = Harness(settings, redis_client)
    v1, v2 = venue(61), venue(62)
    red = {"status": "red", "verdict": "deny"}
    first = await h.run(scan(v1, 1, **red), scan(v1, 1, BASE_MS + 60_000, **red))
    assert kinds(first) == ["red_code_entry"]
    assert kinds(await h.run(scan(v2, 1, BASE_MS + 120_000, **red))) == ["red_code_entry"]  # other venue
    assert kinds(await h.run(scan(v1, 2, **red))) == ["red_code_entry"]  # other person
    # 19:30 local is still the same day; 00:30 the next local day is not
    assert await h.run(scan(v1, 1, BASE_MS + 15 * HOUR, **red)) == []
    assert kinds(await h.run(scan(v1, 1, BASE_MS + 20 * HOUR, **red))) == ["red_code_entry"]


async def test_dedupe_holds_across_restarts(settings: Settings, redis_client: Any) -> None:
    import redis.asyncio as aioredis

    v = venue(71)
    h1 = Harness(settings, redis_client, name="before")
    assert kinds(await h1.run(scan(v, 1, status="red"))) == ["red_code_entry"]
    # a new process: new client, new engine, new consumer name; only Redis carries over
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        h2 = Harness(settings, client, name="after")
        assert await h2.run(scan(v, 1, BASE_MS + 600_000, status="red")) == []
        assert kinds(await h2.run(scan(v, 1, BASE_MS + 600_000, status="yellow"))) == ["yellow_code_entry"]
    finally:
        await client.aclose()
    assert len(await h1.stream_alerts()) == 2


async def test_crash_before_ack_republishes_the_same_alert_once(
    make_settings: Any, redis_client: Any
) -> None:
    settings = make_settings(sink_claim_idle_ms=1)
    v = venue(72)
    h1 = Harness(settings, redis_client, name="crashed")
    await h1.consumer.setup()
    await h1.xadd(scan(v, 1, status="red"), scan(v, 2, status="red"))
    entries = await h1.consumer._read()
    published = await h1.engine.process([(s, decode_scan(e[0], fields_of(e[1]))) for s, e in entries])
    assert len(published) == 2  # ... and the process dies before XACK
    assert await h1.pending() == 2
    h2 = Harness(settings, redis_client, name="successor")
    again = await h2.run()  # reclaims the idle entries
    assert sorted(a.alert_id for a in again) == sorted(a.alert_id for a in published)
    assert await h2.pending() == 0
    assert await h2.run(scan(v, 1, BASE_MS + 1000, status="red")) == []  # still deduped


async def test_poison_entry_is_acked_and_the_shard_keeps_moving(
    settings: Settings, redis_client: Any
) -> None:
    h = Harness(settings, redis_client)
    v = venue(81)
    await h.consumer.setup()
    await redis_client.xadd(h.ctx.keys.stream(h.ctx.keys.shard_of(81)), {"t": "in", "cid": "x", "at": "nope"})
    alerts = await h.run(scan(v, 1, status="red"))
    assert kinds(alerts) == ["red_code_entry"] and await h.pending() == 0


async def test_rule_state_keys_expire(settings: Settings, redis_client: Any) -> None:
    h = Harness(settings, redis_client)
    v, w = venue(91, capacity=5), venue(92, lat=31.3)
    await h.add_venues(v)
    await h.run(scan(v, 1, status="red"), scan(w, 1, BASE_MS + HOUR))
    keys = h.ctx.keys
    for key in (
        keys.occupancy(91),
        keys.last_checkin(1),
        keys.rule_dedupe("red_code_entry", 1, 91, local_day(BASE_MS, settings.tz)),
    ):
        ttl = await redis_client.pttl(key)
        assert ttl > 0, key
    assert await redis_client.pttl(keys.alerts_stream()) == -1  # capped by MAXLEN, not expired
