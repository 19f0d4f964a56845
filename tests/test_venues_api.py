"""Venue routes of the ingest service against real Redis: registry, scopes, codes,
rotation, check_code, entries, posters and the CSV import."""

from __future__ import annotations

import io
from typing import Any

import pytest
import redis
import zxingcpp
from litestar.testing import AsyncTestClient
from PIL import Image

from checkin.platform.context import Context
from checkin.platform.errors import Gone, NotFound
from checkin.platform.instants import local_day, now_ms
from checkin.platform.keyring import b64url_decode, b64url_encode
from checkin.platform.redis_keys import RedisKeys
from checkin.platform.settings import Settings
from tests.support.pdf import pdf_page, pdf_text
from tests.support.values import admin_headers
from venues import codes, importer, scanned_code

HEADER = ",".join(importer.COLUMNS)


def body(venue_id: int | None = None, **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "幸福路社区菜市场",
        "address": "城关区幸福路 12 号",
        "type": "market",
        "district": "620102",
        "street": "620102001",
        "community": "620102001001",
        "lat": 36.06,
        "lon": 103.83,
        "capacity": 300,
        "dwell_minutes": 45,
    }
    if venue_id is not None:
        data["venue_id"] = venue_id
    data.update(over)
    return data


def csv_row(venue_id: int | str, name: str = "店", community: str = "620102001001", **over: str) -> str:
    values = {
        "venue_id": str(venue_id),
        "name": name,
        "address": "地址",
        "type": "restaurant",
        "district": community[:6],
        "street": community[:9],
        "community": community,
        "lat": "36.05",
        "lon": "103.8",
        "capacity": "50",
        "dwell_minutes": "60",
        "requires_negative_test_hours": "",
    }
    values.update(over)
    return ",".join(values[c] for c in importer.COLUMNS)


async def key_for(ingest: AsyncTestClient[Any], **record: Any) -> dict[str, str]:
    r = await ingest.post("/v1/keys", json={"role": "operator", **record}, headers=admin_headers())
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['key']}"}


def decode_png(data: bytes) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(data)))]


async def test_create_get_patch_deactivate(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    keys = RedisKeys(settings.key_prefix, settings.stream_shards)
    r = await ingest.post(
        "/v1/venues", json=body(1001, requires_negative_test_hours=48), headers=admin_headers()
    )
    assert r.status_code == 201, r.text
    venue = r.json()
    assert venue["venue_id"] == 1001 and venue["code_version"] == 1 and venue["active"] is True
    assert venue["updated_at"].endswith("Z")
    stored = sync_redis.hgetall(keys.venue(1001))
    assert stored[b"requires_negative_test_hours"] == b"48" and stored[b"active"] == b"1"
    assert stored[b"dwell_minutes"] == b"45" and stored[b"name"] == "幸福路社区菜市场".encode()
    assert sync_redis.zscore(keys.venue_index(), "1001") == 1001
    assert sync_redis.sismember(keys.venue_scope_index("620102001001"), "1001")
    assert sync_redis.zscore(keys.venue_mirror_queue(), "1001") is not None

    r = await ingest.post("/v1/venues", json=body(1001), headers=admin_headers())
    assert r.status_code == 409
    r = await ingest.post("/v1/venues", json=body(), headers=admin_headers())  # id allocated
    assert r.status_code == 201 and r.json()["venue_id"] >= 1

    r = await ingest.patch(
        "/v1/venues/1001",
        json={"name": "新名字", "community": "620102001002", "requires_negative_test_hours": None},
        headers=admin_headers(),
    )
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "新名字" and r.json()["requires_negative_test_hours"] is None
    assert not sync_redis.sismember(keys.venue_scope_index("620102001001"), "1001")
    assert sync_redis.sismember(keys.venue_scope_index("620102001002"), "1001")
    assert sync_redis.hget(keys.venue(1001), "requires_negative_test_hours") == b""

    r = await ingest.patch("/v1/venues/1001", json={"active": False}, headers=admin_headers())
    assert r.status_code == 400 and r.json()["reason"] == "reason_required"
    r = await ingest.patch(
        "/v1/venues/1001", json={"active": False, "reason": "市场已搬迁"}, headers=admin_headers()
    )
    assert r.status_code == 200 and r.json()["active"] is False
    assert r.json()["closed_reason"] == "市场已搬迁" and r.json()["closed_at"]
    r = await ingest.get("/v1/venues/1001", headers=admin_headers())
    assert r.json()["active"] is False and r.json()["name"] == "新名字"
    assert sync_redis.hget(keys.venue(1001), "code_version") == b"1"


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"lat": 91}, "lat"),
        ({"lon": -181}, "lon"),
        ({"district": "62010"}, "district"),
        ({"type": "casino"}, "type"),
        ({"name": "   "}, "blank"),
        ({"name": "a\x00b"}, "control"),
        ({"dwell_minutes": 0}, "dwell_minutes"),
        ({"colour": "red"}, "colour"),
        ({"venue_id": 2**32}, "venue_id"),
    ],
)
async def test_bad_venue_bodies_are_400(
    ingest: AsyncTestClient[Any], over: dict[str, Any], needle: str
) -> None:
    r = await ingest.post("/v1/venues", json={**body(5), **over}, headers=admin_headers())
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert needle in r.json()["detail"]


