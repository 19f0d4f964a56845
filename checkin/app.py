"""The ingest service: residents, health feed, check-ins, sentinels, venues, pages.

It never touches ClickHouse. ``create_app`` is the granian factory target.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar

from checkin.platform.service import build_app
from checkin.platform.settings import Settings

INGEST_MODULES = [
    "checkin.api_keys",
    "checkin.residents.routes",
    "checkin.health.routes",
    "checkin.checkins.routes",
    "checkin.checkins.sentinel",
    "checkin.pages.phone",
    "venues.routes",
    "venues.operator_page",
]


def create_app(settings: Settings | None = None, redis: Any = None) -> Litestar:
    return build_app(
        service="ingest",
        title="venue-checkin ingest API",
        modules=INGEST_MODULES,
        settings=settings,
        redis=redis,
    )
