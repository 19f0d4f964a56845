"""The console as tracers and analysts use it, in headless Chromium at 1440x900 against a served tracing
app: the 溯源 view (cases by id, phone or from a contacts answer, common venues on a timeline, possible
sources, flagging a common venue in one click, its CSV), a console that fits the key's role, words and
names (zh-CN tables, language switches, venue and region names), the queue, the graph's labels and the
timeline's bars. Screenshots go to ``$CONSOLE_SHOTS`` when it is set."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import redis

from checkin.platform import persons
from checkin.platform.instants import format_ms
from checkin.platform.keyring import Keyring
from tests.support.browser import chromium
from tests.support.console import Server, add_key, console_server, picker, sign_in
from tests.support.ingest import id_number
from tests.support.trace_world import COMMUNITIES, HOUR_MS, MIN_MS
from tests.support.values import ADMIN_KEY, REDIS_URL, own_prefix
from tracing.rules.alerts import Alert, to_fields
from venues.model import Venue

pytestmark = pytest.mark.browser

TZ = "Asia/Shanghai"
NAMES = {"7": "海底捞火锅(南京西路店)", "8": "星巴克 静安寺", "9": "Central Gym"}
REGIONS = {
    "620102": "城关区",
    "620102001": "酒泉路街道",
    "620102001001": "金塔巷社区",
    "620102001002": "张掖路社区",
    "620103": "七里河区",
    "620103002": "西园街道",
    "620103002001": "彭家坪社区",
}
PEOPLE = {  # person -> (name, phone); long names make long labels
    12: ("欧阳娜娜娜娜娜娜", "13912340012"),
    21: ("王小明", "13912340021"),
    22: ("李四光", "13912340022"),
    23: ("张三丰", "13912340023"),
    30: ("司马相如相如", "13912340030"),
}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
ENGLISH_WORDS = re.compile(
    r"\b(green|yellow|red|pass|deny|restricted|overdue|critical|warning|info|community|street|district|city|"
    r"handled|code entry)\b",
    re.IGNORECASE,
)


def register(client: redis.Redis, server: Server, keyring: Keyring, pid: int, name: str, phone: str) -> None:
    idh = persons.id_hash(keyring, id_number(pid))
    client.hset(
        server.keys.person(pid),
        mapping={"name": name, "phone": persons.phone_cipher(keyring).encrypt(phone, idh), "idh": idh},
    )
    client.set(server.keys.person_by_id_hash(idh), pid)
    client.sadd(server.keys.person_by_phone_hash(persons.phone_hash(keyring, phone)), pid)


def alert(n: int, at_ms: int, venue: int, person: int | None, level: str = "community") -> dict[str, Any]:
    community = COMMUNITIES[0] if venue != 9 else COMMUNITIES[2]
    return {
        "alert_id": f"{at_ms:012x}000{n:05x}00",
        "kind": "red_code_entry",
        "severity": "critical",
        "at": format_ms(at_ms),
        "person_id": person,
        "venue_id": venue,
        "district": community[:6],
        "street": community[:9],
        "community": community,
        "details": {},
        "level": level,
        "escalated_at": None if level == "community" else format_ms(at_ms + 2700_000),
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A cluster at 海底捞: index 12 two hours there; cases 21, 22, 23 arrive while 12 and 30 are there;
    21 and 22 meet again at the Starbucks; 21 scans again and again at the gym. Alerts at the community
    and the city level; region names imported; the persons registered."""
    hour = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=10)
    base = int(hour.timestamp()) * 1000
    venues = {"7": [60, COMMUNITIES[0]], "8": [60, COMMUNITIES[0]], "9": [60, COMMUNITIES[2]]}
    checkins = [
        [7, [12], base, 120 * MIN_MS],
        [7, [21], base + 10 * MIN_MS, None],
        [7, [22], base + 20 * MIN_MS, None],
        [7, [23], base + 30 * MIN_MS, None],
        [7, [30], base + 15 * MIN_MS, None],
        [8, [21, 22], base + 180 * MIN_MS, None],
        [9, [23], base + 300 * MIN_MS, None],
        [9, [21], base + 400 * MIN_MS, None],  # three scans a minute apart: three stays, three bars
        [9, [21], base + 401 * MIN_MS, None],
        [9, [21], base + 402 * MIN_MS, None],
    ]
    now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    alerts = [
        alert(1, now - 2 * HOUR_MS, 7, 21),
        alert(2, now - 3 * HOUR_MS, 8, 22, level="city"),
        alert(3, now - 4 * HOUR_MS, 7, None, level="city"),
    ]
    keyring_text = Keyring.generate(1)
    spec = {"base": base, "venues": venues, "checkins": checkins, "venue_names": NAMES, "alerts": alerts}
    with (
        own_prefix() as prefix,
        console_server(
            tmp_path_factory.mktemp("console"),
            prefix,
            spec,
            tz=TZ,
            scoped_analyst=COMMUNITIES[0],
            keyring=keyring_text,
        ) as srv,
    ):
        client = redis.Redis.from_url(REDIS_URL)
        keyring = Keyring.parse(keyring_text)
        for pid, (name, phone) in PEOPLE.items():
            register(client, srv, keyring, pid, name, phone)
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
        body = "code,name\n" + "".join(f"{c},{n}\n" for c, n in REGIONS.items())
        r = httpx.post(srv.base + "/v1/regions/import", content=body.encode(), headers=ADMIN, timeout=60)
        assert r.status_code == 200, r.text
        yield srv


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def new_page(browser: Any, locale: str = "en-US") -> Any:
    context = browser.new_context(
        accept_downloads=True, locale=locale, viewport={"width": 1440, "height": 900}, timezone_id="UTC"
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    return page


def shot(page: Any, name: str) -> None:
    where = os.environ.get("CONSOLE_SHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(where) / f"{name}.png"), full_page=True)


def visible_tabs(page: Any) -> list[str]:
    return [t for t in ("tracer", "sources", "analyst") if page.is_visible(f"nav .tab[data-view='{t}']")]


def window(page: Any, server: Server, prefix: str) -> None:
    page.fill(f"#{prefix}-since", picker(server.base_ms - HOUR_MS, TZ))
    page.fill(f"#{prefix}-until", picker(server.base_ms + 12 * HOUR_MS, TZ))


def boxes_overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return not (
        a["right"] <= b["left"]
        or b["right"] <= a["left"]
        or a["bottom"] <= b["top"]
        or b["bottom"] <= a["top"]
    )


BOXES = (
    "els => els.map(e => { const r = e.getBoundingClientRect(); const g = e.closest('[data-person-id]');"
    " return {left: r.left, right: r.right, top: r.top, bottom: r.bottom,"
    " id: g ? g.dataset.personId : ''}; })"
)


def test_source_tracing_from_cases_by_id_phone_and_a_contacts_answer(browser: Any, world: Server) -> None:
    page = new_page(browser)
    sign_in(page, world, world.tracer_key)
    # cases from a contacts answer: trace 12, check 21 and 22, take them to 溯源
    page.fill("#trace-person", "12")
    window(page, world, "trace")
    page.fill("#trace-reason", "cluster 0314: hotpot")
    page.click("#trace-run")
    page.wait_for_selector("#contacts-table tbody tr[data-person-id='21']")
    page.check("#contacts-table tr[data-person-id='21'] input.take-case")
    page.check("#contacts-table tr[data-person-id='22'] input.take-case")
    page.click("#trace-to-sources")
    assert page.is_visible("#sources-view") and not page.is_visible("#tracer-view")
    chips = page.eval_on_selector_all("#sources-cases .chip", "cs => cs.map(c => +c.dataset.case)")
    assert chips == [12, 21, 22]
    assert page.input_value("#sources-reason") == "cluster 0314: hotpot"
    # one more by phone (a lookup), one pasted, one removed again
    page.fill("#sources-query", "139 1234 0023")
    page.click("#sources-add")
    page.wait_for_selector("#sources-cases .chip[data-case='23']:has-text('张*丰')")
    page.fill("#sources-paste", "30, 99")
    page.click("#sources-paste-go")
    page.click("#sources-cases .chip[data-case='99'] .chip-x")
    page.click("#sources-cases .chip[data-case='12'] .chip-x")
    page.click("#sources-cases .chip[data-case='30'] .chip-x")
    assert page.eval_on_selector_all("#sources-cases .chip", "cs => cs.map(c => +c.dataset.case)") == [
        21,
        22,
        23,
    ]
    page.click("#sources-run")
    page.wait_for_selector("#sources-venues-table tbody tr[data-venue-id]")
    answer = httpx.post(
        world.base + "/v1/trace/sources",
        json={
            "person_ids": [21, 22, 23],
            "since": format_ms(world.base_ms - HOUR_MS),
            "until": format_ms(world.base_ms + 12 * HOUR_MS),
            "reason": "check",
        },
        headers={"Authorization": f"Bearer {world.tracer_key}"},
    ).json()
    venues = [v["venue_id"] for v in answer["common_venues"]]
    assert venues == [
        7,
        8,
        9,
    ]  # three cases at the hotpot; two at the Starbucks together, two at the gym apart
    assert [s["person_id"] for s in answer["possible_sources"]] == [12, 30]  # 12 was there longest
    rows = page.eval_on_selector_all(
        "#sources-venues-table tbody tr", "rs => rs.map(r => +r.dataset.venueId)"
    )
    assert rows == venues
    assert NAMES["7"] in page.inner_text("#sources-venues-table tr[data-venue-id='7']")
    # the timeline: one lane per common venue, one mark per case of that venue
    lanes = page.eval_on_selector_all(
        "#sources-svg g.venue-lane",
        "ls => ls.map(l => [+l.dataset.venueId,"
        " [...l.querySelectorAll('g.case-mark')].map(m => +m.dataset.personId)])",
    )
    assert lanes == [[v["venue_id"], v["cases"]] for v in answer["common_venues"]]
    people = page.eval_on_selector_all(
        "#sources-people-table tbody tr", "rs => rs.map(r => +r.dataset.personId)"
    )
    assert people == [12, 30]
    assert "司****如" in page.inner_text("#sources-people-table tr[data-person-id='30']")
    # the persons it names are bound: the phone of a possible source
    page.click("#sources-people-table tr[data-person-id='30'] button[data-phone-for='30']")
    page.wait_for_selector("#sources-details:has-text('13912340030')")
    shot(page, "sources-en")

    # flag the first common venue in one click, its window prefilled from the cases' stays there
    page.select_option("#sources-level", "test")
    page.click("#sources-venues-table tr[data-venue-id='7'] button[data-flag-venue='7']")
    page.wait_for_selector("#sources-venues-table tr[data-venue-id='7'] .flagged")
    sites = httpx.get(
        world.base + "/v1/exposure-sites", headers={"Authorization": f"Bearer {world.tracer_key}"}
    ).json()["sites"]
    first = answer["common_venues"][0]
    last_end = max(s["end_at"] for s in first["stays"])
    assert [(s["venue_id"], s["level"], s["since"], s["until"]) for s in sites] == [
        (7, "test", first["first_at"], last_end)
    ]

    # the CSV: local times Python's csv module reads as dates, masked names beside the ids
    with page.expect_download() as info:
        page.click("#sources-csv")
    raw = Path(info.value.path()).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows_csv = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    venue7 = rows_csv[0]
    assert (venue7["section"], venue7["venue_ids"], venue7["venue_names"]) == (
        "common_venue",
        "7",
        NAMES["7"],
    )
    assert venue7["case_ids"] == "21 22 23" and venue7["case_names"] == "王*明; 李*光; 张*丰"
    local = dt.datetime.fromisoformat(venue7[f"first_at ({TZ})"])
    assert local.tzinfo is None and local.replace(tzinfo=ZoneInfo(TZ)) == dt.datetime.fromisoformat(
        first["first_at"]
    )
    source = next(r for r in rows_csv if r["person_id"] == "30")
    assert source["name"] == "司****如" and source["section"] == "possible_source"
    assert page.errors == []


def test_console_fits_the_key_role(browser: Any, world: Server) -> None:
    # a tracer-only key: no analyst tab
    page = new_page(browser)
    sign_in(page, world, world.tracer_key)
    assert visible_tabs(page) == ["tracer", "sources"]
    # an analyst: no tracer view, so no Flag form
    page = new_page(browser)
    sign_in(page, world, world.analyst_key)
    assert visible_tabs(page) == ["analyst"]
    assert page.is_visible("#analyst-view") and not page.is_visible("#flag-form")
    page.click("nav .tab[data-view='analyst']")
    assert not page.is_visible("#flag-form") and not page.is_visible("#tracer-view")
    # a key the console has nothing for says so plainly, in the page's language, with no tab
    for locale, words in (("en-US", "cannot use the console"), ("zh-CN", "不能使用指挥台")):
        page = new_page(browser, locale=locale)
        page.goto(world.base + "/console")
        page.fill("#api-key", add_key(world, "operator"))
        page.click("#login-form button[type=submit]")
        page.wait_for_selector(f"#role-message:has-text('{words}')")
        assert visible_tabs(page) == [] and not page.is_visible("#tracer-view")
        assert not page.is_visible("#analyst-view")
        shot(page, f"role-operator-{locale}")
    # the live feed stops on 401 / 403 and says why, instead of retrying forever
    for status in (401, 403):
        page = new_page(browser, locale="zh-CN")
        calls: list[str] = []

        def refusing(status: int) -> Any:
            def refuse(route: Any) -> None:
                calls.append(route.request.url)
                route.fulfill(
                    status=status,
                    content_type="application/problem+json",
                    body=f'{{"status": {status}, "title": "no", "detail": "analyst role required"}}',
                )

            return refuse

        page.route("**/v1/alerts/stream*", refusing(status))
        sign_in(page, world, world.analyst_key)
        page.wait_for_selector("#alerts-status:has-text('实时预警已停止')")
        time.sleep(4)  # a retry would come after 1 s, 2 s, ...
        assert len(calls) == 1, calls
        text = page.inner_text("#alerts-status")
        assert "analyst role required" not in text and ("此密钥" in text)
        assert page.errors == []


def test_zh_cn_tables_use_no_english_words_and_a_switch_redraws_live_rows(
    browser: Any, world: Server
) -> None:
    page = new_page(browser, locale="zh-CN")
    sign_in(page, world, world.tracer_key)
    page.fill("#trace-person", "21")
    window(page, world, "trace")
    page.fill("#trace-reason", "病例 21")
    page.click("#trace-run")
    page.wait_for_selector("#visits-table tbody tr")
    assert page.inner_text("#visits-table tbody tr >> nth=0").count("绿码") == 1
    assert "通过" in page.inner_text("#visits-table tbody tr >> nth=0")
    # region names where codes were, the code on hover
    cell = page.locator("#visits-table tbody tr >> nth=0").locator("td.region")
    assert cell.inner_text() == REGIONS[COMMUNITIES[0]] and cell.get_attribute("title") == COMMUNITIES[0]
    for table in ("#visits-table", "#contacts-table"):
        text = " ".join(page.eval_on_selector_all(f"{table} tbody td", "ts => ts.map(t => t.innerText)"))
        assert not ENGLISH_WORDS.search(text), (table, text)
    shot(page, "tracer-zh")

    city = add_key(world, "analyst")  # a city-level analyst: the queue of the last level
    page = new_page(browser, locale="zh-CN")
    sign_in(page, world, city)
    page.wait_for_selector("#queue-table tbody tr[data-alert-id]")
    page.wait_for_selector("#alerts-table tbody tr[data-alert-id]")
    page.wait_for_selector("#districts-table tbody tr[data-district]")
    for table in ("#queue-table", "#alerts-table", "#districts-table", "#acktime-table"):
        text = " ".join(page.eval_on_selector_all(f"{table} tbody td", "ts => ts.map(t => t.innerText)"))
        assert not ENGLISH_WORDS.search(text), (table, text)
    assert page.inner_text("#districts-table tbody tr[data-district='620102'] td >> nth=0") == "城关区"
    # a live alert for a venue no earlier answer named: shown by name, in Chinese, then in English
    page.wait_for_selector("#alerts-status:has-text('实时连接中')")
    live = Alert(
        alert_id="01" + "a" * 20,
        kind="red_code_entry",
        severity="critical",
        at=format_ms(world.base_ms + 5 * HOUR_MS),
        person_id=23,
        venue_id=9,
        district=COMMUNITIES[2][:6],
        street=COMMUNITIES[2][:9],
        community=COMMUNITIES[2],
        details={},
    )
    client = redis.Redis.from_url(REDIS_URL)
    client.xadd(world.keys.alerts_stream(), to_fields(live))
    client.close()
    row = f"#alerts-table tbody tr[data-alert-id='{live.alert_id}']"
    page.wait_for_selector(row)
    assert NAMES["9"] in page.inner_text(f"{row} td.venue") and "红码进入" in page.inner_text(row)
    assert page.get_attribute(f"{row} td.region >> nth=0", "title") == "620103"
    assert page.inner_text(f"{row} td.region >> nth=0") == "七里河区"
    shot(page, "analyst-zh")
    page.select_option("#lang", "en")
    page.wait_for_selector(f"{row}:has-text('red code entry')")
    assert "红码" not in page.inner_text("#alerts-table tbody") and "City" in page.inner_text("#queue-table")
    assert page.errors == []


def test_queue_rows_name_who_where_and_city_rows_wait(browser: Any, world: Server) -> None:
    page = new_page(browser)
    sign_in(page, world, world.analyst_key)  # scoped to a community: the community level
    row = page.locator("#queue-table tbody tr[data-alert-id]")
    row.first.wait_for()
    assert row.count() == 1
    text = row.first.inner_text()
    assert "王*明 (21)" in text and NAMES["7"] in text and REGIONS[COMMUNITIES[0]] in text
    assert page.get_attribute("#queue-table tbody tr[data-alert-id] td.region", "title") == COMMUNITIES[0]
    alert_id = row.first.get_attribute("data-alert-id")
    page.fill(
        f"#queue-table tr[data-alert-id='{alert_id}'] input.note-input", "isolated at home, family told"
    )
    page.select_option(f"#queue-table tr[data-alert-id='{alert_id}'] select.outcome", "isolated")
    page.click(f"#queue-table tr[data-alert-id='{alert_id}'] button[data-action='resolve']")
    page.wait_for_selector("#queue-table:has-text('Nothing waiting here')")
    history = httpx.get(world.base + "/v1/alerts", params={"since": format_ms(0)}, headers=ADMIN).json()[
        "alerts"
    ]
    done = next(a for a in history if a["alert_id"] == alert_id)
    assert (done["outcome"], done["note"]) == ("isolated", "isolated at home, family told")

    page = new_page(browser)
    sign_in(page, world, add_key(world, "analyst"))  # the city level: the last one
    page.wait_for_selector("#queue-table tbody tr[data-alert-id]")
    assert page.inner_text("#queue-due-th") == "Waiting"
    summary = page.inner_text("#queue-summary")
    assert "the longest has waited" in summary and "overdue" not in summary
    for r in page.locator("#queue-table tbody tr[data-alert-id]").all():
        assert r.get_attribute("class") == "" and "overdue" not in r.inner_text()
        assert re.search(r"\d+(\.\d)? (h|min)", r.locator("td.waiting").inner_text())
    shot(page, "queue-city-en")
    assert page.errors == []


def test_graph_labels_never_overlap_and_the_timeline_draws_every_stay(browser: Any, world: Server) -> None:
    page = new_page(browser)
    sign_in(page, world, world.tracer_key)
    page.fill("#trace-person", "21")
    window(page, world, "trace")
    page.select_option("#trace-depth", "2")
    page.fill("#trace-reason", "case 21")
    page.click("#trace-run")
    page.wait_for_selector("#graph svg g[data-person-id='12']")
    labels = page.eval_on_selector_all("#graph svg text.graph-label", BOXES)
    circles = page.eval_on_selector_all("#graph svg circle", BOXES)
    assert len(labels) >= 5
    for a, b in itertools.combinations(labels, 2):
        assert not boxes_overlap(a, b), (a, b)
    for label_box in labels:  # no label covers another node
        for c in circles:
            assert c["id"] == label_box["id"] or not boxes_overlap(label_box, c), (label_box, c)
    # the graph uses the panel's width, not its left half
    panel = page.eval_on_selector(
        "#graph", "g => { const r = g.getBoundingClientRect(); return [r.left, r.width]; }"
    )
    svg_width = page.eval_on_selector("#graph svg", "s => s.getBoundingClientRect().width")
    assert svg_width >= 0.95 * panel[1] and max(c["left"] for c in circles) - panel[0] > 0.45 * panel[1]
    # edges cross no label (they run in the bands between the columns)
    lines = page.eval_on_selector_all(
        "#graph svg line",
        "ls => ls.map(l => { const r = l.getBoundingClientRect(); return [r.left, r.right]; })",
    )
    for left, right in lines:
        for label_box in labels:
            assert label_box["right"] <= left + 1 or label_box["left"] >= right - 1, (left, right, label_box)
    # one bar per stay: 21 scanned three times a minute apart at the gym, each scan its own bar
    visits = page.locator("#visits-table tbody tr").count()
    bars = page.eval_on_selector_all("#timeline-chart svg rect[data-checkin-id]", BOXES)
    assert visits == len(bars) == 5
    for a, b in itertools.combinations(bars, 2):
        assert not boxes_overlap(a, b), (a, b)
    shot(page, "graph-timeline-en")
    assert page.errors == []
