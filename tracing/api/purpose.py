"""Purpose binding of contact details (docs/ARCHITECTURE.md, "Integrity of the record").

A tracer may read the name and phone of a person only when that person is the subject of a trace
the same key ran, or was named in a trace or exposure answer given to that key, in the last
:data:`BOUND_MS`. Every answer adds its persons to a sorted set per key (score = until when the
binding holds); person ids are sequential, so without this one key could read the whole city.
"""

from __future__ import annotations

from collections.abc import Iterable

from checkin.platform.auth import Principal
from checkin.platform.context import Context
from checkin.platform.errors import Forbidden

BOUND_MS = 24 * 3_600_000
CHUNK = 5_000
"""Members per ZADD (an exposure answer may name tens of thousands)."""


async def remember(ctx: Context, principal: Principal, person_ids: Iterable[int], now_ms: int) -> None:
    """Bind these persons to the caller's key for the next 24 h."""
    key = ctx.keys.answered_persons(principal.key_id)
    until = now_ms + BOUND_MS
    ids = list(dict.fromkeys(person_ids))
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.zremrangebyscore(key, "-inf", now_ms)
    for start in range(0, len(ids), CHUNK):
        pipe.zadd(key, {str(pid): until for pid in ids[start : start + CHUNK]})
    pipe.pexpire(key, BOUND_MS)
    await pipe.execute()


async def check(ctx: Context, principal: Principal, person_id: int, now_ms: int) -> None:
    """403 ``not_traced`` unless a trace or exposure answer named the person to this key lately."""
    until = await ctx.redis.zscore(ctx.keys.answered_persons(principal.key_id), str(person_id))
    if until is None or until <= now_ms:
        raise Forbidden(
            f"person {person_id} was not the subject of, or named in, a trace or exposure answer "
            "given to this key in the last 24 h: run the trace first",
            reason="not_traced",
        )
