"""Region names: an admin imports ``code,name``; tracers and analysts read them; the synthetic city
ships its table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from checkin.platform.settings import Settings
from loadtest.city import PRESETS, write_city
from tests.support.trace_world import make_key
from tests.support.values import admin_headers


async def test_an_admin_imports_names_and_tracers_and_analysts_read_them(
    tracing: AsyncTestClient[Any], settings: Settings
) -> None:
    csv_text = "\ufeffcode,name\r\n620102,城关区\r\n620102001,酒泉路街道\r\n620102001001,金塔巷社区\r\n"
    r = await tracing.post(
        "/v1/regions/import",
        content=csv_text.encode(),
        headers={**admin_headers(), "Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"rows": 3, "created": 3, "renamed": 0, "unchanged": 0}
    # again, one renamed and one added: the newest name wins
    again = "620102,城关区\n620102001,酒泉路街道办\n620103,七里河区\n"
    r = await tracing.post("/v1/regions/import", content=again.encode(), headers=admin_headers())
    assert r.json() == {"rows": 3, "created": 1, "renamed": 1, "unchanged": 1}
    for role in ("tracer", "analyst"):
        headers = await make_key(settings, role, "620102")
        r = await tracing.get("/v1/regions", headers=headers)
        assert r.status_code == 200, r.text
        assert r.json() == {
            "count": 4,
            "regions": {
                "620102": "城关区",
                "620102001": "酒泉路街道办",
                "620102001001": "金塔巷社区",
                "620103": "七里河区",
            },
        }
    operator = await make_key(settings, "operator")
    assert (await tracing.get("/v1/regions", headers=operator)).status_code == 403
    tracer = await make_key(settings, "tracer")
    r = await tracing.post("/v1/regions/import", content=b"620104,x\n", headers=tracer)
    assert r.status_code == 403


async def test_a_bad_line_refuses_the_whole_file(tracing: AsyncTestClient[Any]) -> None:
    cases = {
        b"620102,A\n6201,B\n": "line 2: code '6201' is not a district",
        b"620102,A,extra\n": "line 1: expected 2 columns",
        b"620102,\n": "line 1: the name is empty",
        "620102,A\u202eB\n".encode(): "control or invisible character (U+202E)",
        ("620102," + "名" * 61 + "\n").encode(): "longer than 60",
        b"code,name\n": "names no region",
        b"\xff\xfe": "UTF-8",
    }
    for body, words in cases.items():
        r = await tracing.post("/v1/regions/import", content=body, headers=admin_headers())
        assert r.status_code == 400, body
        assert r.headers["content-type"] == "application/problem+json"
        assert words in r.json()["detail"], (body, r.json()["detail"])
    r = await tracing.get("/v1/regions", headers=admin_headers())
    assert r.json() == {"count": 0, "regions": {}}  # nothing of the refused files was written


async def test_the_synthetic_city_ships_its_region_names(
    tracing: AsyncTestClient[Any], tmp_path: Path
) -> None:
    manifest = write_city(PRESETS["small"], 3, tmp_path, scan_days=0, progress=False)
    assert manifest.files["regions"] == "regions.csv"
    r = await tracing.post(
        "/v1/regions/import", content=(tmp_path / "regions.csv").read_bytes(), headers=admin_headers()
    )
    assert r.status_code == 200, r.text
    counts = manifest.counts
    assert r.json()["created"] == counts["districts"] + counts["streets"] + counts["communities"]
    names = (await tracing.get("/v1/regions", headers=admin_headers())).json()["regions"]
    district = manifest.districts[0]
    community = district.streets[0].communities[0]
    assert names[district.code] == district.name and names[community.code] == community.name
