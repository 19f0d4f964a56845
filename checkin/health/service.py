"""The health feed: code colours, test results and the watchlist, kept in Redis.

Everything lives in the person's hot-state hash (``pstate``; one copy per stream
shard in cluster mode, every copy written), which the check-in script reads:

* ``st`` colour, ``sr`` reason, ``su`` update instant (unix ms);
* ``nt`` / ``pt`` sample instant of the latest negative / positive test (unix ms):
  a negative test counts at the door only when no positive test was sampled after it;
* ``wl`` watchlist end (unix ms), ``wlr`` its reason.

Test results only move forward (a late-arriving older result never replaces a newer
one): a small script keeps the maximum per field.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import msgspec

from checkin.platform.context import Context
from checkin.platform.errors import BadInput, NotFound, Unprocessable
from checkin.platform.instants import format_ms, now_ms, to_ms
from checkin.platform.persons import person_exists, set_hot_state

Status = Literal["green", "yellow", "red"]
TestResult = Literal["negative", "positive"]
Instant = Annotated[dt.datetime, msgspec.Meta(tz=True)]
MAX_TESTS_PER_CALL = 10_000

_KEEP_MAX = """
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > cur then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
"""


class StatusIn(msgspec.Struct, forbid_unknown_fields=True):
    status: Status
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class TestIn(msgspec.Struct, forbid_unknown_fields=True):
    person_id: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
    sampled_at: Instant
    result: TestResult


class WatchIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    until: Instant


class Watch(msgspec.Struct):
    reason: str
    until: str


class HealthState(msgspec.Struct):
    person_id: int
    status: str
    reason: str
    updated_at: str | None
    last_negative_test_at: str | None
    last_positive_test_at: str | None
    watchlist: Watch | None


class TestOutcome(msgspec.Struct, omit_defaults=True):
    index: int
    status: int
    person_id: int
    applied: bool | None = None
    error: str | None = None


class TestsReport(msgspec.Struct):
    accepted: int
    rejected: int
    results: list[TestOutcome]


async def _require_person(ctx: Context, person_id: int) -> None:
    if not (await person_exists(ctx, [person_id]))[0]:
        raise NotFound(f"person {person_id} is not registered")


async def set_status(ctx: Context, person_id: int, data: StatusIn) -> HealthState:
    await _require_person(ctx, person_id)
    await set_hot_state(ctx, person_id, {"st": data.status, "sr": data.reason, "su": str(now_ms())})
    return await get_state(ctx, person_id)


async def record_tests(ctx: Context, tests: Sequence[TestIn]) -> TestsReport:
    if len(tests) > MAX_TESTS_PER_CALL:
        raise BadInput(f"at most {MAX_TESTS_PER_CALL} test results per call; got {len(tests)}")
    now = now_ms()
    exists = await person_exists(ctx, [t.person_id for t in tests])
    script = ctx.redis.register_script(_KEEP_MAX)
    pipe = ctx.redis.pipeline(transaction=False)
    results: list[TestOutcome] = []
    pending: list[tuple[int, int]] = []  # (result index, commands queued)
    for i, test in enumerate(tests):
        at = to_ms(test.sampled_at)
        if not exists[i]:
            results.append(TestOutcome(i, 404, test.person_id, error="person is not registered"))
            continue
        if at > now + 300_000:
            results.append(TestOutcome(i, 422, test.person_id, error="sampled_at is in the future"))
            continue
        field = "nt" if test.result == "negative" else "pt"
        copies = ctx.keys.pstate_copies(test.person_id)
        for key in copies:
            await script(keys=[key], args=[field, at], client=pipe)
        results.append(TestOutcome(i, 200, test.person_id))
        pending.append((len(results) - 1, len(copies)))
    if pending:
        replies = iter(await pipe.execute())
        for index, count in pending:
            applied = [bool(next(replies)) for _ in range(count)]
            results[index].applied = any(applied)
    accepted = sum(1 for r in results if r.status == 200)
    return TestsReport(accepted=accepted, rejected=len(results) - accepted, results=results)


async def set_watch(ctx: Context, person_id: int, data: WatchIn) -> HealthState:
    until = to_ms(data.until)
    if until <= now_ms():
        raise Unprocessable("until: must be in the future", reason="in_past")
    await _require_person(ctx, person_id)
    await set_hot_state(ctx, person_id, {"wl": str(until), "wlr": data.reason})
    return await get_state(ctx, person_id)


async def clear_watch(ctx: Context, person_id: int) -> None:
    await _require_person(ctx, person_id)
    pipe = ctx.redis.pipeline(transaction=False)
    for key in ctx.keys.pstate_copies(person_id):
        pipe.hdel(key, "wl", "wlr")
    await pipe.execute()


def _opt_ms(raw: Any) -> str | None:
    if raw is None or raw == b"" or raw == b"0":
        return None
    return format_ms(int(raw))


async def get_state(ctx: Context, person_id: int) -> HealthState:
    await _require_person(ctx, person_id)
    key = ctx.keys.pstate_copies(person_id)[0]
    st, sr, su, nt, pt, wl, wlr = await ctx.redis.hmget(key, "st", "sr", "su", "nt", "pt", "wl", "wlr")
    watch = None
    if wl is not None and int(wl) > now_ms():
        watch = Watch(reason=(wlr or b"").decode(), until=format_ms(int(wl)))
    return HealthState(
        person_id=person_id,
        status=st.decode() if st else ctx.settings.unknown_status,
        reason=(sr or b"").decode(),
        updated_at=_opt_ms(su),
        last_negative_test_at=_opt_ms(nt),
        last_positive_test_at=_opt_ms(pt),
        watchlist=watch,
    )
