"""Whether the persons asked about are known to the key: a person (or a cluster of cases) none of whose
stays is recorded within the key's jurisdiction is unknown to it (404, audited)."""

from __future__ import annotations

from typing import Any

from checkin.platform.errors import NotFound
from tracing.answers.calls import in_thread
from tracing.answers.inquiry import Inquiry
from tracing.queries import sources as sq
from tracing.queries import trace


async def require_person(inq: Inquiry, params: dict[str, Any], person_id: int) -> None:
    """404 (audited) when no stay of the person is recorded within the key's jurisdiction."""
    if not await in_thread(inq.ctx, "person", trace.person_has_stays, inq.store, person_id, inq.scope):
        await inq.refused(params, "not_found")
        where = f" in jurisdiction {inq.scope}" if inq.scope else ""
        raise NotFound(f"no stays recorded for person {person_id}{where}")


async def require_any_case(inq: Inquiry, params: dict[str, Any], cases: list[int]) -> None:
    """404 (audited) when none of the cases has a stay recorded within the key's jurisdiction."""
    if not await in_thread(inq.ctx, "person", sq.any_has_stays, inq.store, cases, inq.scope):
        await inq.refused(params, "not_found")
        where = f" in jurisdiction {inq.scope}" if inq.scope else ""
        raise NotFound(f"no stays recorded for any of the {len(cases)} cases{where}")
