"""One consumer of one consumer group over a set of streams: the scan shards, or the alerts stream.

:class:`GroupReader` is the only code that speaks XREADGROUP, XAUTOCLAIM, XCLAIM, XPENDING and XACK.
It reads every stream of the set in one command on a single node and one command per stream on a
Redis Cluster (a stream is one hash slot), recovers from a deleted stream or group (NOGROUP:
the group is created again and the read answers nothing), reclaims entries left idle by a dead
consumer, resets the idle time of entries this consumer still holds, acknowledges in packed
pipelines, and trims what every group on a stream has acknowledged.

Replies are kept raw, as Redis sends them: an entry is ``[entry_id, [field, value, ...] | None]``
(``None`` when the entry was deleted after delivery). The reader therefore owns its connection:
it turns redis-py's reply parsing off for those commands, which must not happen on a client the
rest of the service shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from typing import Any

import hiredis
import redis.exceptions

Entry = Sequence[Any]
"""``[entry_id, [field, value, ...] | None]``."""
ByStream = list[tuple[int, list[Entry]]]
"""Entries grouped by the index of their stream in the reader's set."""

RAW_COMMANDS = ("XREADGROUP", "XAUTOCLAIM", "XCLAIM", "XPENDING", "XRANGE")
ACK_CHUNK = 10_000
"""Entry ids per XACK / XCLAIM command."""
CLAIM_COUNT = 1000


def consumer_name(kind: str) -> str:
    """Unique per process and start, so several processes can share a group."""
    return f"{kind}-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_id(entry_id: bytes | str) -> tuple[int, int]:
    ms, _, seq = text(entry_id).partition("-")
    return int(ms), int(seq or 0)


def fields_of(flat: Sequence[bytes] | None) -> dict[bytes, bytes]:
    """The field map of a raw entry (empty for a deleted one)."""
    if not flat:
        return {}
    it = iter(flat)
    return {bytes(k): bytes(v) for k, v in zip(it, it, strict=False)}


