"""The one dead-letter policy: an entry that cannot be used never blocks its stream.

An entry is dead when it cannot be decoded, when the store rejects it as data, or when it was
delivered ``max_tries`` times without landing. A dead entry is written once to a capped
dead-letter stream (source stream index, id, reason, its fields, the consumer, when) and
acknowledged in its group at the same time, so the stream keeps moving and nothing is lost
without a trace. Groups that share a source stream with a group that keeps dead letters (the rule
engine reads the scan shards the sink dead-letters) only acknowledge and count: ``stream=None``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from checkin.platform.metrics import Metrics
from tracing.streams.group import Entry, GroupReader, text

log = logging.getLogger("tracing.streams.dead_letters")

MAXLEN = 100_000
REASON_CHARS = 500

DeadItem = tuple[int, bytes, Sequence[bytes] | None, str]
"""(stream index, entry id, raw fields or None, reason)."""


@dataclass
class DeadLetters:
    reader: GroupReader
    stream: str | None
    """Dead-letter stream; None = acknowledge and count only (another group keeps them)."""
    metrics: Metrics
    counter: str
    """Counter of dead entries (labelled by the first word of the reason)."""
    max_tries: int = 5
    maxlen: int = MAXLEN
    sent: int = 0

    async def send(self, items: Sequence[DeadItem]) -> None:
        if not items:
            return
        redis = self.reader.redis
        pipe = redis.pipeline(transaction=False)
        now_ms = str(int(time.time() * 1000))
        for n, entry_id, flat, reason in items:
            if self.stream is not None:
                fields: dict[str, str] = {}
                if flat is not None:
                    it = iter(flat)
                    fields = {
                        bytes(k).decode("utf-8", "replace"): bytes(v).decode("utf-8", "replace")
                        for k, v in zip(it, it, strict=False)
                    }
                pipe.xadd(
                    self.stream,
                    {
                        "shard": str(n),
                        "id": entry_id,
                        "reason": reason[:REASON_CHARS],
                        "fields": json.dumps(fields, ensure_ascii=False),
                        "consumer": self.reader.consumer,
                        "at": now_ms,
                    },
                    maxlen=self.maxlen,
                    approximate=True,
                )
            pipe.xack(self.reader.streams[n], self.reader.group, entry_id)
        await pipe.execute()
        for _, entry_id, _, reason in items:
            log.warning("%s: entry %s dead: %s", self.reader.group, text(entry_id), reason)
            self.metrics.inc(self.counter, reason=reason.split(":")[0][:40])
        self.sent += len(items)

    async def sweep(self, idle_ms: int) -> None:
        """Dead-letter idle entries delivered ``max_tries`` times without being acknowledged."""
        found = await self.reader.delivered_too_often(idle_ms, self.max_tries)
        items: list[DeadItem] = []
        for n, entries, tries in found:
            for entry in entries:
                entry_id: Any = bytes(entry[0])
                items.append(
                    (n, entry_id, entry[1], f"delivered {tries.get(entry_id, 0)} times without landing")
                )
        await self.send(items)

    def item(self, n: int, entry: Entry, reason: str) -> DeadItem:
        return (n, bytes(entry[0]), entry[1], reason)
