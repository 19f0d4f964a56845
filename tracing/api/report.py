"""``GET /v1/report?period=day|month&date=YYYY-MM-DD&scope=&top=`` (analyst): the command-centre report's
figures (:mod:`tracing.queries.report`) as JSON.

``checkin report`` reads them here while the tracing service holds the embedded engine (one process may
open it). The scope defaults to the key's and may only narrow it; audited like an alert read.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Request, get
from litestar.params import Parameter

from checkin.platform.auth import Principal, requires_role
from checkin.platform.context import Context
from checkin.platform.errors import BadInput, Forbidden
from checkin.platform.service import Part
from tracing.answers.calls import read
from tracing.api import audit
from tracing.queries.report import Report, build_report, report_day
from tracing.rules import alerts as al
from tracing.storage import audit_log
from tracing.storage.store import Store


@get(
    "/v1/report",
    summary="Command-centre report of a local day or month (analyst)",
    tags=["report"],
    guards=[requires_role("analyst")],
)
async def report(
    request: Request[Any, Any, Any],
    ctx: Context,
    store: Store,
    principal: Principal,
    period: Literal["day", "month"],
    date: Annotated[
        str,
        Parameter(
            description="YYYY-MM-DD (a month report takes any day of the month, or YYYY-MM)",
            schema_extra={"format": "date"},
        ),
    ],
    scope_code: Annotated[
        str | None, Parameter(query="scope", schema_extra={"pattern": al.SCOPE_PATTERN})
    ] = None,
    top: Annotated[int, Parameter(ge=1, le=10_000)] = 20,
) -> Report:
    try:
        day = report_day(date, period)
    except ValueError as exc:
        raise BadInput(f"date: {exc}") from None
    scope = principal.scope if scope_code is None else scope_code
    if not al.SCOPE_RE.fullmatch(scope):
        raise BadInput(f"scope: expected a hierarchy code (up to 12 digits), got {scope!r}")
    if not scope.startswith(principal.scope):
        raise Forbidden(f"outside this key's jurisdiction ({principal.scope})")
    found = await read("trace", build_report, store, period, day, ctx.settings.tz, top, scope)
    params = {"period": period, "date": date, "scope": scope, "top": top}
    ip = audit.client_ip(request)
    await audit_log.record(ctx, store, principal, "report", "", params, len(found.alerts), ip)
    return found


PART = Part("report", routes=[report])
