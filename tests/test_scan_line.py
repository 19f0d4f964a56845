"""Both Lua scripts write their scan lines in the order of ``LAYOUT``, the one table of field positions.

A real check-in (with a location and a companion) and its check-out run through the ingest app
against Redis; each value of each written line, read back by its ``LAYOUT`` name, must be the value
that name stands for. A script that swapped two fields, or left one out, fails here.
"""

from __future__ import annotations

from typing import Any

import redis
from litestar.testing import AsyncTestClient

from checkin.platform.scan_stream import FIELD_BYTES, LAYOUT, line_values
from checkin.platform.settings import Settings
from tests.support.ingest import bearer, child_id_number, keys_of, put_venue, register


def lines(sync_redis: redis.Redis, settings: Settings) -> list[dict[str, str]]:
    out = []
    for stream in keys_of(settings).streams():
        for _id, fields in sync_redis.xrange(stream):  # type: ignore[union-attr]
            line = fields[FIELD_BYTES]
            assert line.count(b"\t") == len(LAYOUT) - 1
            out.append(line_values(line))
    return out


async def test_checkin_and_checkout_lines_follow_the_layout(
    ingest: AsyncTestClient[Any], settings: Settings, sync_redis: redis.Redis
) -> None:
    code = put_venue(sync_redis, settings, 7, dwell_minutes=45, name="面馆")
    owner, token = await register(ingest, 1)
    child = await ingest.post(
        "/v1/residents/me/companions",
        json={"name": "小明", "id_number": child_id_number(77)},
        headers=bearer(token),
    )
    assert child.status_code == 201, child.text
    companion = child.json()["person_id"]
    body = {
        "code": code,
        "companions": [companion],
        "client_id": "layout-1",
        "location": {"lat": 39.91, "lon": 116.41, "accuracy_m": 25.0},
    }
    r = await ingest.post("/v1/checkins", json=body, headers=bearer(token))
    assert r.status_code == 201, r.text
    checkin_id = r.json()["checkin_id"]
    out = await ingest.post(f"/v1/checkins/{checkin_id}/checkout", headers=bearer(token))
    assert out.status_code == 200, out.text

    written = lines(sync_redis, settings)
    assert [(w["version"], int(w["person_id"])) for w in written] == [
        ("0", owner),
        ("0", companion),
        ("1", owner),
        ("1", companion),
    ]
    checkin_at = written[0]["at"]
    for w in written:
        assert w["checkin_id"] == checkin_id
        assert w["venue_id"] == "7"
        assert w["at"] == checkin_at
        assert w["dwell_s"] == "2700"
        assert (w["district"], w["street"], w["community"]) == ("110105", "110105001", "110105001001")
        assert (w["status"], w["verdict"], w["reason"]) == ("green", "pass", "")
        assert w["source"] == "phone"
        assert w["owner_id"] == str(owner)
        assert w["watchlisted"] == "0"
        assert (float(w["lat"]), float(w["lon"]), float(w["accuracy_m"])) == (39.91, 116.41, 25.0)
        assert (float(w["venue_lat"]), float(w["venue_lon"])) == (39.9, 116.4)
        assert int(w["received_at"]) >= int(checkin_at)
    for w in written[:2]:
        assert int(w["end_at"]) == int(checkin_at) + 2700 * 1000
    for w in written[2:]:
        assert int(checkin_at) < int(w["end_at"]) < int(checkin_at) + 2700 * 1000
