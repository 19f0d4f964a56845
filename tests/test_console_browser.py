"""The tracing console in headless Chromium against a real tracing server (granian in a subprocess).

Stays are seeded through the server's own Store in a separate short-lived
process *before* the server starts (the embedded engine's data path can be
opened by one process at a time), then a tracer signs in with an API key, runs
a contact trace from the form and sees the expected contact ids; an analyst
sees the scans-per-hour chart.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import redis

from checkin.platform.auth import ApiKeyRecord, hash_key, new_key
from checkin.platform.keyring import Keyring
from checkin.platform.redis_keys import RedisKeys
from tests.support.browser import chromium
from tests.support.processes import ROOT
from tests.support.servers import served
from tests.support.trace_world import COMMUNITIES, HOUR_MS, MIN_MS, iso
from tests.support.values import ADMIN_KEY, REDIS_URL, free_port
from tracing.rules.alerts import Alert, to_fields

pytestmark = pytest.mark.browser

SEED_SCRIPT = """
import json, sys
from tests.support.trace_world import build_world, load
from tracing.storage.store import Store
spec = json.load(sys.stdin)
store = Store(spec["dsn"], "checkin")
store.apply_schema(28)
venues = {int(k): tuple(v) for k, v in spec["venues"].items()}
world = build_world(spec["base"], venues, [tuple(c) for c in spec["checkins"]])
load(store, world)
if spec.get("venue_names"):
    import datetime as dt
    now = dt.datetime.now(dt.UTC)
    rows = [[int(v), name, venues[int(v)][1], now] for v, name in spec["venue_names"].items()]
    store.insert("venues", ["venue_id", "name", "community", "updated_at"], rows, column_oriented=False)
if spec.get("alerts"):
    import msgspec
    from tracing.rules import alerts as al
    al.insert_alerts(store, [msgspec.convert(a, al.Alert) for a in spec["alerts"]])
store.close()
"""


@dataclass
class Server:
    base: str
    base_ms: int
    tracer_key: str
    analyst_key: str
    keys: RedisKeys


def _key(client: redis.Redis, keys: RedisKeys, role: str, scope: str = "") -> str:
    key = new_key()
    digest = hash_key(key)
    record = ApiKeyRecord(key_id=digest[:12], role=role, name=f"console {role}", scope=scope)
    client.set(
        keys.api_key(digest),
        json.dumps({"key_id": record.key_id, "role": role, "name": record.name, "scope": scope}),
    )
    client.hset(keys.api_key_index(), record.key_id, digest)
    return key


@contextmanager
def console_server(
    tmp_path: Path,
    prefix: str,
    spec: dict[str, Any],
    tz: str = "UTC",
    scoped_analyst: str = "",
    keyring: str = "",
) -> Iterator[Server]:
    """Seed ClickHouse with ``spec`` (base, venues, checkins, venue_names?, alerts?) in a short-lived
    process, then serve the tracing app on it (the embedded engine is opened by one process at a time)."""
    port = free_port()
    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    seed = subprocess.run(
        [sys.executable, "-c", SEED_SCRIPT],
        input=json.dumps({"dsn": dsn, **spec}),
        text=True,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )
    assert seed.returncode == 0, seed.stderr
    env = {
        **os.environ,
        "CHECKIN_DATA_DIR": str(tmp_path / "var"),
        "CHECKIN_REDIS_URL": REDIS_URL,
        "CHECKIN_CLICKHOUSE_DSN": dsn,
        "CHECKIN_TRACING_PORT": str(port),
        "CHECKIN_KEY_PREFIX": prefix,
        "CHECKIN_ADMIN_KEY": ADMIN_KEY,
        "CHECKIN_KEYRING": keyring or Keyring.generate(1),
        "CHECKIN_TZ": tz,
    }
    client = redis.Redis.from_url(REDIS_URL)
    keys = RedisKeys(prefix)
    tracer, analyst = _key(client, keys, "tracer"), _key(client, keys, "analyst", scoped_analyst)
    client.close()
    log = tmp_path / "tracing.log"
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "checkin.cli", "serve-tracing"]
    with served("tracing", command, env, url, log, start_s=60, stop_s=20):
        yield Server(url, spec["base"], tracer, analyst, keys)


@pytest.fixture
def server(tmp_path: Path, prefix: str) -> Iterator[Server]:
    hour = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=3)
    base = int(hour.timestamp()) * 1000  # inside the analyst charts' default 24 h window
    venues = {"7": [60, COMMUNITIES[0]], "8": [60, COMMUNITIES[2]]}
    checkins = [
        [7, [101], base, None],
        [7, [202], base + 30 * MIN_MS, None],
        [7, [303], base + 50 * MIN_MS, None],  # 10 min with 101: not a contact at 15 min
        [8, [202, 404], base + 100 * MIN_MS, 20 * MIN_MS],  # second degree via 202
    ]
    with console_server(tmp_path, prefix, {"base": base, "venues": venues, "checkins": checkins}) as srv:
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


def picker(ms: int, tz: str = "UTC") -> str:
    """What a datetime-local picker holds for the instant ``ms`` in zone ``tz``."""
    return dt.datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).strftime("%Y-%m-%dT%H:%M")


def _sign_in(page: Any, server: Server, key: str) -> None:
    page.goto(server.base + "/console")
    page.fill("#api-key", key)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#who:has-text('tracer'), #who:has-text('analyst')")


def test_a_tracer_runs_a_contact_trace_from_the_form(page: Any, server: Server) -> None:
    page.goto(server.base + "/console")
    page.fill("#api-key", "ck_not_a_key")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-error:has-text('Unknown or revoked key')")

    _sign_in(page, server, server.tracer_key)
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
        text.splitlines()[0] == "person_id,venue_id,venue_name,first_at_venue,first_at"
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
    assert {e["action"] for e in audit["entries"]} == {"contacts", "visits", "exposures"}


def test_an_analyst_sees_scans_per_hour_by_district(page: Any, server: Server) -> None:
    _sign_in(page, server, server.analyst_key)
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
