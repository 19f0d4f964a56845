"""The chaos run, two minutes of it: `checkin up` under check-in load while an ingest worker, the
tracing service and the private redis-server are killed with kill -9 in turn; nothing accepted is
lost or counted twice, no alert is raised twice, every notice is readable and texted once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.chaos_kills import KINDS

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.mark.timeout(600)
def test_two_minutes_of_kill_9_lose_nothing_and_count_nothing_twice(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    run = subprocess.run(
        [sys.executable, "-m", "loadtest.chaos", "--minutes", "2", "--rate", "150", "--kill-every", "30",
         "--venues", "300", "--residents", "600", "--sample", "300", "--clients", "16",
         "--data-dir", str(tmp_path / "work"), "--summary", str(summary), "--no-record"],
        cwd=ROOT, capture_output=True, text=True, timeout=540,
    )  # fmt: skip
    report = json.loads(summary.read_text()) if summary.exists() else {}
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert {k["kind"] for k in report["kills"]} == set(KINDS)
    assert all(k["back_after_s"] is not None for k in report["kills"]), report["kills"]
    assert report["restarts_by_launcher"] >= 2  # the tracing service and the redis-server
    assert report["answered"] > 5_000
    assert report["stored"] == report["answered"]
    assert report["missing"] == 0
    assert report["duplicated"] == 0
    assert report["stored_unanswered"] == 0
    assert report["stays_overlapping"] == 0
    assert report["gave_up"] == 0
    assert report["refused"] == {}
    assert report["alerts"] > 0
    assert report["alerts_twice"] == 0
    assert report["notices_expected"] > 0
    assert report["notices_readable"] == report["notices_expected"]
    assert report["texts_sent"] == report["notices_expected"]
    assert report["texts_twice"] == 0
    assert report["texts_missing"] == 0
    assert report["caught_up"]  # nothing left unwritten, unscreened or unsent
    assert report["longest_silence_s"] < 30
