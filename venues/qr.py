"""Fast QR encoding for venue URLs, with a fixed mask pattern.

Venue URLs are short byte-mode strings, so every code of a run shares one
version, one error-correction level and one mask. For each (version, level,
mask) we build once, with the ``qrcode`` package's own function patterns and
tables, a template of the symbol and the order in which data bits are placed;
encoding a URL is then byte packing, a table-driven Reed-Solomon remainder and
one gather. The result is module-for-module the matrix ``qrcode`` makes with
the same version and mask (tests check this), at a fraction of the cost, which
is what lets a 2-core machine print every venue code of a city in minutes.

Kept rather than a library, measured (``python -m loadtest.bench_qr --libraries-only
--urls 2000``, same 2,000 check-in URLs, level M, 1-bit PNG of 8 px a module with a
4-module quiet zone, best of 3, side by side on one machine; docs/BENCHMARKS.md):
this encoder is 2.91x as fast as zxing-cpp 3.1's writer for the matrix and 2.55x
for matrix + PNG (zxing-cpp has no PNG writer: Pillow saves its image), and
11.8x / 10.2x as fast as segno 1.6. Both are outside the 1.5x within which a
library would replace it; zxing-cpp stays the tests' decoder of what is written.

Matrices are ``bytes`` of ``size * size`` cells, 1 = dark, row-major, without
the quiet zone.
"""

from __future__ import annotations

import functools
import operator
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from qrcode import constants, util
from qrcode.base import rs_blocks
from qrcode.main import QRCode

ERROR_M = constants.ERROR_CORRECT_M
DEFAULT_MASK = 2
"""Fixed mask pattern (2: columns ``j % 3 == 0``) used for every venue code."""
QUIET_ZONE = 4

_MODE_BYTE = 0b0100
_PAD = (0xEC, 0x11)

# GF(256) with the QR polynomial x^8 + x^4 + x^3 + x^2 + 1.
_EXP = [0] * 512
_LOG = [0] * 256
_v = 1
for _i in range(255):
    _EXP[_i] = _v
    _LOG[_v] = _i
    _v <<= 1
    if _v & 0x100:
        _v ^= 0x11D
for _i in range(255, 512):
    _EXP[_i] = _EXP[_i - 255]


class QRTooLong(ValueError):
    """The text does not fit a QR code at this error-correction level."""


@functools.cache
def _rs_table(ec_count: int) -> tuple[int, ...]:
    """For each feedback byte f: f * generator (without its leading 1) as one big integer."""
    gen = [1]
    for i in range(ec_count):
        nxt = [0] * (len(gen) + 1)
        for j, coef in enumerate(gen):
            nxt[j] ^= coef
            if coef:
                nxt[j + 1] ^= _EXP[_LOG[coef] + i]
        gen = nxt
    tail = gen[1:]
    table = []
    for f in range(256):
        if f == 0:
            table.append(0)
            continue
        lf = _LOG[f]
        row = bytes(_EXP[lf + _LOG[c]] if c else 0 for c in tail)
        table.append(int.from_bytes(row, "big"))
    return tuple(table)


def _rs_remainder(data: bytes, ec_count: int) -> bytes:
    table = _rs_table(ec_count)
    shift = 8 * (ec_count - 1)
    mask = (1 << (8 * ec_count)) - 1
    rem = 0
    for byte in data:
        rem = ((rem << 8) & mask) ^ table[(rem >> shift) ^ byte]
    return rem.to_bytes(ec_count, "big")


@dataclass(frozen=True)
class _Layout:
    version: int
    size: int
    data_capacity: int
    """Data codewords of the whole symbol."""
    blocks: tuple[tuple[int, int], ...]
    """(data codewords, ec codewords) per block."""
    template: int
    """Function patterns and, in data cells, the mask bit; one byte per cell, as an integer."""
    gather: Callable[[bytes], tuple[int, ...]]
    """Picks, for every cell, its data bit (or a zero for function cells) from the bit stream."""
    stream_bits: int


def _length_bits(version: int) -> int:
    return 8 if version < 10 else 16


