"""The sink's column path accepts exactly what decode_scan accepts, with the same values."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from checkin.events import ScanEvent, encode_scan
from tracing.sink_rows import (
    COLUMN_NAMES,
    Columns,
    columns_fast,
    columns_for_read,
    columns_from_events,
    decode_entry,
    native_block,
)

TRICKY = [
    b"",
    b"0",
    b"-5",
    b"1_0",
    b" 12",
    b"12 ",
    b"abc",
    b"nan",
    b"inf",
    b"1e5",
    b"\xff",
    b"\xc3\xa9",
    b"99999999999999999999",
    b"4294967296",
    b"18446744073709551616",
    b"36.5",
    b"-103.25",
    b"1.2.3",
    b"in",
    b"out",
    b"red",
    b"deny",
    b"batch",
    b"x" * 200,
    b"9000000000000",
]
FIELDS = [
    b"t",
    b"cid",
    b"pid",
    b"vid",
    b"at",
    b"end",
    b"dw",
    b"d",
    b"s",
    b"c",
    b"st",
    b"vd",
    b"rs",
    b"src",
    b"own",
    b"wl",
    b"lat",
    b"lon",
    b"acc",
    b"vlat",
    b"vlon",
    b"rcv",
]


def base(i: int) -> ScanEvent:
    return ScanEvent(
        entry_id="",
        kind="in" if i % 3 else "out",
        checkin_id=f"c{i}",
        person_id=5 + i,
        venue_id=77 + i,
        at_ms=1_795_900_000_000 + i,
        end_ms=1_795_903_600_000 + i,
        district="620102",
        street="620102013",
        community="620102013101",
        status=("green", "yellow", "red")[i % 3],
        verdict="pass",
        source="sentinel",
        lat=36.1 if i % 2 else None,
        lon=103.8 if i % 2 else None,
        received_ms=1_795_900_000_100,
    )


def flat(fields: dict[str, str]) -> list[bytes]:
    out: list[bytes] = []
    for k, v in fields.items():
        out += [k.encode(), v.encode()]
    return out


mutation = st.tuples(st.integers(0, 3), st.sampled_from(FIELDS), st.sampled_from([*TRICKY, None]))


@settings(max_examples=400, deadline=None)
@given(n=st.integers(1, 4), mutations=st.lists(mutation, max_size=3), reorder=st.booleans())
def test_column_path_agrees_with_decode_scan(n: int, mutations: list[Any], reorder: bool) -> None:
    entries: list[list[Any]] = []
    for i in range(n):
        fl = flat(encode_scan(base(i)))
        if reorder and i == n - 1:
            fl = fl[2:] + fl[:2]
        entries.append([f"{1000 + i}-0".encode(), fl])
    for index, name, value in mutations:
        if index >= n:
            continue
        fl = entries[index][1]
        pos = fl[0::2].index(name) * 2 if name in fl[0::2] else -1
        if value is None and pos >= 0:
            del fl[pos : pos + 2]
        elif value is not None and pos >= 0:
            fl[pos + 1] = value
        elif value is not None:
            fl += [name, value]
    expected_good, expected_poison = [], []
    for eid, fl in entries:
        try:
            expected_good.append(decode_entry(eid, fl))
        except ValueError:
            expected_poison.append(eid)
    expected = columns_from_events(2, expected_good)
    fast = columns_fast(2, entries)
    if fast is not None:
        assert not expected_poison
        assert fast == expected
    got, poison = columns_for_read(2, entries)
    assert got == expected
    assert [p[0] for p in poison] == expected_poison
    native_block(got)  # every accepted value fits its column type


def test_native_block_layout() -> None:
    cols = columns_from_events(0, [base(1), base(2)])
    block = native_block(cols)
    assert block[:2] == bytes([len(COLUMN_NAMES), 2])
    assert b"checkin_id" in block and b"DateTime64(3, 'UTC')" in block
    assert native_block(Columns())[:2] == bytes([len(COLUMN_NAMES), 0])


def test_plain_entries_take_the_column_path() -> None:
    entries = [[f"{i}-0".encode(), flat(encode_scan(base(i)))] for i in range(5)]
    fast = columns_fast(3, entries)
    assert fast is not None
    assert fast == columns_from_events(3, [decode_entry(e[0], e[1]) for e in entries])
    assert fast.version == [1, 0, 0, 1, 0] and fast.status == [1, 2, 3, 1, 2]


def test_dedup_token_depends_on_shards_and_ids_only() -> None:
    one = columns_from_events(1, [base(1)])
    same = columns_from_events(1, [base(2)])
    other = columns_from_events(0, [base(1)])
    for cols in (one, same, other):
        cols.stream_id[0] = b"5-0"
    assert one.dedup_token() == same.dedup_token() != other.dedup_token()
    assert columns_from_events(0, []).dedup_token() != one.dedup_token()
