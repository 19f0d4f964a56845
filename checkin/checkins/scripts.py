"""The check-in, check-out and re-evaluation scripts: their Lua sources (``verdict.lua`` and
``stays.lua`` prepended to the scripts that use them) and how they run, over :class:`HotRedis` on a
single node and over the redis-py cluster client in cluster mode."""

from __future__ import annotations

import asyncio
import hashlib
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError, RedisError

from checkin.platform.context import Context
from checkin.platform.errors import Unavailable
from checkin.platform.hot_redis import hot_of


def _lua(name: str) -> str:
    return (resources.files("checkin.checkins") / name).read_text(encoding="utf-8")


VERDICT_LUA = _lua("verdict.lua")
STAYS_LUA = _lua("stays.lua")
CHECKIN_LUA = VERDICT_LUA + STAYS_LUA + _lua("checkin.lua")
REEVALUATE_LUA = VERDICT_LUA + STAYS_LUA + _lua("reevaluate.lua")
CHECKOUT_LUA = STAYS_LUA + _lua("checkout.lua")


class Scripts:
    """The check-in and check-out scripts and how to run them: over :class:`HotRedis` on a single
    node, over the redis-py cluster client (slot routing) in cluster mode."""

    def __init__(self, ctx: Context) -> None:
        self.sources = {
            name: src.encode()
            for name, src in (
                ("checkin", CHECKIN_LUA),
                ("checkout", CHECKOUT_LUA),
                ("reevaluate", REEVALUATE_LUA),
            )
        }
        self.shas = {name: hashlib.sha1(src).hexdigest().encode() for name, src in self.sources.items()}  # noqa: S324
        self.hot = hot_of(ctx)
        self.redis = ctx.redis
        self.cluster_scripts = {name: ctx.redis.register_script(src) for name, src in self.sources.items()}

    async def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        try:
            if self.hot is not None:
                return await self.hot.evalsha(self.sources[name], self.shas[name], keys, args)
            return await self.cluster_scripts[name](keys=keys, args=args)
        except (ConnectionError, OSError, TimeoutError, RedisError) as exc:
            raise Unavailable(
                f"the check-in store is unavailable ({type(exc).__name__}); retry shortly", retry_after=2
            ) from exc

    async def run_many(self, name: str, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        if self.hot is not None or len(calls) == 1:
            return list(await asyncio.gather(*(self.run(name, k, a) for k, a in calls)))
        try:
            # redis-py refuses Script objects in a cluster pipeline; a raw EVALSHA is routed by its
            # keys (one slot per call), and a node that lost its script cache (a promoted replica)
            # gets the script loaded on every primary before the calls are sent again.
            replies = await self._cluster_evalsha(name, calls)
            if any(isinstance(r, NoScriptError) for r in replies):
                await self.redis.script_load(self.sources[name])
                replies = await self._cluster_evalsha(name, calls)
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            return replies
        except (ConnectionError, OSError, TimeoutError, RedisError) as exc:
            raise Unavailable(
                f"the check-in store is unavailable ({type(exc).__name__}); retry shortly", retry_after=2
            ) from exc

    async def _cluster_evalsha(self, name: str, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for keys, args in calls:
            pipe.execute_command("EVALSHA", self.shas[name], len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))

    def close(self) -> None:
        if self.hot is not None:
            self.hot.close()


def scripts(ctx: Context) -> Scripts:
    return ctx.shared("checkin_scripts", lambda: Scripts(ctx))


async def load_scripts(ctx: Context) -> None:
    """Load the scripts at start, so the first check-in is not a NOSCRIPT round."""
    s = scripts(ctx)
    for src in s.sources.values():
        await ctx.redis.script_load(src)
