"""Guardian links as the check-in script sees them, and what happens to them when a record changes
hands (docs/ARCHITECTURE.md, "Residents and identity").

A link owner -> person is in ``person:<owner>:companions`` and ``person:<person>:guardians``. A
link that waits for the person's confirmation is also in ``person:<person>:pending-guardians``: it
keeps its place under the owner's limit but is left out of ``cmp``, the ``,id,id,`` list in the
owner's hot state that the check-in script reads, so the owner cannot check the person in (403
``foreign_companion``) until the person confirms it.

* A dependant who takes over their record (registers with a phone they hold) puts every guardian
  link on hold (:func:`hold_guardians`).
* A phone re-bound by the health authority ends every guardian link of the person
  (:func:`end_all_guardians`).

Neither touches a stay: what was recorded stays recorded.
"""

from __future__ import annotations

from collections.abc import Iterable

from checkin.platform.context import Context

GUARDIAN_FIELD = "guardian"
"""Field of the person record naming the resident who created it as their dependant; removed when
the person takes over their record or the health authority re-binds their phone."""


async def active_companions(ctx: Context, owner: int) -> list[int]:
    """The owner's companions whose link does not wait for the companion's confirmation (sorted)."""
    members = sorted(int(m) for m in await ctx.redis.smembers(ctx.keys.companions(owner)))
    if not members:
        return []
    pipe = ctx.redis.pipeline(transaction=False)
    for m in members:
        pipe.sismember(ctx.keys.pending_guardians(m), owner)
    waiting = await pipe.execute()
    return [m for m, w in zip(members, waiting, strict=True) if not w]


async def write_companion_copies(ctx: Context, owners: Iterable[int]) -> None:
    """Rewrite ``cmp`` in the hot state of each owner (every copy) from their active companions."""
    pipe = ctx.redis.pipeline(transaction=False)
    for owner in sorted(set(owners)):
        members = await active_companions(ctx, owner)
        text = "," + ",".join(str(m) for m in members) + "," if members else ""
        for key in ctx.keys.pstate_copies(owner):
            if text:
                pipe.hset(key, "cmp", text)
            else:
                pipe.hdel(key, "cmp")
    await pipe.execute()


async def is_dependant(ctx: Context, person_id: int) -> bool:
    return bool(await ctx.redis.hexists(ctx.keys.person(person_id), GUARDIAN_FIELD))


async def claim_dependant(ctx: Context, person_id: int) -> bool:
    """Take the dependant mark off the record; True for the one caller that took it (two takeovers
    at the same moment: one wins, the other is an ordinary registration of a registered number)."""
    return bool(await ctx.redis.hdel(ctx.keys.person(person_id), GUARDIAN_FIELD))


async def hold_guardians(ctx: Context, person_id: int) -> list[int]:
    """The person took over their record: every guardian link waits for their confirmation."""
    guardians = sorted(int(g) for g in await ctx.redis.smembers(ctx.keys.guardians(person_id)))
    if guardians:
        await ctx.redis.sadd(ctx.keys.pending_guardians(person_id), *guardians)
        await write_companion_copies(ctx, guardians)
    return guardians


async def end_all_guardians(ctx: Context, person_id: int) -> list[int]:
    """Every guardian link of this person ends, confirmed or pending, and the record is no one's
    dependant any more (the health authority re-bound their phone)."""
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.smembers(ctx.keys.guardians(person_id))
    pipe.smembers(ctx.keys.pending_guardians(person_id))
    confirmed, pending = await pipe.execute()
    guardians = sorted(int(g) for g in confirmed | pending)
    pipe = ctx.redis.pipeline(transaction=False)
    for g in guardians:
        pipe.srem(ctx.keys.companions(g), person_id)
    pipe.delete(ctx.keys.guardians(person_id))
    pipe.delete(ctx.keys.pending_guardians(person_id))
    pipe.hdel(ctx.keys.person(person_id), GUARDIAN_FIELD)
    await pipe.execute()
    await write_companion_copies(ctx, guardians)
    return guardians
