"""Exposure screening of sites for a tracer: everyone with a stay at a site's venue overlapping the
site's window. A scoped key may screen only venues of its jurisdiction (403, audited). The persons found
are bound to the key for contact details (:mod:`tracing.answers.purpose`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from checkin.platform import persons
from checkin.platform.errors import Forbidden
from checkin.platform.instants import format_ms, now_ms
from tracing.answers import purpose
from tracing.answers.calls import in_thread
from tracing.answers.inquiry import Inquiry
from tracing.queries import trace


class ExposureOut(msgspec.Struct, omit_defaults=True):
    person_id: int
    venue_ids: list[int]
    first_at: str
    name: str = ""
    """Masked; empty for a person not registered."""


class ExposuresResponse(msgspec.Struct):
    sites: int
    count: int
    exposures: list[ExposureOut]
    venue_names: dict[int, str] = msgspec.field(default_factory=dict)


@dataclass(frozen=True)
class Exposures:
    """What a screening found, with the masked names of the persons and the names of the venues."""

    sites: int
    found: list[trace.Exposure]
    names: dict[int, str]
    venue_names: dict[int, str]

    def body(self) -> ExposuresResponse:
        return ExposuresResponse(
            sites=self.sites,
            count=len(self.found),
            exposures=[
                ExposureOut(
                    person_id=e.person_id,
                    venue_ids=sorted(e.venues),
                    first_at=format_ms(e.first_ms),
                    name=self.names.get(e.person_id, ""),
                )
                for e in self.found
            ],
            venue_names=self.venue_names,
        )


async def exposures(inq: Inquiry, sites: list[trace.Site], format: str) -> Exposures:
    """Screen the sites (each window already checked); ``format`` is recorded in the audit row."""
    params: dict[str, Any] = {
        "sites": [
            {
                "venue_id": s.venue_id,
                "since": format_ms(s.since_ms),
                "until": format_ms(s.until_ms),
            }
            for s in sites
        ],
        "format": format,
    }
    if inq.scope:
        communities = await in_thread(
            inq.ctx, "venues", trace.venue_communities, inq.store, [s.venue_id for s in sites]
        )
        outside = sorted(v for v, c in communities.items() if not inq.principal.in_scope(c))
        if outside:
            await inq.refused(params, "forbidden")
            raise Forbidden(
                f"venue(s) {', '.join(map(str, outside))} are outside this key's jurisdiction ({inq.scope})"
            )
    found = await in_thread(inq.ctx, "exposures", trace.exposures, inq.store, sites, inq.scope)
    await inq.record(params, len(found))
    await purpose.remember(inq.ctx, inq.principal, (e.person_id for e in found), now_ms())
    venue_names = await in_thread(
        inq.ctx, "venues", trace.venue_names, inq.store, {v for e in found for v in e.venues}
    )
    names = await persons.masked_names(inq.ctx, [e.person_id for e in found])
    return Exposures(sites=len(sites), found=found, names=names, venue_names=venue_names)