@pytest.mark.parametrize(
    ("over", "needle"),
    [({"street": "620103001"}, "not in district"), ({"community": "620102002001"}, "not in street")],
)
async def test_a_place_outside_its_hierarchy_is_422(
    ingest: AsyncTestClient[Any], over: dict[str, Any], needle: str
) -> None:
    """Each code has its form (the schema says so: 400 otherwise); a street outside its district is a
    rule between two members no schema states (422 place_hierarchy)."""
    r = await ingest.post("/v1/venues", json={**body(5), **over}, headers=admin_headers())
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == "place_hierarchy" and needle in r.json()["detail"]


async def test_unknown_and_bad_ids(ingest: AsyncTestClient[Any]) -> None:
    assert (await ingest.get("/v1/venues/424242", headers=admin_headers())).status_code == 404
    assert (await ingest.get("/v1/venues/99999999999", headers=admin_headers())).status_code == 404
    assert (await ingest.get("/v1/venues/abc", headers=admin_headers())).status_code in (400, 404)
    assert (
        await ingest.patch("/v1/venues/424242", json={"name": "x"}, headers=admin_headers())
    ).status_code == 404
    r = await ingest.post("/v1/venues/424242/code/rotate", headers=admin_headers())
    assert r.status_code == 404
    assert (await ingest.get("/v1/venues/1")).status_code == 401


async def test_operator_scopes_and_bound_venues(ingest: AsyncTestClient[Any]) -> None:
    for vid, community in ((11, "620102001001"), (12, "620102001002"), (13, "620103001001")):
        street = community[:9]
        r = await ingest.post(
            "/v1/venues",
            json=body(vid, district=community[:6], street=street, community=community, name=f"v{vid}"),
            headers=admin_headers(),
        )
        assert r.status_code == 201
    district_op = await key_for(ingest, scope="620102")
    bound_op = await key_for(ingest, venue_id=12)
    tracer = (await ingest.post("/v1/keys", json={"role": "tracer"}, headers=admin_headers())).json()["key"]

    r = await ingest.get("/v1/venues", headers=district_op)
    assert [v["venue_id"] for v in r.json()["items"]] == [11, 12]
    assert (await ingest.get("/v1/venues/13", headers=district_op)).status_code == 403
    assert (await ingest.get("/v1/venues/13/code", headers=district_op)).status_code == 403
    r = await ingest.post(
        "/v1/venues",
        json=body(14, district="620103", street="620103001", community="620103001001"),
        headers=district_op,
    )
    assert r.status_code == 403
    r = await ingest.patch(
        "/v1/venues/11",
        json={"district": "620103", "street": "620103001", "community": "620103001009"},
        headers=district_op,
    )
    assert r.status_code == 403
    r = await ingest.post("/v1/venues", json=body(15), headers=district_op)
    assert r.status_code == 201

    r = await ingest.get("/v1/venues", headers=bound_op)
    assert [v["venue_id"] for v in r.json()["items"]] == [12]
    assert (await ingest.get("/v1/venues/12/code", headers=bound_op)).status_code == 200
    assert (await ingest.get("/v1/venues/11", headers=bound_op)).status_code == 403
    assert (await ingest.post("/v1/venues", json=body(16), headers=bound_op)).status_code == 403
    r = await ingest.post("/v1/venues/import", content=HEADER + "\n", headers=bound_op)
    assert r.status_code == 403
    r = await ingest.get("/v1/venues", headers={"Authorization": f"Bearer {tracer}"})
    assert r.status_code == 403

    r = await ingest.get("/v1/venues", params={"community": "620103"}, headers=district_op)
    assert r.json()["items"] == []
    r = await ingest.get("/v1/venues", params={"community": "620102001002"}, headers=district_op)
    assert [v["venue_id"] for v in r.json()["items"]] == [12]


