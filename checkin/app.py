"""The ingest service: residents, health feed, check-ins, sentinels, venues, pages.

It never touches ClickHouse. ``create_app`` is the granian factory target.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar

from checkin.service import build_app
from checkin.settings import Settings

INGEST_MODULES = [
    "checkin.keys_api",
    "checkin.residents_api",
    "checkin.health_api",
    "checkin.checkins_api",
    "checkin.sentinel_api",
    "checkin.phone_page",
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
