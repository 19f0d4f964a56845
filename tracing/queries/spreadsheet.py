"""The one rule for a cell a spreadsheet will open (tracers' CSV exports, the command-centre report).

A cell whose text starts with ``=``, ``+``, ``-``, ``@``, tab or CR would run as a formula in Excel: it
is prefixed with ``'``. ``None`` is an empty cell (never the word ``None``).
"""

from __future__ import annotations

CSV_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """A spreadsheet-safe cell: text starting like a formula is prefixed with ``'``; ``None`` is empty."""
    text = "" if value is None else str(value)
    if text.startswith(CSV_DANGEROUS):
        return "'" + text
    return text
