"""The loadtest kit without a running system: load shapes, the locustfile's classes, the CLI helpers.

Locust monkey-patches the standard library (gevent) when imported, so everything
that imports it runs in a child process.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, get, post

from checkin.cli import build_parser, main
from loadtest import cli as lt_cli
from loadtest.city import read_popularity
from loadtest.seed import missing_routes, parse_import_results, sample_indices
from tests.support.values import ADMIN_KEY, admin_headers

ROOT = Path(__file__).resolve().parent.parent


def _child(code: str, **env: str) -> dict[str, object]:
    """Run ``code`` (which prints one JSON line last) in a child Python; return that JSON."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_shapes_follow_their_curves() -> None:
    out = _child(
        """
        import json, time
        from types import SimpleNamespace
        from loadtest.shapes import SHAPES, shape_class

        opts = SimpleNamespace(num_users=100, run_time=100, spawn_rate=5.0)
        runner = SimpleNamespace(environment=SimpleNamespace(parsed_options=opts))
        out = {}
        for name, cls in SHAPES.items():
            shape = cls()
            shape.runner = runner
            ticks = []
            for second in (0, 10, 45, 50, 70, 99, 100):
                shape.start_time = time.perf_counter() - second
                ticks.append(shape.tick())
            out[name] = ticks
        out["none"] = shape_class("none") is None and shape_class("") is None
        try:
            shape_class("zigzag")
        except ValueError as exc:
            out["error"] = str(exc)
        print(json.dumps(out))
        """
    )
    steady = out["steady"]
    assert steady[:-1] == [[100, 5.0]] * 6 and steady[-1] is None
    morning = [t[0] for t in out["morning-peak"][:-1]]  # type: ignore[index]
    assert morning[0] < 30 and morning[2] > 95 and morning[5] < 30
    assert morning[0] < morning[1] < morning[2] and morning[3] > morning[4] > morning[5]
    assert out["morning-peak"][-1] is None  # type: ignore[index]
    spike = out["spike"]
    assert [t[0] for t in spike[:-1]] == [20, 20, 100, 100, 20, 20]  # type: ignore[index]
    assert spike[2][1] >= 100  # type: ignore[index]  # the crowd arrives within a second
    assert out["none"] is True
    assert "unknown load shape 'zigzag'" in str(out["error"])


def test_locustfile_user_classes_and_shape_selection(tmp_path: Path) -> None:
    code = """
        import json
        from locust.util.load_locustfile import load_locustfile
        users, shapes = load_locustfile("loadtest/locustfile.py")
        print(json.dumps({"users": sorted(users), "shapes": [type(s).__name__ for s in shapes],
                          "weights": {n: c.weight for n, c in users.items()}}))
        """
    plain = _child(code, LOADTEST_SHAPE="", LOADTEST_SEED_FILE=str(tmp_path / "none.json"))
    assert plain["users"] == ["AnalystUser", "OperatorUser", "ResidentUser", "SentinelUser", "TracerUser"]
    assert plain["shapes"] == []
    weights = plain["weights"]
    assert isinstance(weights, dict) and weights["ResidentUser"] > 5 * weights["SentinelUser"]
    for name, cls_name in (
        ("spike", "SpikeShape"),
        ("morning-peak", "MorningPeakShape"),
        ("steady", "SteadyShape"),
    ):
        picked = _child(code, LOADTEST_SHAPE=name)
        assert picked["shapes"] == [cls_name]
    out = _child(
        """
        import json
        from loadtest.cli import SHAPE_NAMES
        from loadtest.shapes import SHAPES
        print(json.dumps({"same": list(SHAPE_NAMES) == list(SHAPES)}))
        """
    )
    assert out["same"] is True


def test_cli_does_not_import_locust() -> None:
    out = _child(
        """
        import json, sys
        from checkin.cli import build_parser
        build_parser()
        print(json.dumps({"locust": "locust" in sys.modules, "gevent": "gevent" in sys.modules}))
        """
    )
    assert out == {"locust": False, "gevent": False}


def test_missing_routes_lists_exactly_what_is_absent() -> None:
    @post("/v1/keys")
    async def keys() -> None:
        return None

    @get("/v1/venues/{venue_id:int}/poster.png")
    async def poster(venue_id: int) -> None:
        return None

    @get("/v1/trace/persons/{person_id:str}/visits")
    async def visits(person_id: str) -> None:
        return None

    ingest = Litestar([keys, poster])
    tracing = Litestar([visits])
    missing = missing_routes(ingest, tracing)
    assert "POST /v1/keys" not in missing and "GET /v1/venues/1/poster.png" not in missing
    assert "GET /v1/trace/persons/1/visits" not in missing
    assert "POST /v1/checkins" in missing and "POST /v1/residents/import" in missing
    assert "GET /v1/alerts" in missing


def _response(text: str) -> httpx.Response:
    return httpx.Response(200, text=text, request=httpx.Request("POST", "http://x/v1/residents/import"))


def test_parse_import_results_shapes() -> None:
    ndjson = '{"line": 1, "person_id": 7}\n{"line": 2, "error": "bad id_number"}\n'
    assert parse_import_results(_response(ndjson)) == [
        {"line": 1, "person_id": 7},
        {"line": 2, "error": "bad id_number"},
    ]
    assert parse_import_results(_response('[{"person_id": 1}, {"person_id": 2}]')) == [
        {"person_id": 1},
        {"person_id": 2},
    ]
    wrapped = '{"created": 2, "results": [{"person_id": 1}, {"person_id": 2}]}'
    assert [r["person_id"] for r in parse_import_results(_response(wrapped))] == [1, 2]
    assert parse_import_results(_response("")) == []


