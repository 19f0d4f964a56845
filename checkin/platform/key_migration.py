"""``checkin migrate-keys``: rename keys of the earlier, abbreviated layout to the names now.

Run once after upgrading a Redis that holds data of the earlier layout (services stopped, or at
least the ingest API: a check-in written under an old name meanwhile would be missed). Each key
listed by :data:`checkin.platform.redis_keys.RENAMED` is renamed in place (``RENAME``, which keeps
its TTL); where the two names hash to different Redis Cluster slots it is copied (``DUMP`` /
``RESTORE`` with its remaining TTL) and the old key deleted. A key whose new name already exists
is left alone and reported. Running it again finds nothing to do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from checkin.platform.redis_keys import RENAMED


@dataclass
class MigrationReport:
    renamed: dict[str, int] = field(default_factory=dict)
    """Keys renamed, by earlier name."""
    conflicts: list[str] = field(default_factory=list)
    """Old keys left in place because the new name is taken."""

    @property
    def total(self) -> int:
        return sum(self.renamed.values())


def _candidates(client: Any, prefix: str, old: str, whole: bool) -> Iterator[bytes]:
    if whole:
        if client.exists(prefix + old):
            yield (prefix + old).encode()
        return
    pattern = prefix + old.replace("[", "\\[").replace("*", "\\*").replace("?", "\\?") + "*"
    yield from client.scan_iter(match=pattern, count=1000)


def _move(client: Any, old: bytes, new: bytes) -> bool:
    """Rename ``old`` to ``new``; False when ``new`` exists already."""
    try:
        return bool(client.renamenx(old, new))
    except redis.exceptions.ResponseError as exc:
        if "CROSSSLOT" not in str(exc):
            raise
    dumped = client.dump(old)
    if dumped is None:
        return True  # expired meanwhile
    ttl = int(client.pttl(old))
    try:
        client.restore(new, max(ttl, 0), dumped)
    except redis.exceptions.ResponseError as exc:
        if "BUSYKEY" in str(exc):
            return False
        raise
    client.delete(old)
    return True


def migrate(client: Any, prefix: str, progress: Callable[[str, int], None] | None = None) -> MigrationReport:
    """Rename every key of the earlier layout under ``prefix``; returns what was done."""
    report = MigrationReport()
    for old, new, whole in RENAMED:
        done = 0
        for key in list(_candidates(client, prefix, old, whole)):
            name = key.decode()
            rest = name[len(prefix) :]
            if whole and rest != old:
                continue
            if not whole and any(
                other != old and other.startswith(old) and rest.startswith(other) for other, _, _ in RENAMED
            ):
                continue  # a longer rule owns this key (``rules:dd:`` is not ``dd:``'s)
            target = (prefix + new + rest[len(old) :]).encode()
            if _move(client, key, target):
                done += 1
            else:
                report.conflicts.append(name)
        if done:
            report.renamed[old] = done
            if progress is not None:
                progress(old, done)
    return report
