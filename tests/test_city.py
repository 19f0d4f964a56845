"""The synthetic city: valid import files, the reference hierarchy, determinism, the scan plan."""

from __future__ import annotations

import collections
import csv
import datetime as dt
import hashlib
import json
import math
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import pytest

from checkin.cli import main
from loadtest.city import (
    PRESETS,
    VENUE_COLUMNS,
    City,
    daily_curve,
    id_check_char,
    read_manifest,
    read_popularity,
    valid_id_number,
    write_city,
)
from venues.csv_rows import COLUMNS as IMPORT_COLUMNS
from venues.csv_rows import parse_row, read_header
from venues.model import VENUE_TYPES

SMALL = PRESETS["small"]


@pytest.fixture(scope="module")
def small_city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("city")
    write_city(SMALL, 42, out, progress=False)
    return out


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_venues_csv_is_valid_for_the_importer(small_city: Path) -> None:
    manifest = read_manifest(small_city)
    codes = {d.code: {s.code: {c.code for c in s.communities} for s in d.streets} for d in manifest.districts}
    with (small_city / "venues.csv").open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        index = read_header(reader)  # raises on a header the importer refuses
        rows = list(reader)
    assert tuple(IMPORT_COLUMNS) == VENUE_COLUMNS
    assert len(rows) == SMALL.venues == 500
    half_lat = SMALL.height_km / 2 / 111.32 + 1e-6
    half_lon = SMALL.width_km / 2 / (111.32 * math.cos(math.radians(SMALL.center_lat))) + 1e-6
    ids = set()
    types = collections.Counter()
    for values in rows:
        venue = parse_row(values, index)  # the importer's own validation
        ids.add(venue.venue_id)
        types[venue.type] += 1
        assert venue.type in VENUE_TYPES
        assert len(venue.district) == 6 and venue.district in codes
        assert venue.street.startswith(venue.district) and venue.street in codes[venue.district]
        assert (
            venue.community.startswith(venue.street)
            and venue.community in codes[venue.district][venue.street]
        )
        assert abs(venue.lat - SMALL.center_lat) <= half_lat
        assert abs(venue.lon - SMALL.center_lon) <= half_lon
        assert venue.capacity > 0 and 1 <= venue.dwell_minutes <= 1440
        assert venue.requires_negative_test_hours in (None, 48, 72)
        assert any("\u4e00" <= ch <= "\u9fff" for ch in venue.name)
    assert ids == set(range(1, 501))
    assert len(types) >= 6, types


def test_residents_ndjson_fields_are_valid_and_unique(small_city: Path) -> None:
    lines = (small_city / "residents.ndjson").read_text(encoding="utf-8").splitlines()
    assert len(lines) == SMALL.residents
    phones, ids = set(), set()
    for line in lines:
        obj = json.loads(line)
        assert set(obj) == {"name", "phone", "id_number"}
        assert 2 <= len(obj["name"]) <= 3 and all("\u4e00" <= ch <= "\u9fff" for ch in obj["name"])
        assert len(obj["phone"]) == 11 and obj["phone"].isdigit() and obj["phone"].startswith("1")
        assert valid_id_number(obj["id_number"]), obj["id_number"]
        birth = dt.date(
            int(obj["id_number"][6:10]), int(obj["id_number"][10:12]), int(obj["id_number"][12:14])
        )
        assert dt.date(1936, 1, 1) <= birth <= dt.date(2023, 12, 31)
        phones.add(obj["phone"])
        ids.add(obj["id_number"])
    assert len(phones) == len(ids) == SMALL.residents


def test_id_number_checksum() -> None:
    assert id_check_char("11010519491231002") == "X"  # the published example
    assert valid_id_number("11010519491231002X")
    assert not valid_id_number("110105194912310021")
    assert not valid_id_number("11010519491331002X")  # month 13


def test_same_seed_same_bytes_other_seed_other_bytes(small_city: Path, tmp_path: Path) -> None:
    write_city(SMALL, 42, tmp_path / "again", progress=False)
    write_city(SMALL, 43, tmp_path / "other", progress=False)
    first = _digest(small_city)
    assert _digest(tmp_path / "again") == first
    other = _digest(tmp_path / "other")
    assert set(other) == set(first)
    assert all(other[name] != first[name] for name in ("venues.csv", "residents.ndjson", "scans.csv"))