@functools.cache
def _layout(version: int, level: int, mask: int) -> _Layout:
    qr = QRCode(version=version, error_correction=level, mask_pattern=mask, border=0)
    size = version * 4 + 17
    qr.modules_count = size
    qr.modules = [[None] * size for _ in range(size)]
    qr.setup_position_probe_pattern(0, 0)
    qr.setup_position_probe_pattern(size - 7, 0)
    qr.setup_position_probe_pattern(0, size - 7)
    qr.setup_position_adjust_pattern()
    qr.setup_timing_pattern()
    qr.setup_type_info(False, mask)
    if version >= 7:
        qr.setup_type_number(False)
    modules = qr.modules
    mask_fn = util.mask_func(mask)
    # Data placement order: the same zigzag as qrcode's map_data.
    order: list[int] = []
    inc, row = -1, size - 1
    for col in range(size - 1, 0, -2):
        if col <= 6:
            col -= 1
        while True:
            for c in (col, col - 1):
                if modules[row][c] is None:
                    order.append(row * size + c)
            row += inc
            if row < 0 or row >= size:
                row -= inc
                inc = -inc
                break
    template = bytearray(size * size)
    for r in range(size):
        for c in range(size):
            cell = modules[r][c]
            if cell is None:
                template[r * size + c] = 1 if mask_fn(r, c) else 0
            else:
                template[r * size + c] = 1 if cell else 0
    stream_bits = len(order)
    zero_index = stream_bits  # the bit stream gets one trailing zero for function cells
    source = [zero_index] * (size * size)
    for bit_index, cell_index in enumerate(order):
        source[cell_index] = bit_index
    blocks = tuple((b.data_count, b.total_count - b.data_count) for b in rs_blocks(version, level))
    return _Layout(
        version=version,
        size=size,
        data_capacity=sum(d for d, _ in blocks),
        blocks=blocks,
        template=int.from_bytes(bytes(template), "big"),
        gather=operator.itemgetter(*source),
        stream_bits=stream_bits,
    )


_BITS = tuple(bytes((b >> (7 - i)) & 1 for i in range(8)) for b in range(256))


def smallest_version(length: int, level: int = ERROR_M) -> int:
    """The smallest QR version that holds ``length`` bytes in byte mode."""
    for version in range(1, 41):
        bits = 4 + _length_bits(version) + 8 * length
        capacity = sum(b.data_count for b in rs_blocks(version, level)) * 8
        if bits <= capacity:
            return version
    raise QRTooLong(f"{length} bytes do not fit a QR code")