async def test_list_pages_and_search(ingest: AsyncTestClient[Any]) -> None:
    csv_text = "\n".join(
        [HEADER] + [csv_row(i, name=f"面馆{i}" if i % 2 else f"超市{i}") for i in range(1, 26)]
    )
    r = await ingest.post("/v1/venues/import", content=csv_text.encode(), headers=admin_headers())
    assert r.status_code == 200 and r.json()["created"] == 25
    seen: list[int] = []
    after = 0
    while True:
        r = await ingest.get("/v1/venues", params={"limit": 10, "after": after}, headers=admin_headers())
        page = r.json()
        seen.extend(v["venue_id"] for v in page["items"])
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert seen == list(range(1, 26))
    r = await ingest.get("/v1/venues", params={"q": "面馆", "limit": 5}, headers=admin_headers())
    assert [v["venue_id"] for v in r.json()["items"]] == [1, 3, 5, 7, 9]
    r = await ingest.get("/v1/venues", params={"q": "17"}, headers=admin_headers())
    assert [v["venue_id"] for v in r.json()["items"]] == [17]


async def test_codes_rotation_and_check_code(
    ingest: AsyncTestClient[Any], settings: Settings, sync_redis: redis.Redis, redis_client: Any
) -> None:
    await ingest.post("/v1/venues", json=body(2001), headers=admin_headers())
    r = await ingest.get("/v1/venues/2001/code", headers=admin_headers())
    assert r.status_code == 200
    first = r.json()
    assert first["version"] == 1 and first["url"] == f"http://testserver.local/v/{first['token']}"
    ctx = Context.build(settings, redis_client, "test")
    venue = await scanned_code.check_code(ctx, first["token"])
    assert venue.venue_id == 2001 and venue.name == "幸福路社区菜市场"

    r = await ingest.post("/v1/venues/2001/code/rotate", headers=admin_headers())
    assert r.status_code == 200
    second = r.json()
    assert second["version"] == 2 and second["token"] != first["token"]
    assert (await scanned_code.check_code(ctx, second["token"])).code_version == 2
    with pytest.raises(Gone) as gone:
        await scanned_code.check_code(ctx, first["token"])
    assert "new poster" in gone.value.detail and gone.value.extra["reason"] == "old_version"

    raw = bytearray(b64url_decode(second["token"]))
    raw[-1] ^= 1
    with pytest.raises(codes.InvalidCode) as bad:
        await scanned_code.check_code(ctx, b64url_encode(bytes(raw)))
    assert bad.value.status == 400
    with pytest.raises(NotFound):
        await scanned_code.check_code(ctx, codes.sign(ctx.keyring, 999_999, 1))

    await ingest.patch("/v1/venues/2001", json={"active": False, "reason": "停业"}, headers=admin_headers())
    with pytest.raises(Gone) as inactive:
        await scanned_code.check_code(ctx, second["token"])
    assert inactive.value.extra["reason"] == "inactive"
    assert ctx.metrics.value(scanned_code.CODE_CHECKS, result="tampered") == 1

    # The phone page refuses the old poster too (same registry fields).
    await ingest.patch("/v1/venues/2001", json={"active": True}, headers=admin_headers())
    assert (await ingest.get(f"/v/{first['token']}")).status_code == 410
    assert (await ingest.get(f"/v/{second['token']}")).status_code == 200