def _by_stream(reply: Any) -> list[tuple[Any, list[Entry]]]:
    """An XREADGROUP reply (RESP2 list or RESP3 map) as [(stream, entries)]."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return list(reply.items())
    return [(item[0], item[1]) for item in reply]


def _info_field(info: Mapping[Any, Any], name: str) -> Any:
    return info.get(name, info.get(name.encode()))


class GroupReader:
    def __init__(
        self,
        redis_client: Any,
        streams: Sequence[str],
        group: str,
        consumer: str,
        *,
        cluster: bool = False,
        also_create: Sequence[str] = (),
    ) -> None:
        """``also_create``: other groups to create with this one (the sink creates the rules group
        too, so trimming keeps entries the rule engine has not read even before it first starts)."""
        self.redis = redis_client
        self.streams = list(streams)
        self.group = group
        self.consumer = consumer
        self.cluster = cluster
        self.groups = (group, *also_create)
        self._index = {s.encode(): n for n, s in enumerate(self.streams)}
        self._cursors = ["0-0"] * len(self.streams)
        for command in RAW_COMMANDS:
            self.redis.set_response_callback(command, lambda response, **_: response)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.redis.aclose()

    # --- the group --------------------------------------------------------------------------------
    async def ensure(self) -> None:
        """Create the group(s) on every stream, reading from its start (idempotent)."""
        for stream in self.streams:
            for group in self.groups:
                try:
                    await self.redis.xgroup_create(stream, group, id="0", mkstream=True)
                except redis.exceptions.ResponseError as exc:
                    if "BUSYGROUP" not in str(exc):
                        raise

    async def _recovering(self, command: Any) -> Any:
        """Run a group command; a missing stream or group (NOGROUP) is created again and the command
        answers None this time."""
        try:
            return await command
        except redis.exceptions.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
        await self.ensure()
        return None

    # --- reading ------------------------------------------------------------------------------------
    async def read(self, count: int, block_ms: int = 0) -> ByStream:
        """New entries for this consumer, by stream."""
        if self.cluster:  # one slot per stream: one command per stream
            out: ByStream = []
            for n, stream in enumerate(self.streams):
                reply = await self._recovering(
                    self.redis.execute_command(
                        "XREADGROUP",
                        "GROUP",
                        self.group,
                        self.consumer,
                        "COUNT",
                        count,
                        "STREAMS",
                        stream,
                        ">",
                    )
                )
                out += [(n, entries) for _, entries in _by_stream(reply) if entries]
            if not out and block_ms:
                await asyncio.sleep(min(block_ms, 50) / 1000)
            return out
        args: list[Any] = ["XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", count]
        if block_ms:
            args += ["BLOCK", block_ms]
        args += ["STREAMS", *self.streams, *([">"] * len(self.streams))]
        reply = await self._recovering(self.redis.execute_command(*args))
        return [(self._index[bytes(stream)], entries) for stream, entries in _by_stream(reply) if entries]

    async def claim_idle(self, idle_ms: int, count: int = CLAIM_COUNT) -> ByStream:
        """Entries idle longer than ``idle_ms`` on any consumer, taken over (XAUTOCLAIM, resumable)."""
        out: ByStream = []
        for n, stream in enumerate(self.streams):
            reply = await self._recovering(
                self.redis.execute_command(
                    "XAUTOCLAIM", stream, self.group, self.consumer, idle_ms, self._cursors[n], "COUNT", count
                )
            )
            if reply is None:
                continue
            self._cursors[n] = text(reply[0])
            live = [e for e in reply[1] or () if e is not None and e[1] is not None]
            if live:
                out.append((n, live))
        return out

    async def delivered_too_often(
        self, idle_ms: int, max_tries: int, count: int = CLAIM_COUNT
    ) -> list[tuple[int, list[Entry], dict[bytes, int]]]:
        """Idle entries delivered ``max_tries`` times or more, taken over: (stream, entries, tries)."""
        out: list[tuple[int, list[Entry], dict[bytes, int]]] = []
        for n, stream in enumerate(self.streams):
            rows = await self._recovering(
                self.redis.execute_command("XPENDING", stream, self.group, "IDLE", idle_ms, "-", "+", count)
            )
            tries = {bytes(r[0]): int(r[3]) for r in rows or () if int(r[3]) >= max_tries}
            if not tries:
                continue
            claimed = await self.redis.execute_command(
                "XCLAIM", stream, self.group, self.consumer, idle_ms, *tries
            )
            entries = [e for e in claimed or () if e is not None]
            if entries:
                out.append((n, entries, tries))
        return out

    async def fetch(self, n: int, entry_id: bytes) -> Entry | None:
        """One entry of stream ``n`` by id, or None when it is gone."""
        found = await self.redis.execute_command("XRANGE", self.streams[n], entry_id, entry_id)
        return found[0] if found else None

    # --- acknowledging ------------------------------------------------------------------------------
    async def ack(self, ids_by_stream: Mapping[int, Sequence[bytes]]) -> None:
        await self._send_many(self._chunked("XACK", ids_by_stream))

    async def touch(self, ids_by_stream: Mapping[int, Sequence[bytes]]) -> None:
        """Reset the idle time of entries this consumer holds, so nobody reclaims them."""
        commands = [
            [
                b"XCLAIM",
                self.streams[n].encode(),
                self.group.encode(),
                self.consumer.encode(),
                b"0",
                *ids,
                b"JUSTID",
            ]
            for n, all_ids in ids_by_stream.items()
            for ids in _chunks(all_ids)
        ]
        await self._send_many(commands)

    def _chunked(self, command: str, ids_by_stream: Mapping[int, Sequence[bytes]]) -> list[list[bytes]]:
        return [
            [command.encode(), self.streams[n].encode(), self.group.encode(), *ids]
            for n, all_ids in ids_by_stream.items()
            for ids in _chunks(all_ids)
        ]

    async def _send_many(self, commands: list[list[bytes]]) -> None:
        """Pipelined commands with many arguments, packed by hiredis (redis-py's packer costs
        microseconds per argument: more than the whole ack on the server)."""
        if not commands:
            return
        if self.cluster:
            pipe = self.redis.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(command[0].decode(), *command[1:])  # routed by a str command name
            await pipe.execute()
            return
        pool = self.redis.connection_pool
        conn = await pool.get_connection()
        try:
            packed: list[bytes] = [hiredis.pack_command(tuple(c)) for c in commands]  # type: ignore[arg-type]
            await conn.send_packed_command(packed)
            errors = []
            for _ in commands:
                try:
                    await conn.read_response()
                except redis.exceptions.ResponseError as exc:
                    errors.append(exc)
            if errors:
                raise errors[0]
        except BaseException:
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)

    # --- trimming -----------------------------------------------------------------------------------
    async def trim_acknowledged(self) -> None:
        """XTRIM MINID to the lowest id some group on the stream still needs (its first pending
        entry, or the one after its last delivered), so no group loses an unread entry."""
        for stream in self.streams:
            try:
                infos = await self.redis.xinfo_groups(stream)
            except redis.exceptions.ResponseError:
                continue  # the stream is gone: nothing to trim
            floor: tuple[int, int] | None = None
            for info in infos:
                name = _info_field(info, "name")
                summary = None
                if int(_info_field(info, "pending") or 0):
                    # entries may be acked between XINFO and XPENDING: then nothing is pending
                    summary = await self.redis.execute_command("XPENDING", stream, name)
                if summary and summary[1] is not None:
                    need = parse_id(summary[1])
                else:
                    ms, seq = parse_id(_info_field(info, "last-delivered-id") or b"0-0")
                    need = (ms, seq + 1)
                floor = need if floor is None else min(floor, need)
            if floor is not None and floor > (0, 1):
                await self.redis.execute_command("XTRIM", stream, "MINID", f"{floor[0]}-{floor[1]}")


def _chunks(ids: Sequence[bytes]) -> list[Sequence[bytes]]:
    return [ids[i : i + ACK_CHUNK] for i in range(0, len(ids), ACK_CHUNK)]
