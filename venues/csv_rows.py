"""Reading a venue CSV: the header, one row into a :class:`Venue`, and the file as a stream of
validated batches with the errors of its bad rows (:mod:`venues.importer` writes them)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from typing import IO, Any

import msgspec

from checkin.platform.errors import BadInput, Unprocessable
from venues import registry
from venues.model import CSV_COLUMNS, MAX_DWELL_MINUTES, MIN_DWELL_MINUTES, VENUE_TYPES, Venue

COLUMNS = CSV_COLUMNS
BATCH_ROWS = 2000
MAX_FIELD_CHARS = 1000
_TYPES = frozenset(VENUE_TYPES)


class RowError(msgspec.Struct):
    line: int
    reason: str
    venue_id: str = ""


class HeaderError(BadInput):
    """The CSV header is missing or does not name exactly the expected columns."""


def _digits(value: str, length: int, label: str) -> str:
    if len(value) != length or not value.isdigit():
        raise ValueError(f"{label} must be {length} digits, got {value!r}")
    return value


def _int(value: str, label: str, lo: int, hi: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{label} must be an integer, got {value!r}") from None
    if not lo <= number <= hi:
        raise ValueError(f"{label} {number} is out of range {lo}..{hi}")
    return number


def _float(value: str, label: str, lo: float, hi: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{label} must be a number, got {value!r}") from None
    if not math.isfinite(number) or not lo <= number <= hi:
        raise ValueError(f"{label} {value} is out of range {lo:g}..{hi:g}")
    return number


def parse_row(values: list[str], index: dict[str, int]) -> Venue:
    """One CSV row to a venue; raises ValueError with a readable reason."""
    if len(values) != len(index):
        raise ValueError(f"expected {len(index)} fields, got {len(values)}")
    get = {name: values[i].strip() for name, i in index.items()}
    for name, value in get.items():
        if len(value) > MAX_FIELD_CHARS:
            raise ValueError(f"{name} is longer than {MAX_FIELD_CHARS} characters")
    venue_id = _int(get["venue_id"], "venue_id", 1, 2**32 - 1)
    name = get["name"]
    vtype = get["type"] or "other"
    if vtype not in _TYPES:
        raise ValueError(f"type {vtype!r} is not one of {', '.join(VENUE_TYPES)}")
    rnt = get["requires_negative_test_hours"]
    venue = Venue(
        venue_id=venue_id,
        name=name,
        address=get["address"],
        type=vtype,
        district=_digits(get["district"], 6, "district"),
        street=_digits(get["street"], 9, "street"),
        community=_digits(get["community"], 12, "community"),
        lat=_float(get["lat"], "lat", -90.0, 90.0),
        lon=_float(get["lon"], "lon", -180.0, 180.0),
        capacity=_int(get["capacity"] or "0", "capacity", 0, 10_000_000),
        dwell_minutes=_int(
            get["dwell_minutes"] or "60", "dwell_minutes", MIN_DWELL_MINUTES, MAX_DWELL_MINUTES
        ),
        requires_negative_test_hours=_int(rnt, "requires_negative_test_hours", 1, 8760) if rnt else None,
    )
    try:
        registry.validate(venue)
    except (BadInput, Unprocessable) as exc:
        raise ValueError(exc.detail) from None
    return venue


def read_header(reader: Iterator[list[str]]) -> dict[str, int]:
    try:
        header = next(reader)
    except StopIteration:
        raise HeaderError("the CSV file is empty (expected a header row)") from None
    except csv.Error as exc:
        raise HeaderError(f"line 1: malformed CSV header: {exc}") from None
    except UnicodeDecodeError:
        raise HeaderError("the file is not UTF-8 text (expected a UTF-8 CSV)") from None
    names = [h.strip().lower() for h in header]
    missing = [c for c in COLUMNS if c not in names]
    unknown = [n for n in names if n not in COLUMNS]
    dupes = sorted({n for n in names if names.count(n) > 1})
    problems = []
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown column(s): {', '.join(repr(u) for u in unknown)}")
    if dupes:
        problems.append(f"repeated column(s): {', '.join(dupes)}")
    if problems:
        raise HeaderError(f"line 1: bad CSV header: {'; '.join(problems)}. Expected: {','.join(COLUMNS)}")
    return {name: names.index(name) for name in COLUMNS}


class _Counting(io.RawIOBase):
    """A binary stream that counts the bytes read through it (for progress)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        self.bytes_read += size
        return size


def parse_batches(
    raw: IO[bytes], batch_rows: int = BATCH_ROWS, seen: dict[int, int] | None = None
) -> Iterator[tuple[list[Venue], list[RowError], int]]:
    """Validated venues in batches, with the row errors of each batch and bytes read so far.

    ``seen`` collects venue_id -> line of each accepted row. Raises HeaderError
    before yielding anything when the header is wrong.
    """
    counter = _Counting(raw)
    text = io.TextIOWrapper(io.BufferedReader(counter, 1 << 16), encoding="utf-8-sig", newline="")
    reader = csv.reader(text, strict=True)
    index = read_header(reader)
    if seen is None:
        seen = {}
    venues: list[Venue] = []
    errors: list[RowError] = []
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except UnicodeDecodeError:
            errors.append(RowError(line=reader.line_num + 1, reason="the file is not valid UTF-8"))
            break
        except csv.Error as exc:
            errors.append(RowError(line=reader.line_num, reason=f"malformed CSV: {exc}"))
            break
        line = reader.line_num
        if not values or (len(values) == 1 and not values[0].strip()):
            continue
        try:
            venue = parse_row(values, index)
        except ValueError as exc:
            vid = values[index["venue_id"]].strip() if len(values) > index["venue_id"] else ""
            errors.append(RowError(line=line, reason=str(exc), venue_id=vid[:20]))
        else:
            first = seen.get(venue.venue_id)
            if first is not None:
                errors.append(
                    RowError(
                        line=line,
                        reason=f"duplicate venue_id {venue.venue_id} (first on line {first})",
                        venue_id=str(venue.venue_id),
                    )
                )
            else:
                seen[venue.venue_id] = line
                venues.append(venue)
        if len(venues) + len(errors) >= batch_rows:
            yield venues, errors, counter.bytes_read
            venues, errors = [], []
    yield venues, errors, counter.bytes_read
