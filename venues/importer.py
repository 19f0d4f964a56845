"""CSV import of the venue registry (CLI and ``POST /v1/venues/import``); the rows are read by
:mod:`venues.csv_rows`.

The file is read as a stream and written in batches of pipelined upserts (one
Lua call per venue, single-key so it works on a Redis Cluster). Each row is
validated on its own: a bad row is reported with its line number and reason and
the good rows are imported; with ``strict`` any bad row means nothing is
written. A header that lacks a column, or names an unknown one, refuses the
whole file before anything is written. Re-importing the same file changes
nothing: an upsert only writes (and bumps ``updated_at``) when a field differs,
and never touches ``active`` or ``code_version``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import IO, Any

import msgspec
import redis

from checkin.platform.errors import Forbidden
from checkin.platform.instants import now_rfc3339, now_us
from checkin.platform.redis_keys import RedisKeys
from venues import history, registry, scripts
from venues.csv_rows import BATCH_ROWS, RowError, parse_batches
from venues.csv_rows import COLUMNS as COLUMNS  # the header an import expects
from venues.csv_rows import HeaderError as HeaderError  # a file refused for its header
from venues.model import PLACE_FIELDS, Venue

MAX_REPORTED_ERRORS = 1000

Progress = Callable[[int, int], None]
"""Called with (rows read, bytes read) after each batch."""


class ImportReport(msgspec.Struct):
    rows: int = 0
    """Data rows read (header excluded)."""
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    written: bool = True
    """False when ``strict`` refused the file because of bad rows."""
    errors: list[RowError] = msgspec.field(default_factory=list)
    errors_truncated: bool = False
    seconds: float = 0.0

    def add_error(self, error: RowError) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(error)
        else:
            self.errors_truncated = True


Actor = tuple[str, str]
"""(key id, role) of whoever imports: the venues' history names them."""
CLI_ACTOR: Actor = ("cli", "admin")


class Writer:
    """Writes batches of venues with a synchronous Redis client (CLI and the import route's thread);
    each change goes into the venue's history."""

    def __init__(self, client: Any, keys: RedisKeys, actor: Actor = CLI_ACTOR) -> None:
        self.client = client
        self.keys = keys
        self.actor = actor
        self.sha = ""

    def _load(self) -> None:
        self.sha = self.client.script_load(scripts.UPSERT_LUA)

    def write(self, venues: list[Venue], report: ImportReport) -> None:
        if not venues:
            return
        if not self.sha:
            self._load()
        stamp = now_rfc3339()
        try:
            results = self._upsert(venues, stamp)
        except redis.exceptions.NoScriptError:
            self._load()
            results = self._upsert(venues, stamp)
        stamp_us = now_us()
        pipe = self.client.pipeline(transaction=False)
        changed_ids: list[int] = []
        for venue, result in zip(venues, results, strict=True):
            code, old = int(result[0]), result[1]
            if code == 0:
                report.unchanged += 1
                continue
            if code == 2:
                report.created += 1
                change = history.entry(self.actor, "create", {}, {})
            else:
                report.updated += 1
                now_hash = venue.to_hash()
                it = iter(_text(x) for x in result[2:])
                before = dict(zip(it, it, strict=True))
                change = history.entry(self.actor, "import", before, {k: now_hash[k] for k in before})
            for cmd in history.commands(self.keys, venue.venue_id, change):
                pipe.execute_command(*cmd)
            changed_ids.append(venue.venue_id)
            old_community = _text(old)
            if old_community and old_community != venue.community:
                pipe.srem(self.keys.venue_scope_index(old_community), venue.venue_id)
        if changed_ids:
            by_id = {v.venue_id: v for v in venues}
            pipe.zadd(self.keys.venue_index(), {str(i): i for i in changed_ids})
            communities: dict[str, list[int]] = {}
            for vid in changed_ids:
                communities.setdefault(by_id[vid].community, []).append(vid)
            for community, ids in communities.items():
                pipe.sadd(self.keys.venue_scope_index(community), *ids)
            pipe.zadd(self.keys.venue_communities(), dict.fromkeys(communities, 0))
            pipe.zadd(self.keys.venue_mirror_queue(), {str(i): stamp_us for i in changed_ids})
            pipe.execute()

    def _upsert(self, venues: list[Venue], stamp: str) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for venue in venues:
            pipe.execute_command(
                "EVALSHA", self.sha, 1, self.keys.venue(venue.venue_id), *registry.data_args(venue), stamp
            )
        results: list[Any] = pipe.execute()
        return results


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def screen(
    client: Any,
    keys: RedisKeys,
    venues: list[Venue],
    scope: str,
    lines: dict[int, int],
    places_locked: bool = False,
) -> tuple[list[Venue], list[RowError]]:
    """Keep rows the caller may write: inside its jurisdiction, not moving someone else's venue, and
    (unless an admin imports: ``places_locked``) not moving any existing venue to another place."""
    errors: list[RowError] = []
    kept = _in_scope(client, keys, venues, scope, lines, errors) if scope and venues else venues
    if places_locked and kept:
        kept = _unmoved(client, keys, kept, lines, errors)
    return kept, errors


