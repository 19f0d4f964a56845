"""The shared progress helper: a rich bar on a terminal, a plain line now and then elsewhere, one
summary line always."""

from __future__ import annotations

import io
import os
import re
import select
import time

from checkin.platform.progress import Progress


def test_off_the_terminal_only_the_summary_line_is_written() -> None:
    out = io.StringIO()
    bar = Progress("venues", 30_000, "venues", out)
    for _ in range(3):
        bar.advance(10_000)
    assert out.getvalue() == ""
    bar.note("line 7: lat 123 is out of range")
    elapsed = bar.finish()
    lines = out.getvalue().splitlines()
    assert lines[0] == "line 7: lat 123 is out of range"
    assert re.fullmatch(r"venues: 30,000 venues in \d+\.\d s \([\d,]+ venues/s\)", lines[1]), lines
    assert len(lines) == 2 and elapsed >= 0


def test_off_the_terminal_a_plain_line_tells_how_far_a_long_job_is() -> None:
    out = io.StringIO()
    bar = Progress("stays", 4_000_000, "stays", out, every_s=0)
    bar.update(1_000_000)
    bar.update(3_000_000)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert re.fullmatch(
        r"stays: 1,000,000 of 4,000,000 stays \(25 %\), [\d,]+ stays/s, about [\d,]+ s left", lines[0]
    )
    assert lines[1].startswith("stays: 3,000,000 of 4,000,000 stays (75 %)")
    quiet = io.StringIO()
    bar = Progress("stays", 4_000_000, "stays", quiet, every_s=3600)
    bar.update(2_000_000)
    assert quiet.getvalue() == ""  # not before its interval
    unknown = io.StringIO()
    bar = Progress("rows", None, "rows", unknown, every_s=0)
    bar.update(5_000)
    assert re.fullmatch(r"rows: 5,000 rows, [\d,]+ rows/s\n", unknown.getvalue())


def test_a_slow_job_reports_a_rate_below_one_as_it_is() -> None:
    out = io.StringIO()
    bar = Progress("merging", 31, "days", out)
    bar.started -= 2362.0  # as if it had run that long
    bar.update(31)
    bar.finish()
    assert re.fullmatch(r"merging: 31 days in 2362\.\d s \(0\.013 days/s\)\n", out.getvalue()), out.getvalue()


def test_a_byte_count_job_reports_its_own_count_and_size() -> None:
    out = io.StringIO()
    bar = Progress("import", 3_500_000, "bytes", out, in_bytes=True)
    bar.update(3_500_000)
    bar.finish(1_234, "rows")
    assert re.fullmatch(r"import: 1,234 rows \(3\.5 MB\) in \d+\.\d s \([\d,]+ rows/s\)\n", out.getvalue())


def _read_all(fd: int, wait_s: float = 0.5) -> str:
    chunks = []
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            chunks.append(os.read(fd, 65536))
    return b"".join(chunks).decode("utf-8", errors="replace")


def test_on_a_terminal_a_bar_with_percent_and_rate_is_drawn_then_the_summary() -> None:
    master, slave = os.openpty()
    stream = open(slave, "w", encoding="utf-8")
    try:
        bar = Progress("residents", 1_000, "residents", stream)
        assert bar.live
        bar.update(250)
        time.sleep(0.6)  # a few refreshes at 4 a second
        drawn = _read_all(master)
        assert "residents" in drawn and "25%" in drawn and "250/1000" in drawn
        bar.update(1_000)
        bar.finish()
        stream.flush()
        after = _read_all(master)
        assert re.search(r"residents: 1,000 residents in \d+\.\d s", after), after
    finally:
        stream.close()
        os.close(master)
