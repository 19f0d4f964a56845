"""The ingest service: residents, health feed, check-ins, sentinels, venues, pages.

It never touches ClickHouse. ``create_app`` is the granian factory target.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar

from checkin import api_keys
from checkin.checkins import routes as checkin_routes
from checkin.checkins import sentinel
from checkin.health import routes as health_routes
from checkin.pages import display, phone
from checkin.platform.service import Part, build_app
from checkin.platform.settings import Settings
from checkin.residents import home, own_record
from checkin.residents import routes as resident_routes
from venues import operator_page
from venues import routes as venue_routes

INGEST_PARTS: list[Part] = [
    api_keys.PART,
    resident_routes.PART,
    own_record.PART,
    home.PART,
    health_routes.PART,
    checkin_routes.PART,
    sentinel.PART,
    phone.PART,
    display.PART,
    venue_routes.PART,
    operator_page.PART,
]


def create_app(settings: Settings | None = None, redis: Any = None) -> Litestar:
    return build_app(
        service="ingest",
        title="venue-checkin ingest API",
        parts=INGEST_PARTS,
        settings=settings,
        redis=redis,
    )