def test_reference_city_hierarchy() -> None:
    city = City(PRESETS["city"], 1)
    assert [d.code for d in city.districts] == [
        "620102",
        "620103",
        "620104",
        "620105",
        "620111",
        "620121",
        "620122",
        "620123",
    ]
    streets = [s for d in city.districts for s in d.streets]
    assert len(streets) == 50 and len({s.code for s in streets}) == 50
    assert len(city.communities) == 427 and len({c.code for c in city.communities}) == 427
    for d in city.districts:
        assert d.streets
        for s in d.streets:
            assert len(s.code) == 9 and s.code.startswith(d.code) and s.communities
            for c in s.communities:
                assert len(c.code) == 12 and c.code.startswith(s.code)
    lats = [c.lat for c in city.communities]
    lons = [c.lon for c in city.communities]
    height_km = (max(lats) - min(lats)) * 111.32
    width_km = (max(lons) - min(lons)) * 111.32 * math.cos(math.radians(36.06))
    assert 10 <= height_km <= 20.01 and 25 <= width_km <= 40.01, (width_km, height_km)
    assert math.isclose(sum(c.weight for c in city.communities), 1.0, rel_tol=1e-6)


def test_presets_scale() -> None:
    city, mega = PRESETS["city"], PRESETS["megacity"]
    assert (city.venues, city.residents, city.scans_per_day) == (239_000, 3_850_000, 1_700_000)
    assert mega.venues == 10 * city.venues and mega.residents == 10 * city.residents
    assert mega.scans_per_day == 10 * city.scans_per_day and mega.communities == 10 * city.communities
    big = City(mega, 1)
    assert len(big.communities) == 4_270 and len({c.code for c in big.communities}) == 4_270


def test_popularity_is_zipf_like(small_city: Path) -> None:
    ids, weights = read_popularity(small_city / "popularity.csv")
    assert ids == list(range(1, 501))
    assert math.isclose(sum(weights), 1.0, rel_tol=1e-4)
    ranked = sorted(weights, reverse=True)
    # rank r gets r ** -0.8: the top venue draws ~ 2 ** 0.8 times the second, 10 ** 0.8 the tenth
    assert math.isclose(ranked[0] / ranked[9], 10**0.8, rel_tol=1e-3)
    assert sum(ranked[:50]) > 0.3  # the busiest 10 % take a large share


def test_scan_plan_follows_the_daily_curve(small_city: Path) -> None:
    with (small_city / "scans.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == SMALL.scans_per_day
    stamps = [r["scanned_at"] for r in rows]
    assert stamps == sorted(stamps)
    zone = ZoneInfo("Asia/Shanghai")
    hours = collections.Counter()
    for r in rows:
        at = dt.datetime.strptime(r["scanned_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
        local = at.astimezone(zone)
        assert local.date() == dt.date(2026, 11, 30)
        hours[local.hour] += 1
        assert 0 <= int(r["resident"]) < SMALL.residents
        assert 1 <= int(r["venue_id"]) <= SMALL.venues
    assert hours[8] > 5 * hours[3] and hours[18] > 5 * hours[3]
    assert hours[8] > hours[14] and hours[18] > hours[14]
    venues = collections.Counter(int(r["venue_id"]) for r in rows)
    ids, weights = read_popularity(small_city / "popularity.csv")
    top = ids[max(range(len(ids)), key=lambda i: weights[i])]
    assert venues[top] == max(venues.values())


def test_daily_curve_peaks() -> None:
    curve = daily_curve()
    assert len(curve) == 1440 and math.isclose(sum(curve), 1.0)
    hourly = [sum(curve[h * 60 : (h + 1) * 60]) for h in range(24)]
    assert max(range(0, 11), key=lambda h: hourly[h]) in (7, 8)
    assert max(range(15, 24), key=lambda h: hourly[h]) in (18, 19)
    assert hourly[3] < 0.01


def test_cli_city_writes_files_and_refuses_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c"
    code = main(
        ["loadtest", "city", "--preset", "small", "--seed", "5", "--out", str(out), "--scan-days", "0"]
    )
    assert code == 0
    assert {p.name for p in out.iterdir()} == {
        "venues.csv",
        "popularity.csv",
        "residents.ndjson",
        "regions.csv",
        "city.json",
    }
    manifest = msgspec.json.decode((out / "city.json").read_bytes())
    assert manifest["seed"] == 5 and manifest["counts"]["scans"] == 0
    assert "500 venues" in capsys.readouterr().out
    assert main(["loadtest", "city", "--preset", "small", "--out", str(out), "--start-date", "30/11"]) == 2
    assert main(["loadtest", "city", "--preset", "small", "--out", str(out), "--venues", "0"]) == 2
    err = capsys.readouterr().err
    assert "--start-date: expected YYYY-MM-DD" in err and "venue ids must fit" in err
    with pytest.raises(SystemExit) as exc:
        main(["loadtest", "city", "--preset", "huge"])
    assert exc.value.code == 2
