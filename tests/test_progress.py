"""The shared progress helper: a rich bar on a terminal, nothing while running elsewhere, one summary
line always."""

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
