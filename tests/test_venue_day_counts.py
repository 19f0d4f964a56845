"""A venue's day is counted per unix hour of the scan; the day's entries are the sum of the hours the
local day overlaps, so a zone whose offset is not whole hours loses no scan at the day's edges."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from venues.day import day_fields, day_total

HOUR_MS = 3_600_000


def unix_hour(local: dt.datetime) -> int:
    return int(local.timestamp()) * 1000 // HOUR_MS


def test_a_half_hour_zone_counts_the_first_and_last_half_hours_of_the_day() -> None:
    zone = ZoneInfo("Asia/Kolkata")
    day = dt.date(2026, 3, 15)
    fields, hours = day_fields("7", day, "Asia/Kolkata")
    assert fields[0] == "7" and len(fields) == 1 + 25 and len(hours) == 24
    first = dt.datetime(2026, 3, 15, 0, 5, tzinfo=zone)
    last = dt.datetime(2026, 3, 15, 23, 50, tzinfo=zone)
    assert f"7:{unix_hour(first)}" in fields and f"7:{unix_hour(last)}" in fields
    # the hours run from the one holding local midnight to the one holding 23:59:59
    assert fields[1] == f"7:{unix_hour(dt.datetime(2026, 3, 15, tzinfo=zone))}"
    assert fields[-1] == f"7:{unix_hour(dt.datetime(2026, 3, 15, 23, 59, 59, tzinfo=zone))}"


def test_the_day_is_the_sum_of_its_hours_or_an_older_day_count_when_larger() -> None:
    assert day_total([None, b"2", None, b"3"]) == 5
    assert day_total([b"9", b"2", b"3"]) == 9
    assert day_total([b"4", b"2", b"3"]) == 5
    assert day_total([None, None]) == 0


def test_a_daylight_saving_day_has_23_hours() -> None:
    fields, _ = day_fields("1", dt.date(2026, 3, 8), "America/New_York")
    assert len(fields) == 1 + 23
