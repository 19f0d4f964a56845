"""The phone check-in page ``GET /v/{token}``: venue name from the registry, zh-CN error
pages with the right status, escaping, security headers, static assets."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import redis
from litestar.testing import AsyncTestClient

from checkin.platform.keyring import Keyring
from checkin.platform.redis_keys import RedisKeys
from checkin.platform.settings import Settings
from tests.support.ingest import Place, write_venue
from tests.support.values import free_port
from venues import codes
from venues.model import Venue

STATIC = Path(__file__).resolve().parent.parent / "checkin" / "pages" / "static"
HOSTILE_NAME = '<script>alert("x")</script> 老王&小李\'s 面馆'


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text nodes."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.texts.append(data.strip())


LANZHOU: Place = ("620102", "620102001", "620102001001", 36.06, 103.83)


def put_venue(sync_redis: redis.Redis, settings: Settings, venue_id: int, **fields: Any) -> Venue:
    fields.setdefault("name", "幸福路社区菜市场")
    fields.setdefault("address", "幸福路 12 号")
    return write_venue(sync_redis, RedisKeys(settings.key_prefix), venue_id, LANZHOU, **fields)


def sign(settings: Settings, venue_id: int, version: int = 1) -> str:
    return codes.sign(Keyring.parse(settings.keyring), venue_id, version)


def assert_security_headers(headers: Any) -> None:
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"


async def test_page_shows_the_venue_name_escaped_with_no_inline_script(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    put_venue(sync_redis, settings, 7001, name=HOSTILE_NAME, address='"><img src=x onerror=alert(1)>')
    token = sign(settings, 7001)
    r = await ingest.get(f"/v/{token}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert_security_headers(r.headers)
    page = r.text
    assert '<html lang="zh-CN">' in page
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; 老王&amp;小李&#x27;s 面馆" in page
    # every script is an external file from this origin; no inline handlers or styles
    tags = Tags()
    tags.feed(page)
    scripts = [attrs for tag, attrs in tags.seen if tag == "script"]
    assert scripts and all(
        re.fullmatch(r"/static/phone/[0-9a-f]+/main\.js", a.get("src") or "") and a.get("type") == "module"
        for a in scripts
    )
    assert not [a for _, attrs in tags.seen for a in attrs if a.startswith("on") or a == "style"]
    assert not [tag for tag, _ in tags.seen if tag in ("style", "iframe")]
    # the only images are the door pass (its own view, and the home's), filled in by the script
    images = [(a.get("id"), a.get("src")) for tag, a in tags.seen if tag == "img"]
    assert images == [("home-pass-qr", None), ("pass-qr", None)]
    assert 'data-page="poster"' in page and 'data-code-proof=""' in page  # a poster's code: no proof
    assert HOSTILE_NAME in tags.texts  # shown as text, exactly
    assert f'data-code="{token}"' in page
    assert 'data-tz="Asia/Shanghai"' in page and 'data-venue-id="7001"' in page
    for label in ("姓名", "手机号", "身份证号", "登记", "离场登记"):
        assert label in page


async def test_page_embeds_the_configured_time_zone(make_settings: Any, sync_redis: redis.Redis) -> None:
    from checkin.app import create_app

    settings = make_settings(tz="Asia/Urumqi")
    put_venue(sync_redis, settings, 7002)
    async with AsyncTestClient(app=create_app(settings)) as client:
        r = await client.get(f"/v/{sign(settings, 7002)}")
    assert r.status_code == 200 and 'data-tz="Asia/Urumqi"' in r.text


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda t: t[:-2] + ("AA" if t[-2:] != "AA" else "BA"), id="bad-mac"),
        pytest.param(lambda t: t[:-1], id="truncated"),
        pytest.param(lambda t: "not-a-code", id="garbage"),
        pytest.param(lambda t: t * 20, id="very-long"),
        pytest.param(lambda t: t[:10] + "%3Cb%3E" + t[17:], id="markup"),
    ],
)
async def test_tampered_code_is_a_400_page(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings, mangle: Any
) -> None:
    put_venue(sync_redis, settings, 7003)
    r = await ingest.get(f"/v/{mangle(sign(settings, 7003))}")
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("text/html")
    assert_security_headers(r.headers)
    assert "场所码无效" in r.text and "<b>" not in r.text
    assert 'id="app"' not in r.text  # no check-in form on an error page


async def test_tampered_codes_are_counted(ingest: AsyncTestClient[Any], settings: Settings) -> None:
    for _ in range(3):
        assert (await ingest.get("/v/AAAAAAAAAAAAAAAAAAAAAAAAAA")).status_code == 400
    metrics = (await ingest.get("/metrics")).text
    assert 'checkin_phone_page_views_total{result="tampered"} 3' in metrics


async def test_unknown_venue_is_a_404_page(ingest: AsyncTestClient[Any], settings: Settings) -> None:
    r = await ingest.get(f"/v/{sign(settings, 7999)}")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert_security_headers(r.headers)
    assert "场所不存在" in r.text


async def test_inactive_venue_is_a_410_page(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    put_venue(sync_redis, settings, 7004, name=HOSTILE_NAME, active=False)
    r = await ingest.get(f"/v/{sign(settings, 7004)}")
    assert r.status_code == 410
    assert_security_headers(r.headers)
    assert "该场所已停用" in r.text and "不再登记" in r.text  # closed, not "ask for a new code"
    assert "请向场所索取新的场所码" not in r.text
    assert "<script>alert" not in r.text and "&lt;script&gt;" in r.text


async def test_superseded_poster_is_a_410_page(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    put_venue(sync_redis, settings, 7005, code_version=3)
    r = await ingest.get(f"/v/{sign(settings, 7005, version=2)}")
    assert r.status_code == 410
    assert "已更换场所码" in r.text and "请向场所索取新的场所码" in r.text
    r = await ingest.get(f"/v/{sign(settings, 7005, version=3)}")
    assert r.status_code == 200


async def test_code_signed_with_an_old_key_still_opens_the_page(
    make_settings: Any, sync_redis: redis.Redis
) -> None:
    from checkin.app import create_app

    old = Keyring.generate(1)
    newer = Keyring.generate(2).split(",")[-1]
    settings = make_settings(keyring=f"{old},{newer}")
    put_venue(sync_redis, settings, 7006)
    token = codes.sign(Keyring.parse(old), 7006, 1)
    async with AsyncTestClient(app=create_app(settings)) as client:
        r = await client.get(f"/v/{token}")
    assert r.status_code == 200, r.text


async def test_static_assets_are_served_with_types_and_versions(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    put_venue(sync_redis, settings, 7007)
    page = (await ingest.get(f"/v/{sign(settings, 7007)}")).text
    js_url = re.search(r'src="(/static/phone/([0-9a-f]+)/main\.js)"', page)
    css_url = re.search(r'href="(/static/phone\.css\?v=[0-9a-f]+)"', page)
    assert js_url and css_url
    # every module the entry imports, and theirs: from the same versioned folder, as the files are
    folder, version = js_url.group(1).rsplit("/", 1)[0], js_url.group(2)
    todo, seen = ["main.js"], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        r = await ingest.get(f"{folder}/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript"), name
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "max-age=2592000" in r.headers["cache-control"]
        assert r.content == (STATIC / "phone" / name).read_bytes()
        todo += re.findall(r'from "\./([\w-]+\.js)"', r.text)
    assert seen == {p.name for p in (STATIC / "phone").glob("*.js")}
    # the page asks for every module at once rather than one import after another
    preloads = re.findall(r'<link rel="modulepreload" href="([^"]+)">', page)
    assert {f"{folder}/{name}" for name in seen - {"main.js"}} == set(preloads)
    r = await ingest.get(css_url.group(1))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/css")
    assert r.content == (STATIC / "phone.css").read_bytes()
    r = await ingest.get("/static/phone/stale/main.js")
    assert r.status_code == 200 and "max-age=300" in r.headers["cache-control"]
    assert (await ingest.get(f"/static/phone/{version}/nope.js")).status_code == 404
    assert (await ingest.get(f"/static/phone/{version}/..%2Fsw.js")).status_code == 404


async def test_redis_down_gives_a_503_page(make_settings: Any, tmp_path: Path) -> None:
    """Our own redis-server, stopped while the app runs: the page says busy, not 500."""
    from checkin.app import create_app

    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    try:
        own = redis.Redis(port=port)
        for _ in range(100):
            try:
                own.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        settings = make_settings(redis_url=f"redis://127.0.0.1:{port}/0")
        put_venue(own, settings, 7008)
        own.close()
        async with AsyncTestClient(app=create_app(settings)) as client:
            r = await client.get(f"/v/{sign(settings, 7008)}")
            assert r.status_code == 200
            proc.terminate()
            proc.wait(timeout=10)
            r = await client.get(f"/v/{sign(settings, 7008)}")
            assert r.status_code == 503
            assert r.headers["retry-after"] == "5"
            assert "服务繁忙" in r.text and r.headers["content-type"].startswith("text/html")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_script_parses() -> None:
    for module in sorted((STATIC / "phone").glob("*.js")):
        subprocess.run(["node", "--input-type=module", "--check"], stdin=module.open("rb"), check=True)
    subprocess.run(["node", "--check", str(STATIC / "sw.js")], check=True)


async def test_the_home_is_the_page_without_a_code(ingest: AsyncTestClient[Any]) -> None:
    r = await ingest.get("/me", headers={"Accept-Language": "en-GB"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert_security_headers(r.headers)
    page = r.text
    assert 'data-page="home"' in page and 'data-code=""' in page and '<html lang="en">' in page
    tags = Tags()
    tags.feed(page)
    card = [a for tag, a in tags.seen if a.get("id") == "venue-card"]
    assert card and "hidden" in card[0]  # no venue on the home


async def test_the_service_worker_keeps_the_shell_and_never_an_api_answer(
    ingest: AsyncTestClient[Any],
) -> None:
    r = await ingest.get("/sw.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert r.headers["cache-control"] == "no-cache"  # a new page makes a new worker at once
    assert r.headers["x-content-type-options"] == "nosniff"
    body = r.text
    assets = (await ingest.get("/me")).text
    js = re.search(r"/static/phone/([0-9a-f]+)/main\.js", assets)
    css = re.search(r"/static/phone\.css\?v=[0-9a-f]+", assets)
    assert js and css and css.group(0) in body
    for module in (STATIC / "phone").glob("*.js"):  # the shell's every module, at the page's version
        assert f'"/static/phone/{js.group(1)}/{module.name}"' in body
    assert '"/me"' in body and "__" not in body  # every placeholder filled in
    assert 'url.pathname.indexOf("/v1/") === 0) return;' in body
    # no other host, no inline anything: the worker's own policy allows only this origin
    assert "http" not in body.replace("http(s)", "")
    assert r.headers["content-security-policy"] == "default-src 'self'"


async def test_a_screen_code_page_carries_a_proof_that_it_was_seen_current(
    make_settings: Any, sync_redis: redis.Redis
) -> None:
    from checkin.app import create_app

    settings = make_settings(rotating_step_s=30)
    keyring = Keyring.parse(settings.keyring)
    put_venue(sync_redis, settings, 7011, code_mode="rotating")
    step = codes.current_step(30)
    current = codes.sign_rotating(keyring, 7011, 1, step)
    photo = codes.sign_rotating(keyring, 7011, 1, step - 3)  # the screen a minute and a half ago
    async with AsyncTestClient(app=create_app(settings)) as client:
        before = int(time.time() * 1000)
        r = await client.get(f"/v/{current}")
        assert r.status_code == 200, r.text
        proof = re.search(r'data-code-proof="([^"]+)"', r.text)
        assert proof is not None
        now = int(time.time() * 1000)
        seen = codes.verify_seen(keyring, current, proof.group(1), now, 300)
        assert seen is not None and before <= seen <= now
        # bound to the code, and to its key; a proof older than the grace is refused
        assert codes.verify_seen(keyring, photo, proof.group(1), now, 300) is None
        assert (
            codes.verify_seen(Keyring.parse(Keyring.generate(1)), current, proof.group(1), now, 300) is None
        )
        assert codes.verify_seen(keyring, current, proof.group(1), now + 301_000, 300) is None
        # a photo opened later gets the 410 page and no proof
        r = await client.get(f"/v/{photo}")
        assert r.status_code == 410 and "data-code-proof" not in r.text


@pytest.mark.parametrize(
    ("cookie", "accept", "lang"),
    [
        (None, None, "zh-CN"),
        (None, "en-GB,en;q=0.9", "en"),
        (None, "fr-FR,en;q=0.5,zh;q=0.4", "en"),
        (None, "en;q=0.3,zh-CN;q=0.8", "zh-CN"),
        (None, "zh-TW,en;q=0.9", "zh-CN"),
        (None, "de-DE,fr;q=0.9", "zh-CN"),
        (None, "en;q=0,zh;q=0.1", "zh-CN"),
        (None, "en;q=abc", "zh-CN"),
        ("zh-CN", "en-US", "zh-CN"),
        ("en", "zh-CN", "en"),
        ("klingon", "en-US", "en"),
    ],
)
def test_the_language_is_the_remembered_choice_else_the_browsers(
    cookie: str | None, accept: str | None, lang: str
) -> None:
    from checkin.pages.phone import pick_lang

    assert pick_lang(cookie, accept) == lang


async def test_english_on_first_visit_and_the_error_pages_too(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    put_venue(sync_redis, settings, 7010, code_version=2, name="Riverside Market")
    english = {"Accept-Language": "en-US,en;q=0.9"}
    r = await ingest.get(f"/v/{sign(settings, 7010, version=2)}", headers=english)
    assert r.status_code == 200
    assert '<html lang="en">' in r.text and 'data-lang="en"' in r.text
    assert "accept-language" in r.headers["vary"].lower()
    r = await ingest.get(f"/v/{sign(settings, 7010, version=2)}")
    assert '<html lang="zh-CN">' in r.text and 'data-lang="zh-CN"' in r.text

    cases = [
        ("/v/not-a-code", 400, "Invalid venue code"),
        (f"/v/{sign(settings, 7998)}", 404, "Venue not found"),
        (f"/v/{sign(settings, 7010, version=1)}", 410, "Venue code replaced"),
        ("/v/" + "A" * 300, 400, "This is not a valid venue code."),
    ]
    for path, status, text in cases:
        r = await ingest.get(path, headers=english)
        assert r.status_code == status
        assert '<html lang="en">' in r.text and text in r.text, r.text
        assert not re.search(r"[\u4e00-\u9fff]", r.text.split("<body>")[1]), r.text
    r = await ingest.get(f"/v/{sign(settings, 7010, version=1)}", headers=english)
    assert "The venue “Riverside Market” has a new code" in r.text
    # the choice made on the page (its cookie) wins over the browser's languages
    r = await ingest.get("/v/not-a-code", headers={**english, "Cookie": "venue-checkin.lang=zh-CN"})
    assert '<html lang="zh-CN">' in r.text and "场所码无效" in r.text


async def test_the_phone_fields_take_pasted_numbers_whole(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    put_venue(sync_redis, settings, 7011)
    tags = Tags()
    tags.feed((await ingest.get(f"/v/{sign(settings, 7011)}")).text)
    phones = [a for tag, a in tags.seen if tag == "input" and a.get("type") == "tel"]
    assert [a["id"] for a in phones] == ["reg-phone", "cmp-phone"]
    assert all("maxlength" not in a for a in phones)  # "+86 138-1234-5678" is not cut; the script strips