def test_sample_indices_spread_evenly() -> None:
    assert sample_indices(10, 5) == [0, 2, 4, 6, 8]
    assert sample_indices(3, 10) == [0, 1, 2]
    picked = sample_indices(3_850_000, 2000)
    assert len(picked) == 2000 and picked[0] == 0 and picked[-1] > 3_840_000


def test_run_time_and_stats_parsing(tmp_path: Path) -> None:
    assert lt_cli.parse_run_time("60s") == 60
    assert lt_cli.parse_run_time("5m") == 300
    assert lt_cli.parse_run_time("1h30m") == 5400
    assert lt_cli.parse_run_time("90") == 90
    for bad in ("", "soon", "5x"):
        with pytest.raises(ValueError):
            lt_cli.parse_run_time(bad)
    header = (
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
        "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
        "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\n"
    )
    (tmp_path / "run_stats.csv").write_text(
        header
        + "POST,/v1/checkins,900,0,4,5.1,1,80,300,15.0,0.0,4,5,6,6,8,10,14,20,70,80,80\n"
        + ",Aggregated,1000,2,4,6.0,1,120,280,16.5,0.03,4,5,6,7,9,12,18,25,100,120,120\n"
    )
    summary = lt_cli.read_stats(tmp_path / "run")
    assert (summary.requests, summary.failures) == (1000, 2)
    assert summary.rps == 16.5 and summary.p95_ms == 12 and summary.p99_ms == 25 and summary.max_ms == 120
    assert [r["Name"] for r in summary.per_name] == ["/v1/checkins"]


def test_locust_command_line() -> None:
    cmd = lt_cli.locust_command(
        Path("/s.json"), "http://127.0.0.1:9", 5, 2.5, "60s", Path("/tmp/p"), classes=["ResidentUser"]
    )
    assert cmd[1:3] == ["-m", "locust"] and "--headless" in cmd
    assert cmd[cmd.index("--users") + 1] == "5" and cmd[cmd.index("--run-time") + 1] == "60s"
    assert cmd[cmd.index("--host") + 1] == "http://127.0.0.1:9" and cmd[-1] == "ResidentUser"


def test_cli_refuses_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["loadtest", "seed", "--city", str(tmp_path / "nowhere")]) == 2
    assert "city.json not found" in capsys.readouterr().err
    assert main(["loadtest", "run", "--seed-file", str(tmp_path / "none.json")]) == 2
    assert "seed file" in capsys.readouterr().err
    seed_file = tmp_path / "seed.json"
    seed_file.write_text("{not json")
    assert main(["loadtest", "run", "--seed-file", str(seed_file)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert main(["loadtest", "bench", "--only", "no_such_benchmark"]) == 2
    assert "no benchmark named 'no_such_benchmark'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["loadtest", "run", "--shape", "zigzag"])


def test_bench_scripts_selection() -> None:
    every = lt_cli.bench_scripts()
    assert all(p.name.startswith("bench_") and p.suffix == ".py" for p in every)
    if every:
        name = every[0].stem.removeprefix("bench_")
        assert lt_cli.bench_scripts(name) == [every[0]]
        assert lt_cli.bench_scripts(every[0].name) == [every[0]]


def test_seeder_imports_venues_and_collects_codes(tmp_path: Path, settings: Any) -> None:
    """Venue import, API keys and venue codes through the real ingest routes (Redis, own prefix)."""
    from litestar.testing import TestClient

    from checkin.app import create_app
    from checkin.platform.keyring import Keyring
    from loadtest.city import PRESETS, write_city
    from loadtest.seed import Seeder, SeedError
    from venues.codes import verify

    write_city(PRESETS["small"], 3, tmp_path / "city", scan_days=0, progress=False)
    stream = io.StringIO()
    with TestClient(app=create_app(settings)) as client:
        seeder = Seeder(
            tmp_path / "city",
            str(client.base_url),
            str(client.base_url),
            ADMIN_KEY,
            venue_chunk=150,
            venues_sample=40,
            stream=stream,
            client=client,
            tracing_client=client,
        )
        seeder.check_health()
        assert seeder.import_venues() == 500
        assert "import venues: 500 venues" in stream.getvalue()
        listed = client.get("/v1/venues/500", headers=admin_headers())
        assert listed.status_code == 200 and listed.json()["community"].startswith(listed.json()["street"])
        operator = seeder.create_key("operator", "loadtest operator")
        venues = seeder.venue_codes(operator)
        assert len(venues) == 40 and len({v.venue_id for v in venues}) == 40
        keyring = Keyring.parse(settings.keyring)
        for venue in venues:
            assert verify(keyring, venue.token).venue_id == venue.venue_id
        weights = sorted((v.weight for v in venues), reverse=True)
        _ids, all_weights = read_popularity(tmp_path / "city" / "popularity.csv")
        assert weights[:20] == sorted(all_weights, reverse=True)[:20]  # the busiest half are all there
        bad = Seeder(tmp_path / "city", "http://x", "http://x", "wrong-key", stream=stream, client=client)
        with pytest.raises(SeedError, match="venue import: POST /v1/venues/import -> 401"):
            bad.import_venues()
        bad.close()
