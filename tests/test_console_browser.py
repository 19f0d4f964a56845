"""The tracing console in headless Chromium against a real tracing server (granian in a subprocess).

Stays are seeded through the server's own Store in a separate short-lived
process *before* the server starts (the embedded engine's data path can be
opened by one process at a time), then a tracer signs in with an API key, runs
a contact trace from the form and sees the expected contact ids; an analyst
sees the scans-per-hour chart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.support.browser import chromium
from tests.support.console import Server, console_server, picker, sign_in
from tests.support.trace_world import COMMUNITIES, HOUR_MS, MIN_MS, iso
from tests.support.values import ADMIN_KEY, REDIS_URL, own_prefix
from tracing.rules.alerts import Alert, to_fields

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One served world for the module: both tests only read it."""
    hour = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=3)
    base = int(hour.timestamp()) * 1000  # inside the analyst charts' default 24 h window
    venues = {"7": [60, COMMUNITIES[0]], "8": [60, COMMUNITIES[2]]}
    checkins = [
        [7, [101], base, None],
        [7, [202], base + 30 * MIN_MS, None],
        [7, [303], base + 50 * MIN_MS, None],  # 10 min with 101: not a contact at 15 min
        [8, [202, 404], base + 100 * MIN_MS, 20 * MIN_MS],  # second degree via 202
    ]
    spec = {"base": base, "venues": venues, "checkins": checkins}
    with own_prefix() as prefix, console_server(tmp_path_factory.mktemp("console"), prefix, spec) as srv:
        yield srv


@pytest.fixture
def page() -> Iterator[Any]:
    with chromium() as browser:
        context = browser.new_context(accept_downloads=True, locale="en-US")
        pg = context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        pg.errors = errors
        yield pg


def test_a_tracer_runs_a_contact_trace_from_the_form(page: Any, server: Server) -> None:
    page.goto(server.base + "/console")
    page.fill("#api-key", "ck_not_a_key")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-error:has-text('Unknown or revoked key')")

    sign_in(page, server, server.tracer_key)
    assert page.is_visible("#tracer-view")
    page.fill("#trace-person", "101")
    page.fill("#trace-since", picker(server.base_ms - HOUR_MS))
    page.fill("#trace-until", picker(server.base_ms + 12 * HOUR_MS))
    page.select_option("#trace-depth", "2")
    page.fill("#trace-reason", "case 42: restaurant cluster")
    page.click("#trace-run")
    page.wait_for_selector("#contacts-table tbody tr[data-person-id]")
    rows = page.eval_on_selector_all(
        "#contacts-table tbody tr[data-person-id]",
        "rows => rows.map(r => [r.dataset.personId, r.dataset.degree])",
    )
    assert rows == [["202", "1"], ["303", "2"], ["404", "2"]]
    assert page.inner_text("#contacts-table tbody tr[data-person-id='404'] td:nth-child(7)") == "202"
    # the graph draws the index person and the three contacts; the timeline lists 101's one stay
    assert page.locator("#graph svg g[data-person-id]").count() == 4
    assert page.locator("#visits-table tbody tr").count() == 1
    assert page.locator("#timeline-chart svg rect[data-checkin-id]").count() == 1
    assert "2 contact" not in page.inner_text(
        "#trace-summary"
    ) and "1 contact(s), 2 second-degree" in page.inner_text("#trace-summary")
    assert page.locator("#contacts-next").count() == 0  # everything fits on the default page

    # one row per page: the second-degree list (303, 404) is paged with Next and Previous
    page.fill("#trace-limit", "1")
    page.click("#trace-run")
    page.wait_for_selector("#trace-summary:has-text('showing rows 1–1 of each list')")
    degrees = "rows => rows.map(r => [r.dataset.personId, r.dataset.degree])"
    assert page.eval_on_selector_all("#contacts-table tbody tr[data-person-id]", degrees) == [
        ["202", "1"],
        ["303", "2"],
    ]
    page.click("#contacts-next")
    page.wait_for_selector("#trace-summary:has-text('showing rows 2–2 of each list')")
    assert page.eval_on_selector_all("#contacts-table tbody tr[data-person-id]", degrees) == [["404", "2"]]
    assert page.is_disabled("#contacts-next") and not page.is_disabled("#contacts-prev")
    page.click("#contacts-prev")
    page.wait_for_selector("#trace-summary:has-text('showing rows 1–1 of each list')")
    page.fill("#trace-limit", "1000")

    # exposure screening and its CSV download
    page.fill("#exposure-sites .site-venue", "7")
    page.fill("#exposure-sites .site-since", picker(server.base_ms + 55 * MIN_MS))
    page.fill("#exposure-sites .site-until", picker(server.base_ms + 56 * MIN_MS))
    page.fill("#exposure-reason", "case 42: site screening")
    page.click("#exposure-form button[type=submit]")
    page.wait_for_selector("#exposures-table tbody tr[data-person-id]")
    ids = page.eval_on_selector_all(
        "#exposures-table tbody tr[data-person-id]", "rows => rows.map(r => r.dataset.personId)"
    )
    assert ids == ["101", "202", "303"]
    with page.expect_download() as info:
        page.click("#exposure-csv")
    raw = Path(info.value.path()).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the byte-order mark Excel needs to read UTF-8
    text = raw.decode("utf-8-sig")
    assert (
        text.splitlines()[0] == "person_id,name,venue_id,venue_name,first_at_venue (UTC),first_at (UTC)"
        and len(text.splitlines()) == 4
    )

    # a bad request shows the server's problem detail
    page.fill("#trace-reason", "")
    page.eval_on_selector("#trace-reason", "el => el.removeAttribute('required')")
    page.click("#trace-run")
    page.wait_for_selector("#trace-error:has-text('reason is required')")
    assert page.errors == []

    # every call above was audited under the tracer's key
    audit = httpx.get(server.base + "/v1/audit", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()
    tracer = [e for e in audit["entries"] if e["role"] == "tracer"]
    assert {e["action"] for e in tracer} == {"contacts", "visits", "exposures"}


def test_an_analyst_sees_scans_per_hour_by_district(page: Any, server: Server) -> None:
    sign_in(page, server, server.analyst_key)
    assert page.is_visible("#analyst-view")
    page.wait_for_selector("#districts-table tbody tr[data-district]")
    districts = page.eval_on_selector_all(
        "#districts-table tbody tr", "rows => rows.map(r => r.dataset.district)"
    )
    assert districts == ["620102", "620103"]
    assert page.locator("#hour-chart-svg rect[data-district]").count() == 2

    # live alerts: one published on the alerts stream after the feed connected shows up at once
    page.wait_for_selector("#alerts-status:has-text('Live.')")
    alert = Alert(
        alert_id="al-console-1",
        kind="red_code_entry",
        severity="critical",
        at=iso(server.base_ms),
        person_id=101,
        venue_id=7,
        district=COMMUNITIES[0][:6],
        street=COMMUNITIES[0][:9],
        community=COMMUNITIES[0],
        details={},
    )
    client = redis.Redis.from_url(REDIS_URL)
    client.xadd(server.keys.alerts_stream(), to_fields(alert))
    client.close()
    page.wait_for_selector("#alerts-table tbody tr[data-alert-id='al-console-1']")
    assert "red code entry" in page.inner_text("#alerts-table tbody tr[data-alert-id='al-console-1']")
    assert page.errors == []