def encode(text: str | bytes, *, level: int = ERROR_M, mask: int = DEFAULT_MASK, version: int = 0) -> Matrix:
    """The QR matrix of ``text`` (byte mode), smallest version unless ``version`` is given."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    if not version:
        version = smallest_version(len(data), level)
    lay = _layout(version, level, mask)
    header_bits = 4 + _length_bits(version)
    capacity_bits = lay.data_capacity * 8
    used = header_bits + 8 * len(data)
    if used > capacity_bits:
        raise QRTooLong(f"{len(data)} bytes do not fit a version-{version} QR code")
    # Mode, count and data as one integer, then the terminator and byte alignment.
    value = (_MODE_BYTE << _length_bits(version)) | len(data)
    value = (value << (8 * len(data))) | int.from_bytes(data, "big")
    term = min(4, capacity_bits - used)
    value <<= term
    used += term
    align = (-used) % 8
    value <<= align
    used += align
    payload = bytearray(value.to_bytes(used // 8, "big"))
    for i in range(lay.data_capacity - len(payload)):
        payload.append(_PAD[i % 2])
    # Split into blocks, add the error-correction codewords, interleave.
    data_blocks: list[bytes] = []
    ec_blocks: list[bytes] = []
    offset = 0
    for data_count, ec_count in lay.blocks:
        block = bytes(payload[offset : offset + data_count])
        offset += data_count
        data_blocks.append(block)
        ec_blocks.append(_rs_remainder(block, ec_count))
    codewords = bytearray()
    for group in (data_blocks, ec_blocks):
        longest = max(len(b) for b in group)
        for i in range(longest):
            for b in group:
                if i < len(b):
                    codewords.append(b[i])
    stream = b"".join([_BITS[c] for c in codewords])
    stream = stream[: lay.stream_bits].ljust(lay.stream_bits, b"\x00") + b"\x00"
    cells = bytes(lay.gather(stream))
    flipped = (int.from_bytes(cells, "big") ^ lay.template).to_bytes(lay.size * lay.size, "big")
    return Matrix(lay.size, version, flipped)


@dataclass(frozen=True)
class Matrix:
    size: int
    version: int
    cells: bytes
    """size*size bytes, 1 = dark."""

    def rows(self) -> list[bytes]:
        n = self.size
        return [self.cells[r * n : (r + 1) * n] for r in range(n)]


_TO_1BIT = bytes([0xFF, 0x00]) + bytes(254)
"""Module value -> one byte of a 1-bit PNG row (8 pixels): dark = 0 (black)."""
_TO_GRAY = bytes([0xFF, 0x00]) + bytes(254)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(matrix: Matrix, *, scale: int = 8, quiet_zone: int = QUIET_ZONE, compress_level: int = 6) -> bytes:
    """A black-and-white PNG of the code; ``scale`` pixels per module (a multiple of 8)."""
    if scale < 8 or scale % 8:
        raise ValueError("scale must be a multiple of 8")
    rep = scale // 8
    n = matrix.size
    width_modules = n + 2 * quiet_zone
    light = b"\xff" * (quiet_zone * rep)
    blank_line = b"\x00" + b"\xff" * (width_modules * rep)
    lines: list[bytes] = [blank_line] * (quiet_zone * scale)
    packed = matrix.cells.translate(_TO_1BIT)
    for r in range(n):
        row = packed[r * n : (r + 1) * n]
        if rep > 1:
            row = bytes(b for b in row for _ in range(rep))
        line = b"\x00" + light + row + light
        lines.extend([line] * scale)
    lines.extend([blank_line] * (quiet_zone * scale))
    side = width_modules * scale
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"".join(lines), compress_level)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def svg_path(matrix: Matrix, x0: float = 0.0, y0: float = 0.0, module: float = 1.0) -> str:
    """An SVG path ``d`` drawing the dark modules (runs of a row merged into one rectangle)."""
    parts: list[str] = []
    n = matrix.size
    cells = matrix.cells
    for r in range(n):
        c = 0
        base = r * n
        while c < n:
            if cells[base + c]:
                start = c
                while c < n and cells[base + c]:
                    c += 1
                x = x0 + start * module
                y = y0 + r * module
                w = (c - start) * module
                parts.append(f"M{x:g} {y:g}h{w:g}v{module:g}h-{w:g}z")
            else:
                c += 1
    return "".join(parts)


def rectangles(matrix: Matrix) -> list[tuple[int, int, int, int]]:
    """The dark modules as few rectangles ``(col, row, width, height)`` in modules: each row's runs of
    dark modules, and a run repeated exactly on the rows below it merged with them into one taller
    rectangle (what a vector poster draws: a print shop scales it to any size without blur)."""
    n = matrix.size
    cells = matrix.cells
    open_runs: dict[tuple[int, int], int] = {}
    """(col, width) -> the row where the rectangle of that run started."""
    out: list[tuple[int, int, int, int]] = []
    for r in range(n + 1):
        runs: set[tuple[int, int]] = set()
        if r < n:
            base = r * n
            c = 0
            while c < n:
                if cells[base + c]:
                    start = c
                    while c < n and cells[base + c]:
                        c += 1
                    runs.add((start, c - start))
                else:
                    c += 1
        for run in [k for k in open_runs if k not in runs]:
            top = open_runs.pop(run)
            out.append((run[0], top, run[1], r - top))
        for run in runs:
            open_runs.setdefault(run, r)
    out.sort(key=lambda rect: (rect[1], rect[0]))
    return out


def svg(matrix: Matrix, *, module: int = 8, quiet_zone: int = QUIET_ZONE) -> str:
    side = (matrix.size + 2 * quiet_zone) * module
    d = svg_path(matrix, quiet_zone * module, quiet_zone * module, module)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{side}" height="{side}" '
        f'viewBox="0 0 {side} {side}" shape-rendering="crispEdges">'
        f'<rect width="{side}" height="{side}" fill="#fff"/><path d="{d}" fill="#000"/></svg>'
    )


def gray_bytes(matrix: Matrix) -> bytes:
    """One byte per module, 0 = dark, 255 = light (for Pillow ``L`` images)."""
    return matrix.cells.translate(_TO_GRAY)
