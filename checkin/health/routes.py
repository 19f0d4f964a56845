"""Health-feed routes (role ``health``; the admin passes): colours, tests, watchlist."""

from __future__ import annotations

from typing import Annotated

from litestar import delete, get, post, put
from litestar.params import Body

from checkin.health import service as health
from checkin.platform.auth import requires_role
from checkin.platform.context import Context
from checkin.platform.errors import NotFound
from checkin.platform.metrics import Metrics
from checkin.platform.service import Part

TAGS = ["health"]
HEALTH = [requires_role("health")]
HEALTH_UPDATES = "checkin_health_updates_total"


def setup_metrics(metrics: Metrics) -> None:
    metrics.counter(HEALTH_UPDATES, "Health-feed updates applied, by kind (status, test, watchlist)")


def _pid(value: int) -> int:
    if not 1 <= value <= 2**64 - 1:
        raise NotFound(f"person {value} is not registered")
    return value


@put("/v1/health/{person_id:int}", summary="Set a person's health-code colour", tags=TAGS, guards=HEALTH)
async def put_status(person_id: int, data: health.StatusIn, ctx: Context) -> health.HealthState:
    state = await health.set_status(ctx, _pid(person_id), data)
    ctx.metrics.inc(HEALTH_UPDATES, kind="status")
    return state


@get(
    "/v1/health/{person_id:int}",
    summary="A person's health state as the door sees it",
    tags=TAGS,
    guards=HEALTH,
)
async def get_status(person_id: int, ctx: Context) -> health.HealthState:
    return await health.get_state(ctx, _pid(person_id))


@post("/v1/health/tests", status_code=200, summary="Record test results (batch)", tags=TAGS, guards=HEALTH)
async def post_tests(
    data: Annotated[list[health.TestIn], Body(max_items=health.MAX_TESTS_PER_CALL)],
    ctx: Context,
) -> health.TestsReport:
    report = await health.record_tests(ctx, data)
    if report.accepted:
        ctx.metrics.inc(HEALTH_UPDATES, report.accepted, kind="test")
    return report


@put(
    "/v1/watchlist/{person_id:int}",
    summary="Put a person on the watchlist until a time",
    tags=TAGS,
    guards=HEALTH,
    problems=(422,),
)
async def put_watch(person_id: int, data: health.WatchIn, ctx: Context) -> health.HealthState:
    state = await health.set_watch(ctx, _pid(person_id), data)
    ctx.metrics.inc(HEALTH_UPDATES, kind="watchlist")
    return state


@delete("/v1/watchlist/{person_id:int}", summary="Take a person off the watchlist", tags=TAGS, guards=HEALTH)
async def delete_watch(person_id: int, ctx: Context) -> None:
    await health.clear_watch(ctx, _pid(person_id))
    ctx.metrics.inc(HEALTH_UPDATES, kind="watchlist")


PART = Part(
    "health", routes=[put_status, get_status, post_tests, put_watch, delete_watch], metrics=setup_metrics
)
