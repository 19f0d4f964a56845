"""The command-centre report: figures from ClickHouse, CSV files, a self-contained HTML page, the CLI."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from litestar.testing import AsyncTestClient

from checkin.cli import build_parser
from checkin.platform.instants import format_ms, to_ms
from checkin.platform.settings import Settings
from tests.support.rules import DISTRICT_A, DISTRICT_B, key_for
from tracing.queries.report import build_report, period_bounds
from tracing.queries.report_files import csv_files
from tracing.rules import alerts as al
from tracing.storage.schema import STAY_COLUMNS
from tracing.storage.store import Store

TZ = ZoneInfo("Asia/Shanghai")
DAY = dt.date.today() - dt.timedelta(days=2)


def local(hour: int, minute: int = 0, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=TZ).astimezone(dt.UTC)


def stay(
    cid: str, person: int, venue: int, district: str, at: dt.datetime, version: int = 0, **kw: Any
) -> list[Any]:
    row = {
        "checkin_id": cid,
        "person_id": person,
        "venue_id": venue,
        "at": at,
        "end_at": at + dt.timedelta(hours=1),
        "version": version,
        "district": district,
        "street": district + "001",
        "community": district + "001001",
        "status": "green",
        "verdict": "pass",
        "reason": "",
        "source": "phone",
        "owner_id": person,
        "lat": 0.0,
        "lon": 0.0,
        "stream_id": f"{cid}-{version}",
        "received_at": at,
        "ended_by": "checkout" if version else "natural",
    }
    row.update(kw)
    return [row[name] for name, _ in STAY_COLUMNS]


def alert(n: int, kind: str, district: str, venue: int, at: dt.datetime) -> al.Alert:
    return al.Alert(
        alert_id=f"{n:022x}",
        kind=kind,
        severity="critical",
        at=format_ms(to_ms(at)),
        person_id=n,
        venue_id=venue,
        district=district,
        street=district + "001",
        community=district + "001001",
        details={},
    )


@pytest.fixture
def seeded(store: Store) -> Store:
    rows = [
        stay("c1", 1, 11, DISTRICT_A, local(0, 5)),  # just after local midnight: inside the day
        stay("c1", 1, 11, DISTRICT_A, local(0, 5), version=1, end_at=local(0, 30)),  # its check-out
        stay("c2", 2, 11, DISTRICT_A, local(9), status="red", verdict="deny"),
        stay("c3", 1, 12, DISTRICT_A, local(9, 30)),
        stay("c4", 4, 21, DISTRICT_B, local(23, 59)),
        stay("c5", 5, 21, DISTRICT_B, local(7, day=DAY - dt.timedelta(days=1))),  # the day before
        stay("c6", 6, 11, DISTRICT_A, local(23, 59, day=DAY - dt.timedelta(days=1))),
    ]
    store.insert("scans", [c for c, _ in STAY_COLUMNS], rows, column_oriented=False)
    now = dt.datetime.now(dt.UTC)
    store.insert(
        "venues",
        ["venue_id", "name", "district", "street", "community", "updated_at"],
        [
            [11, '=HYPERLINK("x")', DISTRICT_A, "", "", now],
            [12, "Tea <b>house</b>", DISTRICT_A, "", "", now],
            [21, "Market", DISTRICT_B, "", "", now],
        ],
        column_oriented=False,
    )
    al.insert_alerts(
        store,
        [
            alert(1, "red_code_entry", DISTRICT_A, 11, local(9)),
            alert(2, "red_code_entry", DISTRICT_A, 11, local(10)),
            alert(3, "capacity_exceeded", DISTRICT_B, 21, local(12)),
            alert(4, "remote_scan", DISTRICT_B, 21, local(12, day=DAY - dt.timedelta(days=1))),
        ],
    )
    return store


def test_period_bounds_are_local() -> None:
    since, until, label = period_bounds("day", dt.date(2026, 11, 3), "Asia/Shanghai")
    assert (
        format_ms(since) == "2026-11-02T16:00:00.000Z"
        and until - since == 86_400_000
        and label == "2026-11-03"
    )
    since, until, label = period_bounds("month", dt.date(2026, 2, 17), "Asia/Shanghai")
    assert format_ms(since) == "2026-01-31T16:00:00.000Z" and (until - since) == 28 * 86_400_000
    assert label == "2026-02"


def test_day_report_figures(seeded: Store, settings: Settings) -> None:
    report = build_report(seeded, "day", DAY, settings.tz)
    assert [(d.district, d.scans, d.persons, d.denied, d.alerts) for d in report.districts] == [
        (DISTRICT_A, 3, 2, 1, 2),  # the check-out does not count twice; the day before is outside
        (DISTRICT_B, 1, 1, 0, 1),
    ]
    assert [(k.district, k.kind, k.alerts) for k in report.kinds] == [
        (DISTRICT_A, "red_code_entry", 2),
        (DISTRICT_B, "capacity_exceeded", 1),
    ]
    assert [(v.rank, v.venue_id, v.scans, v.alerts) for v in report.venues] == [
        (1, 11, 2, 2),
        (2, 12, 1, 0),
        (3, 21, 1, 1),
    ]
    hours = {t.bucket: t.scans for t in report.timeline}
    assert len(hours) == 24 and hours["00:00"] == 1 and hours["09:00"] == 2 and hours["23:00"] == 1


def test_month_report_and_cli_outputs(seeded: Store, settings: Settings, tmp_path: Path) -> None:
    parser = build_parser()
    out = tmp_path / "report"
    args = parser.parse_args(["report", "--period", "month", "--date", DAY.isoformat(), "--out", str(out)])
    assert args.handler(args, settings) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "alerts.csv",
        "alerts_by_kind.csv",
        "dispositions.csv",
        "report.html",
        "scans_by_district.csv",
        "scans_over_time.csv",
        "top_venues.csv",
    ]
    assert all(p.read_bytes().startswith(b"\xef\xbb\xbf") for p in out.glob("*.csv"))  # BOM for Excel
    districts = list(csv.DictReader(io.StringIO((out / "scans_by_district.csv").read_text("utf-8-sig"))))
    month_has_prev_day = (DAY - dt.timedelta(days=1)).month == DAY.month
    expected_a = 4 if month_has_prev_day else 3
    assert districts[0]["district"] == DISTRICT_A and int(districts[0]["scans"]) == expected_a
    venues = list(csv.DictReader(io.StringIO((out / "top_venues.csv").read_text("utf-8-sig"))))
    assert venues[0]["venue_id"] == "11" and venues[0]["name"] == '\'=HYPERLINK("x")'  # formula neutralised
    days = list(csv.DictReader(io.StringIO((out / "scans_over_time.csv").read_text("utf-8-sig"))))
    assert days[0]["local_day"].endswith("-01")
    assert sum(int(d["scans"]) for d in days) == 4 + (2 if month_has_prev_day else 0)
    page = (out / "report.html").read_text()
    assert page.count("<svg") == 4 and "<script" not in page and "src=" not in page and "href=" not in page
    assert "Tea &lt;b&gt;house&lt;/b&gt;" in page and "<b>house</b>" not in page


def test_cli_refuses_bad_input(settings: Settings, tmp_path: Path, capsys: Any) -> None:
    parser = build_parser()
    for argv in (
        ["report", "--period", "day", "--date", "2026-13-01", "--out", str(tmp_path)],
        ["report", "--period", "day", "--date", "yesterday", "--out", str(tmp_path)],
        ["report", "--period", "day", "--date", "2026-11-01", "--out", str(tmp_path), "--top", "0"],
    ):
        args = parser.parse_args(argv)
        assert args.handler(args, settings) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --") and err.count("\n") == 1
    with pytest.raises(SystemExit):
        parser.parse_args(["report", "--period", "week", "--date", "2026-11-01", "--out", str(tmp_path)])


def test_a_community_report_holds_its_alerts_and_their_dispositions(
    seeded: Store, settings: Settings
) -> None:
    first = alert(1, "red_code_entry", DISTRICT_A, 11, local(9))
    first.level, first.escalated_at = "street", format_ms(to_ms(local(9, 15)))
    first.acked, first.acked_by, first.acked_at = True, "k-street", format_ms(to_ms(local(9, 20)))
    first.resolved, first.resolved_by, first.resolved_at = True, "k-street", format_ms(to_ms(local(9, 40)))
    first.outcome, first.note = "isolated", "=cmd"
    al.insert_alerts(seeded, [first])
    community = DISTRICT_A + "001001"
    report = build_report(seeded, "day", DAY, settings.tz, scope=community)
    assert report.level == "community" and report.scope == community
    assert [(a.alert_id, a.level, a.outcome, a.acked_by) for a in report.alerts] == [
        (f"{1:022x}", "street", "isolated", "k-street"),
        (f"{2:022x}", "community", "", ""),
    ]
    assert report.alerts[0].at == local(9).astimezone(TZ).strftime("%Y-%m-%d %H:%M:%S")
    assert report.alerts[0].venue_name == '=HYPERLINK("x")'
    levels = {d.level: (d.alerts, d.acked, d.resolved, d.median_ack_s) for d in report.dispositions}
    assert levels == {
        "community": (1, 0, 0, None),
        "street": (1, 1, 1, 1200.0),
        "district": (0, 0, 0, None),
        "city": (0, 0, 0, None),
    }
    assert report.total_scans == 3 and [d.district for d in report.districts] == [DISTRICT_A]
    other = build_report(seeded, "day", DAY, settings.tz, scope=DISTRICT_B + "001")
    assert other.level == "street" and [a.venue_id for a in other.alerts] == [21]
    city = build_report(seeded, "day", DAY, settings.tz)
    assert city.level == "city" and len(city.alerts) == 3
    text = csv_files(report)["alerts.csv"]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["outcome"] == "isolated" and rows[0]["note"] == "'=cmd"  # formula neutralised


async def test_report_api_scopes_and_refusals(
    settings: Settings, redis_client: Any, seeded: Store, tracing: AsyncTestClient[Any]
) -> None:
    district_a = await key_for(settings, redis_client, "analyst", DISTRICT_A)
    tracer = await key_for(settings, redis_client, "tracer")
    params = {"period": "day", "date": DAY.isoformat()}
    r = await tracing.get("/v1/report", params=params, headers=district_a)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["scope"] == DISTRICT_A and body["level"] == "district"
    assert {a["community"][:6] for a in body["alerts"]} == {DISTRICT_A} and len(body["alerts"]) == 2
    r = await tracing.get("/v1/report", params={**params, "scope": DISTRICT_A + "001001"}, headers=district_a)
    assert r.json()["level"] == "community"
    # wider or elsewhere: refused, not silently narrowed
    for scope in ("", DISTRICT_B):
        r = await tracing.get("/v1/report", params={**params, "scope": scope}, headers=district_a)
        assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json", scope
    assert (await tracing.get("/v1/report", params=params, headers=tracer)).status_code == 403
    assert (await tracing.get("/v1/report", params=params)).status_code == 401
    for bad in (
        {"period": "week"},
        {"date": "yesterday"},
        {"scope": "31x"},
        {"top": "0"},
        {"date": "2026-02-30"},
    ):
        r = await tracing.get("/v1/report", params={**params, **bad}, headers=district_a)
        assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json", bad
    actions = seeded.rows(f"SELECT action, rows FROM {seeded.table('audit')} ORDER BY at LIMIT 1")
    assert actions == [("report", 2)]


@pytest.mark.slow
async def test_report_while_the_tracing_service_holds_the_engine(
    make_settings: Any, tmp_path: Path, redis_client: Any
) -> None:
    import asyncio
    import os
    import subprocess
    import sys

    import httpx

    from tests.support.rules import BASE_MS, Harness, scan, venue
    from tests.support.servers import tracing_server
    from tests.support.values import ADMIN_KEY, free_port

    settings: Settings = make_settings(clickhouse_dsn=f"chdb://{tmp_path / 'ch'}", tracing_port=free_port())
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    day = dt.datetime.fromtimestamp(BASE_MS / 1000, TZ).date()
    env = {**os.environ, **settings.to_env()}

    def report(*extra: str) -> subprocess.CompletedProcess[str]:
        argv = ["report", "--period", "day", "--date", day.isoformat(), "--out", str(tmp_path / "report")]
        return subprocess.run(
            [sys.executable, "-m", "checkin.cli", *argv, *extra],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    with tracing_server(settings, "rules", tmp_path / "tracing.log") as base:
        v = venue(501)
        await Harness(settings, redis_client).xadd(scan(v, 9, status="red"))  # the service's rules raise it
        async with httpx.AsyncClient(base_url=base, headers=auth) as client:
            alerts: list[dict[str, Any]] = []
            for _ in range(150):
                got = await client.get("/v1/alerts", params={"since": format_ms(BASE_MS - 1000)})
                alerts = got.json()["alerts"]
                if alerts:
                    break
                await asyncio.sleep(0.1)
            [raised] = alerts
            assert (await client.post(f"/v1/alerts/{raised['alert_id']}/ack")).status_code == 200
        done = await asyncio.to_thread(report, "--scope", v.community)
        assert done.returncode == 0, done.stderr
        assert f"from the tracing service at {base}" in done.stderr and "community centre" in done.stderr
        text = (tmp_path / "report" / "alerts.csv").read_text("utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [(r["alert_id"], r["acked_by"], r["level"], r["venue"]) for r in rows] == [
            (raised["alert_id"], "admin", "community", "")
        ]
        other = await asyncio.to_thread(report, "--scope", DISTRICT_B)
        assert other.returncode == 0 and "district centre" in other.stderr
        assert (tmp_path / "report" / "alerts.csv").read_text("utf-8-sig").count("\n") == 1  # header only