async def test_entries_today_reads_the_checkin_counter(
    ingest: AsyncTestClient[Any], settings: Settings, sync_redis: redis.Redis
) -> None:
    await ingest.post("/v1/venues", json=body(3001), headers=admin_headers())
    r = await ingest.get("/v1/venues/3001/entries", headers=admin_headers())
    assert r.status_code == 200 and r.json()["entries"] == 0
    keys = RedisKeys(settings.key_prefix, settings.stream_shards)
    day = local_day(now_ms(), settings.tz)
    sync_redis.hincrby(keys.venue_entries(keys.shard_of(3001), day), "3001", 7)
    r = await ingest.get("/v1/venues/3001/entries", headers=admin_headers())
    assert r.json() == {"venue_id": 3001, "local_day": day, "entries": 7}


async def test_posters_over_http(ingest: AsyncTestClient[Any]) -> None:
    await ingest.post("/v1/venues", json=body(4001, name="张掖路 & 小吃 <城>"), headers=admin_headers())
    url = (await ingest.get("/v1/venues/4001/code", headers=admin_headers())).json()["url"]
    r = await ingest.get("/v1/venues/4001/poster.png", headers=admin_headers())
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert decode_png(r.content) == [url]
    r = await ingest.get("/v1/venues/4001/poster.pdf", params={"download": "true"}, headers=admin_headers())
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"].startswith('attachment; filename="venue-4001-v1-a4.pdf"')
    assert [x.text for x in zxingcpp.read_barcodes(pdf_page(r.content, 150))] == [url]
    assert "张掖路 & 小吃 <城>" in pdf_text(r.content)
    r = await ingest.get("/v1/venues/4001/poster.svg", headers=admin_headers())
    assert r.headers["content-type"].startswith("image/svg+xml")
    assert "张掖路 &amp; 小吃 &lt;城&gt;" in r.text
    assert (await ingest.get("/v1/venues/4999/poster.png", headers=admin_headers())).status_code == 404


async def test_csv_import_reports_bad_lines_and_reimport_changes_nothing(
    ingest: AsyncTestClient[Any], settings: Settings, sync_redis: redis.Redis
) -> None:
    keys = RedisKeys(settings.key_prefix, settings.stream_shards)
    lines = [
        HEADER,
        csv_row(1, name="好店, 一号"),  # line 2 (the comma is inside the quoted field below)
        csv_row(2, lat="95"),  # line 3: lat out of range
        csv_row(3, type="casino"),  # line 4
        csv_row(1, name="重复"),  # line 5: duplicate id
        csv_row("x"),  # line 6
        "4,too,few",  # line 7
        csv_row(5, community="620102001001", street="620102002"),  # line 8: hierarchy
        csv_row(6, requires_negative_test_hours="72"),  # line 9
    ]
    lines[1] = lines[1].replace("好店, 一号", '"好店, 一号"')
    text = "\n".join(lines) + "\n"
    r = await ingest.post("/v1/venues/import", content=text.encode(), headers=admin_headers())
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["rows"], report["created"], report["rejected"]) == (8, 2, 6)
    by_line = {e["line"]: e["reason"] for e in report["errors"]}
    assert sorted(by_line) == [3, 4, 5, 6, 7, 8]
    assert "lat 95 is out of range" in by_line[3]
    assert "type 'casino'" in by_line[4]
    assert "duplicate venue_id 1 (first on line 2)" in by_line[5]
    assert "venue_id must be an integer" in by_line[6]
    assert "expected 12 fields" in by_line[7]
    assert "not in street" in by_line[8]
    assert sync_redis.hget(keys.venue(1), "name") == "好店, 一号".encode()
    assert sync_redis.hget(keys.venue(6), "requires_negative_test_hours") == b"72"
    assert not sync_redis.exists(keys.venue(2))
    # an import never moves the registry's own sequence: the next id it assigns is the smallest free one
    assert int(sync_redis.get(keys.venue_seq()) or 0) == 0
    r = await ingest.post("/v1/venues", json=body(None), headers=admin_headers())
    assert r.status_code == 201 and r.json()["venue_id"] == 2, r.text

    before = {k: sync_redis.hgetall(keys.venue(k)) for k in (1, 6)}
    await ingest.post("/v1/venues/1/code/rotate", headers=admin_headers())
    sync_redis.zrem(keys.venue_mirror_queue(), "1", "2", "6")
    r = await ingest.post("/v1/venues/import", content=text.encode(), headers=admin_headers())
    report = r.json()
    assert (report["created"], report["updated"], report["unchanged"]) == (0, 0, 2)
    assert sync_redis.hgetall(keys.venue(6)) == before[6]
    assert sync_redis.hget(keys.venue(1), "code_version") == b"2"  # import never resets a rotation
    assert sync_redis.zcard(keys.venue_mirror_queue()) == 0

    changed = text.replace("好店, 一号", "好店二号")
    r = await ingest.post("/v1/venues/import", content=changed.encode(), headers=admin_headers())
    assert (r.json()["updated"], r.json()["unchanged"]) == (1, 1)
    assert sync_redis.zrange(keys.venue_mirror_queue(), 0, -1) == [b"1"]


