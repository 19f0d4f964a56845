"""The console defects a tracer under pressure hit, each in headless Chromium against a served tracing app:
one view at a time, no stale results after an error, a graph whose lines are the `via` lists, local-time
pickers, names in tables, finding a person by id number or phone, flagging a site with a notice level,
phone on exposure rows, the analyst queue with ack / resolve, zh-CN and English."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from checkin.platform import persons
from checkin.platform.instants import format_ms
from checkin.platform.keyring import Keyring
from tests.support.browser import chromium
from tests.support.console import Server, console_server, picker, sign_in
from tests.support.ingest import id_number
from tests.support.trace_world import COMMUNITIES, HOUR_MS, MIN_MS
from tests.support.values import ADMIN_KEY, REDIS_URL, own_prefix
from venues.model import Venue

pytestmark = pytest.mark.browser

TZ = "Asia/Shanghai"
NAMES = {"7": "海底捞(南京西路店)", "8": "星巴克 静安寺", "9": "Central Gym"}
PERSON_12 = ("王小明", "13912340012", id_number(12))
PERSON_9 = ("李四光", "13912340009", id_number(9))


def register(
    client: redis.Redis, server: Server, keyring: Keyring, pid: int, who: tuple[str, str, str]
) -> None:
    """A registered person as the registry stores one: profile hash and the keyed-hash indexes."""
    name, phone, idn = who
    idh = persons.id_hash(keyring, idn)
    blob = persons.phone_cipher(keyring).encrypt(phone, idh)
    client.hset(server.keys.person(pid), mapping={"name": name, "phone": blob, "idh": idh})
    client.set(server.keys.person_by_id_hash(idh), pid)
    client.sadd(server.keys.person_by_phone_hash(persons.phone_hash(keyring, phone)), pid)


def alert(n: int, community: str, at_ms: int) -> dict[str, Any]:
    return {
        "alert_id": f"{at_ms:012x}000{n:05x}00",
        "kind": "red_code_entry",
        "severity": "critical",
        "at": format_ms(at_ms),
        "person_id": 100 + n,
        "venue_id": 7,
        "district": community[:6],
        "street": community[:9],
        "community": community,
        "details": {},
    }


@contextmanager
def rich_world(tmp_path: Path, prefix: str) -> Iterator[Server]:
    """Index 12 with first-degree 9 and 15 at 海底捞; 14 and 17 met 9, 16 met 15 later; alerts of two
    communities (one overdue); 12 and 9 registered (names, phones, id numbers)."""
    hour = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=6)
    base = int(hour.timestamp()) * 1000
    venues = {"7": [60, COMMUNITIES[0]], "8": [60, COMMUNITIES[0]], "9": [60, COMMUNITIES[2]]}
    checkins = [
        [7, [12], base, None],
        [7, [9], base + 10 * MIN_MS, None],
        [7, [15], base + 20 * MIN_MS, None],
        [8, [9, 14], base + 120 * MIN_MS, None],  # 14 via 9
        [8, [17], base + 125 * MIN_MS, None],  # 17 via 9
        [9, [15, 16], base + 200 * MIN_MS, None],  # 16 via 15
    ]
    now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    alerts = [
        alert(1, COMMUNITIES[0], now - 2 * HOUR_MS),  # overdue: far beyond 900 s unanswered
        alert(2, COMMUNITIES[0], now - 60_000),
        alert(3, COMMUNITIES[2], now - 60_000),  # another community: never in this analyst's queue
    ]
    keyring_text = Keyring.generate(1)
    spec = {"base": base, "venues": venues, "checkins": checkins, "venue_names": NAMES, "alerts": alerts}
    with console_server(
        tmp_path, prefix, spec, tz=TZ, scoped_analyst=COMMUNITIES[0], keyring=keyring_text
    ) as srv:
        client = redis.Redis.from_url(REDIS_URL)
        keyring = Keyring.parse(keyring_text)
        register(client, srv, keyring, 12, PERSON_12)
        register(client, srv, keyring, 9, PERSON_9)
        for vid, name in NAMES.items():  # the registry knows the venues (flagging a site looks there)
            community = str(venues[vid][1])
            v = Venue(
                venue_id=int(vid),
                name=name,
                district=community[:6],
                street=community[:9],
                community=community,
                lat=31.23,
                lon=121.47,
            )
            client.hset(srv.keys.venue(int(vid)), mapping=v.to_hash())  # type: ignore[arg-type]
        client.close()
        yield srv


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One served world for the module (starting one takes ~8 s): each test reads its own part of it
    (its own page, its own persons or alerts) and none changes what another reads."""
    with own_prefix() as prefix, rich_world(tmp_path_factory.mktemp("console"), prefix) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def new_page(browser: Any, locale: str = "en-US", width: int = 1440, height: int = 900) -> Any:
    context = browser.new_context(
        accept_downloads=True, locale=locale, viewport={"width": width, "height": height}
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    return page


VIEWS = ("#login-view", "#role-view", "#tracer-view", "#sources-view", "#analyst-view")


def visible_views(page: Any) -> list[str]:
    return [v for v in VIEWS if page.is_visible(v)]


def trace(page: Any, server: Server, person: str, depth: str = "2") -> None:
    page.fill("#trace-person", person)
    page.fill("#trace-since", picker(server.base_ms - HOUR_MS, TZ))
    page.fill("#trace-until", picker(server.base_ms + 10 * HOUR_MS, TZ))
    page.select_option("#trace-depth", depth)
    page.fill("#trace-reason", "case 14: hotpot cluster")
    page.click("#trace-run")


def test_exactly_one_view_and_readable_tabs(browser: Any, world: Server) -> None:
    page = new_page(browser)
    page.goto(world.base + "/console")
    assert visible_views(page) == ["#login-view"]
    sign_in(page, world, world.tracer_key)
    assert visible_views(page) == ["#tracer-view"]
    assert page.input_value("#api-key") == ""  # the key does not stay in the form
    # a tracer's tabs are the tracer's: no analyst tab
    assert [t for t in ("tracer", "sources", "analyst") if page.is_visible(f"nav .tab[data-view='{t}']")] == [
        "tracer",
        "sources",
    ]
    page.click("nav .tab[data-view='sources']")
    assert visible_views(page) == ["#sources-view"]
    # the inactive tab is not white on white
    colours = page.eval_on_selector(
        "nav .tab:not(.active):not([hidden])",
        "b => [getComputedStyle(b).color, getComputedStyle(b).backgroundColor]",
    )
    assert colours[0] != colours[1]
    page.click("nav .tab[data-view='tracer']")
    assert visible_views(page) == ["#tracer-view"]
    assert page.errors == []


def test_stale_results_are_cleared_after_an_error(browser: Any, world: Server) -> None:
    page = new_page(browser)
    sign_in(page, world, world.tracer_key)
    trace(page, world, "12")
    page.wait_for_selector("#contacts-table tbody tr[data-person-id='9']")
    page.click("#contacts-table tbody tr[data-person-id='9'] button[data-phone-for='9']")
    page.wait_for_selector("#contact-details:has-text('13912340009')")
    # an unknown person: the error shows, and nothing of person 12 stays under it
    page.fill("#trace-person", "99999")
    page.click("#trace-run")
    page.wait_for_selector("#trace-error:has-text('no stays recorded for person 99999')")
    assert page.locator("#contacts-table tbody tr").count() == 0
    assert page.locator("#visits-table tbody tr").count() == 0
    assert page.locator("#graph svg").count() == 0 and page.locator("#timeline-chart svg").count() == 0
    assert page.inner_text("#contact-details") == "" and page.inner_text("#trace-summary") == ""
    # the same after a bad date
    trace(page, world, "12")
    page.wait_for_selector("#contacts-table tbody tr[data-person-id='9']")
    page.fill("#trace-until", picker(world.base_ms - 2 * HOUR_MS, TZ))  # before From
    page.click("#trace-run")
    page.wait_for_selector("#trace-error:has-text('From must be before To')")
    assert page.locator("#contacts-table tbody tr").count() == 0
    assert page.errors == []


def test_graph_edges_are_the_via_lists_and_cross_no_node(browser: Any, world: Server) -> None:
    page = new_page(browser)
    sign_in(page, world, world.tracer_key)
    trace(page, world, "12")
    page.wait_for_selector("#graph svg g[data-person-id='16']")
    answer = httpx.post(
        world.base + "/v1/trace/contacts",
        json={
            "person_id": 12,
            "since": format_ms(world.base_ms - HOUR_MS),
            "until": format_ms(world.base_ms + 10 * HOUR_MS),
            "depth": 2,
            "reason": "check",
        },
        headers={"Authorization": f"Bearer {world.tracer_key}"},
    ).json()
    assert sorted(c["person_id"] for c in answer["contacts"]) == [9, 15]
    assert {c["person_id"]: c["via"] for c in answer["second_degree"]} == {14: [9], 16: [15], 17: [9]}
    expected = {(12, c["person_id"]) for c in answer["contacts"]} | {
        (v, c["person_id"]) for c in answer["second_degree"] for v in c["via"]
    }
    lines = page.eval_on_selector_all(
        "#graph svg line",
        "ls => ls.map(l => [+l.dataset.from, +l.dataset.to, +l.getAttribute('x1'), +l.getAttribute('y1'),"
        " +l.getAttribute('x2'), +l.getAttribute('y2')])",
    )
    assert {(a, b) for a, b, *_ in lines} == expected and len(lines) == len(expected)
    nodes = page.eval_on_selector_all(
        "#graph svg g[data-person-id] circle",
        "cs => cs.map(c => [+c.parentNode.dataset.personId, +c.getAttribute('cx'), +c.getAttribute('cy'),"
        " +c.getAttribute('r')])",
    )
    for a, b, x1, y1, x2, y2 in lines:  # no line passes through a node that is not one of its ends
        for pid, cx, cy, r in nodes:
            if pid in (a, b):
                continue
            length = math.hypot(x2 - x1, y2 - y1)
            u = max(0.0, min(1.0, ((cx - x1) * (x2 - x1) + (cy - y1) * (y2 - y1)) / length**2))
            assert math.hypot(x1 + u * (x2 - x1) - cx, y1 + u * (y2 - y1) - cy) > r + 2, (a, b, pid)
    assert page.errors == []


def test_find_by_id_number_or_phone_names_and_local_time(browser: Any, world: Server) -> None:
    page = new_page(browser)
    sign_in(page, world, world.tracer_key)
    assert "Asia/Shanghai (UTC+08:00)" in page.inner_text("#trace-form .tz >> nth=0")
    page.fill("#trace-reason", "case 14: hotpot cluster")
    page.fill("#find-query", PERSON_12[2])
    page.click("#find-run")
    page.wait_for_selector("#find-results button[data-person-id='12']:has-text('王*明')")
    assert page.input_value("#trace-person") == "12"
    page.fill("#find-query", "139 1234 0009")
    page.click("#find-run")
    page.wait_for_selector("#find-results button[data-person-id='9']")
    page.fill("#find-query", "13900000000")
    page.click("#find-run")
    page.wait_for_selector("#find-results:has-text('Nobody registered')")
    # local wall time in the pickers: read as Asia/Shanghai, not as UTC (8 h apart)
    trace(page, world, "12")
    page.wait_for_selector("#contacts-table tbody tr[data-person-id='9']")
    assert page.inner_text("#visits-table tbody tr td:nth-child(1)") == picker(world.base_ms, TZ).replace(
        "T", " "
    )
    assert page.inner_text("#visits-table tbody tr td:nth-child(3)") == NAMES["7"]
    row9 = page.inner_text("#contacts-table tbody tr[data-person-id='9']")
    assert "李*光" in row9 and NAMES["7"] in row9
    assert NAMES["8"] in page.inner_text("#contacts-table tbody tr[data-person-id='14']")
    lanes = page.eval_on_selector_all(
        "#timeline-chart svg text.lane", "ts => ts.map(t => t.firstChild.nodeValue)"
    )
    assert lanes == [NAMES["7"]]
    page.fill("#trace-since", picker(world.base_ms + 7 * HOUR_MS, TZ))  # UTC reading would include the stays
    page.fill("#trace-until", picker(world.base_ms + 9 * HOUR_MS, TZ))
    page.click("#trace-run")
    page.wait_for_selector("#timeline-chart:has-text('No stays in this window')")
    assert "from 0 stay(s)" in page.inner_text("#trace-summary")
    audit = httpx.get(world.base + "/v1/audit", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()
    assert sum(e["action"] == "person_lookup" for e in audit["entries"]) == 3
    assert page.errors == []


def test_exposure_phone_csv_and_flagging_a_site(browser: Any, world: Server) -> None:
    page = new_page(browser)
    sign_in(page, world, world.tracer_key)
    page.fill("#exposure-sites .site-venue", "7")
    page.fill("#exposure-sites .site-since", picker(world.base_ms, TZ))
    page.fill("#exposure-sites .site-until", picker(world.base_ms + 30 * MIN_MS, TZ))
    page.fill("#exposure-reason", "site screening")
    page.click("#exposure-form button[type=submit]")
    page.wait_for_selector("#exposures-table tbody tr[data-person-id='9']")
    assert NAMES["7"] in page.inner_text("#exposures-table tbody tr[data-person-id='9']")
    page.click("#exposures-table tbody tr[data-person-id='9'] button[data-phone-for='9']")
    page.wait_for_selector("#exposure-details:has-text('13912340009')")
    with page.expect_download() as info:
        page.click("#exposure-csv")
    raw = Path(info.value.path()).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and NAMES["7"] in raw.decode("utf-8-sig")

    page.fill("#flag-venue", "7")
    page.fill("#flag-since", picker(world.base_ms, TZ))
    page.fill("#flag-until", picker(world.base_ms + HOUR_MS, TZ))
    page.select_option("#flag-level", "isolate")
    page.fill("#flag-message", "请居家观察")
    page.fill("#flag-reason", "case 14")
    page.click("#flag-run")
    page.wait_for_selector("#flag-result:has-text('flagged')")
    sites = httpx.get(
        world.base + "/v1/exposure-sites", headers={"Authorization": f"Bearer {world.tracer_key}"}
    ).json()["sites"]
    assert [(s["venue_id"], s["level"], s["message"], s["since"]) for s in sites] == [
        (7, "isolate", "请居家观察", format_ms(world.base_ms))
    ]
    assert page.errors == []


def test_analyst_queue_ack_resolve_and_time_to_ack(browser: Any, world: Server) -> None:
    page = new_page(browser)
    sign_in(page, world, world.analyst_key)
    assert visible_views(page) == ["#analyst-view"]
    assert page.input_value("#queue-level") == "community"  # a 12-digit scope: the community level
    page.wait_for_selector("#queue-table tbody tr[data-alert-id]")
    ids = page.eval_on_selector_all(
        "#queue-table tbody tr[data-alert-id]", "rs => rs.map(r => r.dataset.alertId)"
    )
    first, second = ids  # oldest first; the other community's alert is not there
    assert page.get_attribute(f"tr[data-alert-id='{first}']", "class") == "overdue"
    assert page.get_attribute(f"tr[data-alert-id='{second}']", "class") == ""
    assert NAMES["7"] in page.inner_text(f"#queue-table tr[data-alert-id='{first}']")
    page.click(f"#queue-table tr[data-alert-id='{first}'] button[data-action='ack']")
    page.wait_for_selector(f"#queue-table tr[data-alert-id='{first}']", state="detached")
    assert page.locator("#queue-table tbody tr[data-alert-id]").count() == 1
    assert page.inner_text("#acktime-table tr[data-level='community'] td:nth-child(2)") == "1"
    page.select_option("#queue-state", "acked")
    page.wait_for_selector(f"#queue-table tr[data-alert-id='{first}']")
    page.select_option(f"#queue-table tr[data-alert-id='{first}'] select.outcome", "isolated")
    page.click(f"#queue-table tr[data-alert-id='{first}'] button[data-action='resolve']")
    page.wait_for_selector("#queue-table:has-text('Nothing waiting here')")
    history = httpx.get(
        world.base + "/v1/alerts",
        params={"since": format_ms(0)},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ).json()["alerts"]
    done = next(a for a in history if a["alert_id"] == first)
    assert done["resolved"] is True and done["outcome"] == "isolated" and done["acked_by"]
    assert page.errors == []


def test_zh_cn_for_a_zh_browser_and_the_choice_is_remembered(browser: Any, world: Server) -> None:
    page = new_page(browser, locale="zh-CN")
    page.goto(world.base + "/console")
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert page.inner_text("#login-view h2") == "登录" and page.title() == "场所码指挥台"
    page.fill("#api-key", "ck_not_a_key")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-error:has-text('密钥无效')")
    page.select_option("#lang", "en")
    assert page.inner_text("#login-view h2") == "Sign in"
    page.reload()
    assert page.inner_text("#login-view h2") == "Sign in" and page.get_attribute("html", "lang") == "en"
    page.select_option("#lang", "zh-CN")
    sign_in(page, world, world.analyst_key)
    page.wait_for_selector("#queue-summary:has-text('社区级')")
    assert page.inner_text("nav .tab[data-view='analyst']") == "研判"
    assert page.errors == []
