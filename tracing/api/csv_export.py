"""CSV exports for tracers, who open them in Excel (docs/ARCHITECTURE.md, "The console"):

* instants in local wall time (``CHECKIN_TZ``) as ``2026-03-12 17:20:01``, which a spreadsheet reads
  as a date; the header names the zone;
* a masked name beside every person id (``张*丰``; empty for a person not registered);
* a UTF-8 byte-order mark first (Excel reads the Chinese venue names as UTF-8 only then), CRLF lines;
* every cell neutralised against spreadsheet formulas: text starting with ``=``, ``+``, ``-``, ``@``,
  tab or CR is prefixed with ``'`` (the one rule, :mod:`tracing.queries.spreadsheet`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from litestar import Response

from tracing.queries.spreadsheet import CSV_DANGEROUS as CSV_DANGEROUS
from tracing.queries.spreadsheet import csv_cell

MEDIA_TYPE = "text/csv; charset=utf-8"


class LocalTime:
    """Formats unix ms as local wall time ``YYYY-MM-DD HH:MM:SS`` in one zone."""

    def __init__(self, tz: str) -> None:
        self.tz = tz
        self.zone = ZoneInfo(tz)

    def __call__(self, ms: int | None) -> str:
        if ms is None:
            return ""
        return dt.datetime.fromtimestamp(ms / 1000, self.zone).strftime("%Y-%m-%d %H:%M:%S")

    def header(self, name: str) -> str:
        """A time column's header naming the zone: ``first_at (Asia/Shanghai)``."""
        return f"{name} ({self.tz})"


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """The file: byte-order mark, header, rows; every cell through :func:`csv_cell`."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([csv_cell(h) for h in header])
    for row in rows:
        writer.writerow([csv_cell(cell) for cell in row])
    return out.getvalue()


def csv_response(text: str, filename: str) -> Response[Any]:
    return Response(
        content=text,
        media_type=MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def ids_text(ids: Iterable[int]) -> str:
    """A list of ids in one cell, space-separated (no separator a spreadsheet reads as a formula)."""
    return " ".join(str(i) for i in ids)


def names_text(ids: Iterable[int], names: dict[int, str]) -> str:
    """The names of these ids in one cell, in the same order, ``; ``-separated (empty for unnamed)."""
    return "; ".join(names.get(i, "") for i in ids)