async def test_csv_import_refuses_bad_files_without_writing(
    ingest: AsyncTestClient[Any], make_settings: Any, settings: Settings, sync_redis: redis.Redis
) -> None:
    keys = RedisKeys(settings.key_prefix, settings.stream_shards)
    good = csv_row(1)
    bad_header = HEADER.replace(",capacity", "") + "\n" + good
    r = await ingest.post("/v1/venues/import", content=bad_header.encode(), headers=admin_headers())
    assert r.status_code == 400 and "missing column(s): capacity" in r.json()["detail"]
    r = await ingest.post(
        "/v1/venues/import", content=(HEADER + ",extra\n").encode(), headers=admin_headers()
    )
    assert r.status_code == 400 and "unknown column(s): 'extra'" in r.json()["detail"]
    r = await ingest.post("/v1/venues/import", content=b"", headers=admin_headers())
    assert r.status_code == 400
    r = await ingest.post("/v1/venues/import", content=b"\xff\xfe\x00garbage", headers=admin_headers())
    assert r.status_code == 400

    strict = "\n".join([HEADER, good, csv_row(2, lon="200")])
    r = await ingest.post(
        "/v1/venues/import", params={"strict": "true"}, content=strict.encode(), headers=admin_headers()
    )
    assert r.status_code == 422
    assert r.json()["report"]["errors"][0]["line"] == 3
    assert not sync_redis.exists(keys.venue(1))
    assert sync_redis.zcard(keys.venue_index()) == 0


async def test_csv_import_size_limit(make_settings: Any) -> None:
    from checkin.app import create_app

    small = make_settings(max_import_bytes=2000)
    big = (HEADER + "\n" + "\n".join(csv_row(i) for i in range(1, 100))).encode()
    async with AsyncTestClient(app=create_app(small)) as client:
        r = await client.post("/v1/venues/import", content=big, headers=admin_headers())
        assert r.status_code == 413, r.text
        assert "import limit of 2000 bytes" in r.json()["detail"]

        r = await client.get("/v1/venues", headers=admin_headers())
        assert r.json()["items"] == []


async def test_scoped_operator_import(ingest: AsyncTestClient[Any], sync_redis: redis.Redis) -> None:
    await ingest.post(
        "/v1/venues",
        json=body(7, district="620103", street="620103001", community="620103001001"),
        headers=admin_headers(),
    )
    op = await key_for(ingest, scope="620102001")
    text = "\n".join([HEADER, csv_row(1), csv_row(2, community="620103001001"), csv_row(7)])
    r = await ingest.post("/v1/venues/import", content=text.encode(), headers=op)
    report = r.json()
    assert report["created"] == 1 and report["rejected"] == 2
    reasons = {e["line"]: e["reason"] for e in report["errors"]}
    assert "outside this key's jurisdiction" in reasons[3]
    assert "venue 7 exists outside" in reasons[4]
