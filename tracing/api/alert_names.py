"""Venue names for alert answers and the live alerts feed (a console never shows a venue as a bare id),
from the venue mirror, cached per process."""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec

from checkin.platform.context import Context
from tracing.queries import trace
from tracing.storage.store import Store

log = logging.getLogger("tracing.api.alert_names")

NAMES_TTL_S = 600.0
NAMES_CACHED = 200_000


class VenueNamer:
    """Venue names for alert answers and the live feed, from the venue mirror, cached per process for
    :data:`NAMES_TTL_S` (a name changes rarely; a day's alerts name a few thousand venues at most)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.cache: dict[int, tuple[float, str]] = {}

    async def names(self, venue_ids: set[int]) -> dict[int, str]:
        now = time.monotonic()
        fresh = {v: hit[1] for v in venue_ids if (hit := self.cache.get(v)) is not None and hit[0] > now}
        missing = [v for v in venue_ids if v not in fresh and v]
        if missing:
            try:
                found = await asyncio.to_thread(trace.venue_names, self.store, missing)
            except Exception as exc:  # a name is a courtesy: the alert goes out without it
                log.warning("alerts: venue names unavailable (%s)", exc)
                found = {}
            if len(self.cache) > NAMES_CACHED:
                self.cache.clear()
            for v in missing:
                self.cache[v] = (now + NAMES_TTL_S, found.get(v, ""))
                fresh[v] = found.get(v, "")
        return {v: name for v, name in fresh.items() if name}

    async def payload(self, payload: bytes) -> bytes:
        """The alert JSON with ``venue_name`` added (unchanged when the venue has no name)."""
        try:
            doc = msgspec.json.decode(payload)
        except msgspec.DecodeError:
            return payload
        venue = doc.get("venue_id") if isinstance(doc, dict) else None
        if not isinstance(venue, int) or isinstance(venue, bool):
            return payload
        name = (await self.names({venue})).get(venue)
        if not name:
            return payload
        doc["venue_name"] = name
        return msgspec.json.encode(doc)


def namer_of(ctx: Context, store: Store) -> VenueNamer:
    return ctx.shared("alert_venue_namer", lambda: VenueNamer(store))