def _in_scope(
    client: Any,
    keys: RedisKeys,
    venues: list[Venue],
    scope: str,
    lines: dict[int, int],
    errors: list[RowError],
) -> list[Venue]:
    inside: list[Venue] = []
    for venue in venues:
        if venue.community.startswith(scope):
            inside.append(venue)
        else:
            errors.append(
                RowError(
                    line=lines.get(venue.venue_id, 0),
                    reason=f"community {venue.community} is outside this key's jurisdiction ({scope})",
                    venue_id=str(venue.venue_id),
                )
            )
    pipe = client.pipeline(transaction=False)
    for venue in inside:
        pipe.hget(keys.venue(venue.venue_id), "community")
    kept: list[Venue] = []
    for venue, current in zip(inside, pipe.execute() if inside else [], strict=True):
        if current is not None and not current.decode().startswith(scope):
            errors.append(
                RowError(
                    line=lines.get(venue.venue_id, 0),
                    reason=f"venue {venue.venue_id} exists outside this key's jurisdiction ({scope})",
                    venue_id=str(venue.venue_id),
                )
            )
        else:
            kept.append(venue)
    return kept


def _moved(current: list[Any], venue: Venue) -> bool:
    """True when the stored place fields (``PLACE_FIELDS``, as ``HMGET`` answers them) differ from
    the row's; an unknown venue has not moved."""
    if current[0] is None:
        return False
    for field, stored in zip(PLACE_FIELDS, current, strict=True):
        mine = getattr(venue, field)
        if isinstance(mine, float):
            try:
                if float(_text(stored)) != mine:
                    return True
            except (TypeError, ValueError):
                return True
        elif _text(stored) != mine:
            return True
    return False


def _moves(client: Any, keys: RedisKeys, venues: list[Venue]) -> list[Venue]:
    """The venues of a batch whose row would move an existing venue."""
    if not venues:
        return []
    pipe = client.pipeline(transaction=False)
    for venue in venues:
        pipe.hmget(keys.venue(venue.venue_id), *PLACE_FIELDS)
    return [v for v, current in zip(venues, pipe.execute(), strict=True) if _moved(current, v)]


def _unmoved(
    client: Any, keys: RedisKeys, venues: list[Venue], lines: dict[int, int], errors: list[RowError]
) -> list[Venue]:
    moved = {v.venue_id for v in _moves(client, keys, venues)}
    kept: list[Venue] = []
    for venue in venues:
        if venue.venue_id in moved:
            errors.append(
                RowError(
                    line=lines.get(venue.venue_id, 0),
                    reason=f"venue {venue.venue_id} would move (district, street, community, lat or lon): "
                    "only an admin changes where a venue is",
                    venue_id=str(venue.venue_id),
                )
            )
        else:
            kept.append(venue)
    return kept


class PlaceChange(Forbidden):
    """An operator's import would move existing venues: refused whole (403 ``place_change``)."""


def refuse_moves(
    client: Any, keys: RedisKeys, raw: IO[bytes], scope: str = "", batch_rows: int = BATCH_ROWS
) -> None:
    """Read the whole file once and refuse it (nothing written) when any row the caller could write
    (inside its jurisdiction) would move an existing venue: the place of a venue is the admin's to
    change, in an import as in ``PATCH``."""
    lines: dict[int, int] = {}
    moved: list[tuple[int, int]] = []
    for parsed, _errors, _nbytes in parse_batches(raw, batch_rows, lines):
        writable = _in_scope(client, keys, parsed, scope, lines, []) if scope and parsed else parsed
        moved += [(lines.get(v.venue_id, 0), v.venue_id) for v in _moves(client, keys, writable)]
    if moved:
        listed = ", ".join(f"line {line} (venue {vid})" for line, vid in moved[:10])
        more = f" and {len(moved) - 10} more" if len(moved) > 10 else ""
        raise PlaceChange(
            f"{len(moved)} row(s) would move an existing venue (district, street, community, lat or lon): "
            f"{listed}{more}. Only an admin changes where a venue is; nothing was written.",
            reason="place_change",
            lines=[line for line, _vid in moved[:MAX_REPORTED_ERRORS]],
        )


def import_stream(
    client: Any,
    keys: RedisKeys,
    raw: IO[bytes],
    *,
    strict: bool = False,
    scope: str = "",
    progress: Progress | None = None,
    batch_rows: int = BATCH_ROWS,
    actor: Actor = CLI_ACTOR,
) -> ImportReport:
    """Import a CSV byte stream; raises HeaderError (nothing written) for a bad header.

    ``scope`` (a jurisdiction prefix) refuses rows outside it, and rows whose id
    belongs to a venue outside it. Anyone but an admin gets :class:`PlaceChange` (nothing written) for
    a file with a row that would move an existing venue; ``raw`` is then read twice (it must seek).
    """
    started = time.perf_counter()
    if actor[1] != "admin":
        refuse_moves(client, keys, raw, scope, batch_rows)
        raw.seek(0)
    report = ImportReport()
    writer = Writer(client, keys, actor)
    lines: dict[int, int] = {}
    batches: Iterable[tuple[list[Venue], list[RowError], int]] = parse_batches(raw, batch_rows, lines)
    held: list[list[Venue]] = []
    for parsed, errors, nbytes in batches:
        report.rows += len(parsed) + len(errors)
        venues, refused = screen(client, keys, parsed, scope, lines, places_locked=actor[1] != "admin")
        errors.extend(refused)
        for error in errors:
            report.add_error(error)
        if strict:
            held.append(venues)
        else:
            writer.write(venues, report)
        if progress is not None:
            progress(report.rows, nbytes)
    if strict:
        if report.rejected:
            report.written = False
        else:
            for venues in held:
                writer.write(venues, report)
    report.errors.sort(key=lambda e: e.line)
    report.seconds = round(time.perf_counter() - started, 3)
    return report
