"""Source tracing (溯源) of a cluster of cases for a tracer: common venues and possible sources
(:mod:`tracing.queries.sources`). Cases none of which has a stay in the key's jurisdiction are unknown
to it (404, audited); the cases with stays and the possible sources are bound to the key for contact
details (:mod:`tracing.answers.purpose`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from checkin.platform import persons
from checkin.platform.errors import Unprocessable
from checkin.platform.instants import format_ms, now_ms
from tracing.answers import purpose
from tracing.answers.calls import in_thread
from tracing.answers.inquiry import Inquiry
from tracing.answers.known import require_any_case
from tracing.queries import sources as sq
from tracing.queries import trace


class CaseStayOut(msgspec.Struct):
    person_id: Annotated[int, msgspec.Meta(examples=[100230])]
    at: Annotated[str, msgspec.Meta(examples=["2026-03-12T09:12:44.218Z"])]
    end_at: Annotated[str, msgspec.Meta(examples=["2026-03-12T10:12:44.218Z"])]


class CommonVenueOut(msgspec.Struct):
    venue_id: Annotated[int, msgspec.Meta(examples=[1024])]
    cases: Annotated[list[int], msgspec.Meta(examples=[[100230, 100877]])]
    first_at: Annotated[str, msgspec.Meta(examples=["2026-03-12T09:12:44.218Z"])]
    last_at: Annotated[str, msgspec.Meta(examples=["2026-03-12T11:40:02.000Z"])]
    together_seconds: Annotated[float, msgspec.Meta(examples=[2460.0])]
    """Time during which at least two of the cases were there at once."""
    stays: list[CaseStayOut] = msgspec.field(default_factory=list)
    """The cases' stays there that start in the window, by start: when each case was there (what the
    console's timeline draws, and the window of an exposure site flagged from here)."""


class SourceOut(msgspec.Struct, omit_defaults=True):
    person_id: Annotated[int, msgspec.Meta(examples=[104417])]
    cases: Annotated[list[int], msgspec.Meta(examples=[[100230, 100877]])]
    overlap_seconds: Annotated[float, msgspec.Meta(examples=[5400.0])]
    venue_ids: Annotated[list[int], msgspec.Meta(examples=[[1024]])]
    first_contact_at: Annotated[str, msgspec.Meta(examples=["2026-03-12T09:20:01.004Z"])]
    name: str = ""
    """Masked (张*丰); absent for a person not registered."""


class SourcesResponse(msgspec.Struct):
    cases: list[int]
    """The distinct cases asked about, sorted."""
    since: str
    until: str
    min_cases: int
    min_overlap_minutes: int
    index_stays: int
    cases_without_stays: list[int]
    """Cases with no stay starting in the window (within the key's jurisdiction)."""
    common_venues: list[CommonVenueOut]
    possible_sources: list[SourceOut]
    case_names: dict[int, str] = msgspec.field(default_factory=dict)
    """Masked name of every registered case."""
    venue_names: dict[int, str] = msgspec.field(default_factory=dict)
    """Name of every venue the answer lists."""


@dataclass(frozen=True)
class Sources:
    """What source tracing found, with the masked names of the persons and the names of the venues."""

    cases: list[int]
    since_ms: int
    until_ms: int
    min_cases: int
    min_overlap_minutes: int
    result: sq.SourcesResult
    names: dict[int, str]
    venue_names: dict[int, str]

    def body(self) -> SourcesResponse:
        result, names = self.result, self.names
        with_stays = set(result.cases_with_stays)
        return SourcesResponse(
            cases=self.cases,
            since=format_ms(self.since_ms),
            until=format_ms(self.until_ms),
            min_cases=self.min_cases,
            min_overlap_minutes=self.min_overlap_minutes,
            index_stays=result.index_stays,
            cases_without_stays=[c for c in self.cases if c not in with_stays],
            common_venues=[
                CommonVenueOut(
                    venue_id=v.venue_id,
                    cases=v.cases,
                    first_at=format_ms(v.first_ms),
                    last_at=format_ms(v.last_ms),
                    together_seconds=v.together_ms / 1000,
                    stays=[CaseStayOut(c, format_ms(a), format_ms(e)) for c, a, e in v.stays],
                )
                for v in result.common_venues
            ],
            possible_sources=[
                SourceOut(
                    person_id=s.person_id,
                    cases=s.cases,
                    overlap_seconds=s.overlap_ms / 1000,
                    venue_ids=s.venue_ids,
                    first_contact_at=format_ms(s.first_contact_ms),
                    name=names.get(s.person_id, ""),
                )
                for s in result.possible_sources
            ],
            case_names={c: names[c] for c in self.cases if c in names},
            venue_names=self.venue_names,
        )


async def sources(
    inq: Inquiry,
    cases: list[int],
    since_ms: int,
    until_ms: int,
    *,
    min_cases: int,
    min_overlap_minutes: int,
    format: str,
) -> Sources:
    """Source tracing of the distinct, sorted ``cases``; ``format`` is recorded in the audit row."""
    params: dict[str, Any] = {
        "person_ids": cases,
        "since": format_ms(since_ms),
        "until": format_ms(until_ms),
        "min_cases": min_cases,
        "min_overlap_minutes": min_overlap_minutes,
        "format": format,
    }
    try:
        result = await in_thread(
            inq.ctx,
            "sources",
            sq.sources,
            inq.store,
            cases,
            since_ms,
            until_ms,
            min_cases=min_cases,
            min_overlap_ms=min_overlap_minutes * 60_000,
            scope=inq.scope,
        )
    except trace.TooBroad as exc:
        raise Unprocessable(str(exc)) from None
    if not result.cases_with_stays:
        await require_any_case(inq, params, cases)
    await inq.record(params, len(result.common_venues) + len(result.possible_sources))
    named = [*result.cases_with_stays, *(s.person_id for s in result.possible_sources)]
    await purpose.remember(inq.ctx, inq.principal, named, now_ms())
    names = await persons.masked_names(inq.ctx, [*cases, *(s.person_id for s in result.possible_sources)])
    listed = {v.venue_id for v in result.common_venues} | {
        v for s in result.possible_sources for v in s.venue_ids
    }
    venue_names = await in_thread(inq.ctx, "venues", trace.venue_names, inq.store, listed)
    return Sources(
        cases=cases,
        since_ms=since_ms,
        until_ms=until_ms,
        min_cases=min_cases,
        min_overlap_minutes=min_overlap_minutes,
        result=result,
        names=names,
        venue_names=venue_names,
    )
