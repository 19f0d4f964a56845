"""The sink's line path accepts exactly what decode_line accepts, and the engine reads the same values."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from checkin.platform.scan_stream import (
    LAYOUT,
    LEGACY_NAMES,
    ScanEvent,
    decode_line,
    encode_scan,
    pack,
    scan_values,
)
from tracing.sink.rows import (
    HEADER,
    INSERT_COLUMNS,
    INSERT_FORMAT,
    INSERT_SETTINGS,
    Rows,
    decode_entry,
    rows_fast,
    rows_for_read,
    rows_from_events,
)
from tracing.storage.store import Store

TRICKY = [
    "",
    "0",
    "-5",
    "1_0",
    " 12",
    "12 ",
    "+7",
    "007",
    "abc",
    "nan",
    "inf",
    "1e5",
    "é",
    "a\\tb",
    "a\rb",
    "99999999999999999999",
    "4294967296",
    "999999999",
    "1000000000",
    "18446744073709551616",
    "36.5",
    ".5",
    "1.",
    "-103.25",
    "1.2.3",
    "-",
    "0",
    "1",
    "2",
    "red",
    "deny",
    "batch",
    "x" * 200,
    "9000000000000",
    "8999999999999",
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
        version=0 if i % 3 else 1,
        ended_by="" if i % 3 else "checkout",
    )


def flat(fields: dict[str, str]) -> list[bytes]:
    out: list[bytes] = []
    for k, v in fields.items():
        out += [k.encode(), v.encode()]
    return out


def decoded(rows: Rows) -> list[ScanEvent]:
    return [decode_line(sid.decode(), line) for sid, line in zip(rows.stream_id, rows.lines, strict=True)]


mutation = st.tuples(
    st.integers(0, 3), st.sampled_from([*LAYOUT, "#drop", "#extra", "#field"]), st.sampled_from(TRICKY)
)


@settings(max_examples=400, deadline=None)
@given(n=st.integers(1, 4), mutations=st.lists(mutation, max_size=3))
def test_line_path_agrees_with_decode_line(n: int, mutations: list[Any]) -> None:
    values = [scan_values(base(i)) for i in range(n)]
    extra: dict[int, list[bytes]] = {}
    for index, name, value in mutations:
        if index >= n:
            continue
        if name == "#field":
            extra[index] = [value.encode() or b"x", b"1"]
        elif name in ("#drop", "#extra"):
            values[index]["reason"] += "\t" if name == "#extra" else ""
            if name == "#drop":
                values[index].pop("received_at", None)
        else:
            values[index][name] = value
    entries: list[list[Any]] = []
    for i, v in enumerate(values):
        line = "\t".join(v[name] for name in LAYOUT if name in v)
        entries.append([f"{1000 + i}-0".encode(), [b"scan", line.encode(), *extra.get(i, [])]])
    expected_good, expected_poison = [], []
    for eid, fl in entries:
        try:
            expected_good.append(decode_entry(eid, fl))
        except ValueError:
            expected_poison.append(eid)
    fast = rows_fast(2, entries)
    if fast is not None:
        assert not expected_poison
        assert decoded(fast) == expected_good
        assert fast.lines == [e[1][1] for e in entries]
    got, poison = rows_for_read(2, entries)
    assert decoded(got) == expected_good
    assert got.shard == [2] * len(got)
    assert [p[0] for p in poison] == expected_poison


def test_plain_entries_take_the_line_path() -> None:
    entries = [[f"{i}-0".encode(), flat(encode_scan(base(i)))] for i in range(5)]
    fast = rows_fast(3, entries)
    assert fast is not None
    assert decoded(fast) == [decode_entry(e[0], e[1]) for e in entries]
    assert fast.body().startswith(HEADER) and fast.body().count(b"\n") == 6


def test_poison_is_isolated_and_the_rest_kept() -> None:
    entries = [[f"{i}-0".encode(), flat(encode_scan(base(i)))] for i in range(4)]
    entries[1][1] = flat(pack({**scan_values(base(1)), "venue_id": "seven"}))
    entries[2][1] = None
    got, poison = rows_for_read(0, entries)
    assert [p[0] for p in poison] == [b"1-0", b"2-0"]
    assert [p[2] for p in poison] == ["invalid literal for int() with base 10: 'seven'", "entry deleted"]
    assert got.stream_id == [b"0-0", b"3-0"]


def test_entries_of_the_earlier_format_still_land() -> None:
    """An upgrade must not dead-letter scans accepted before it: field-per-value entries are read too."""
    legacy_names = {v: k for k, v in LEGACY_NAMES.items()}
    values = scan_values(base(4))
    legacy = {legacy_names[name]: value for name, value in values.items() if name in legacy_names}
    legacy["t"] = "in" if values["version"] == "0" else "out"
    entries = [[b"7-0", flat(legacy)], [b"8-0", flat(encode_scan(base(5)))]]
    assert rows_fast(0, entries) is None
    got, poison = rows_for_read(0, entries)
    assert poison == []
    assert decoded(got) == [
        decode_entry(b"7-0", flat(encode_scan(base(4)))),
        decode_entry(b"8-0", entries[1][1]),
    ]
    assert got.lines[0] == encode_scan(base(4))["scan"].encode()


def test_lines_of_the_earlier_layout_still_land() -> None:
    """A line written before ``ended_by`` existed (one value fewer) is read as a natural end."""
    line = encode_scan(base(3))["scan"].rsplit("\t", 1)[0]
    entries = [[b"9-0", flat({"scan": line})]]
    assert rows_fast(0, entries) is None
    got, poison = rows_for_read(0, entries)
    assert poison == []
    assert decoded(got) == [decode_entry(b"9-0", flat(encode_scan(base(3))))]


def test_end_rows_carry_their_version_and_cause() -> None:
    values = {**scan_values(base(2)), "version": "17", "ended_by": "next_stay"}
    entries = [[b"1-0", flat(pack(values))]]
    fast = rows_fast(0, entries)
    assert fast is not None
    event = decode_entry(b"1-0", entries[0][1])
    assert (event.version, event.ended_by, event.kind) == (17, "next_stay", "out")
    for bad in ({"version": "256"}, {"ended_by": "nature"}):
        entries = [[b"2-0", flat(pack({**values, **bad}))]]
        assert rows_fast(0, entries) is None
        assert rows_for_read(0, entries)[1][0][0] == b"2-0"


def test_the_engine_reads_what_decode_line_reads(store: Store) -> None:
    """Accepted spellings the line path passes as they are: ClickHouse must read the same values."""
    variants = [
        {"lat": ".5", "lon": "-103.25"},
        {"lat": "036.5", "lon": "1."},
        {"venue_id": "007", "person_id": "0012", "owner_id": "12"},
        {"lat": "", "lon": "", "reason": "test_expired", "verdict": "deny"},
        {"version": "1", "end_at": "1795900000999"},
    ]
    entries = []
    for i, change in enumerate(variants):
        entries.append([f"{2000 + i}-0".encode(), flat(pack({**scan_values(base(i + 1)), **change}))])
    rows = rows_fast(1, entries)
    assert rows is not None
    store.insert_raw("scans", INSERT_COLUMNS, rows.body(), fmt=INSERT_FORMAT, settings=INSERT_SETTINGS)
    got = store.rows(
        f"SELECT stream_id, checkin_id, person_id, venue_id, toUnixTimestamp64Milli(at), "
        f"toUnixTimestamp64Milli(end_at), version, toString(status), toString(verdict), reason, "
        f"toString(source), owner_id, lat, lon, toUnixTimestamp64Milli(received_at), district "
        f"FROM {store.table('scans')} ORDER BY stream_id"
    )
    want = []
    for ev in decoded(rows):
        want.append(
            (
                ev.entry_id,
                ev.checkin_id,
                ev.person_id,
                ev.venue_id,
                ev.at_ms,
                ev.end_ms,
                1 if ev.kind == "out" else 0,
                ev.status,
                ev.verdict,
                ev.reason,
                ev.source,
                ev.owner_id,
                ev.lat or 0.0,
                ev.lon or 0.0,
                ev.received_ms,
                ev.district,
            )
        )
    assert [(*r[:12], round(r[12], 4), round(r[13], 4), *r[14:]) for r in got] == [
        (*w[:12], round(w[12], 4), round(w[13], 4), *w[14:]) for w in want
    ]


def test_dedup_token_depends_on_shards_and_ids_only() -> None:
    one = rows_from_events(1, [base(1)])
    same = rows_from_events(1, [base(2)])
    other = rows_from_events(0, [base(1)])
    for rows in (one, same, other):
        rows.stream_id[0] = b"5-0"
    assert one.dedup_token() == same.dedup_token() != other.dedup_token()
    assert rows_from_events(0, []).dedup_token() != one.dedup_token()
