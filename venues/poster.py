"""Printable venue posters: PNG, SVG and PDF (A4 portrait).

A poster shows the venue name (Chinese renders with a CJK font from the system,
see :data:`FONT_CANDIDATES`), the QR code of the check-in URL (error correction
M, fixed mask), a one-line instruction, the venue number and the address. The
PNG and PDF are the same raster (150 dpi); the SVG is vector, with line breaks
measured with the same font so the layouts agree.
"""

from __future__ import annotations

import functools
import io
import re
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from PIL import Image, ImageDraw, ImageFont

from checkin.platform.errors import Unavailable
from venues import qr

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
)
SVG_FONT_FAMILY = "'WenQuanYi Micro Hei', 'Noto Sans CJK SC', 'Noto Sans SC', 'Microsoft YaHei', sans-serif"
DPI = 150
WIDTH, HEIGHT = 1240, 1754  # A4 at 150 dpi
MARGIN = 80
HEADER_H = 230
GREEN = (11, 122, 62)
INK = (17, 17, 17)
MUTED = (90, 90, 90)
TITLE = "场所码"
SUBTITLE = "Venue check-in code"
INSTRUCTION = "请使用手机扫码登记 · Scan with your phone camera to check in"
QR_BOX = 860
"""Largest side of the QR code (quiet zone included), in pixels."""

FORMATS = ("png", "svg", "pdf")
MEDIA_TYPES = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf"}


@dataclass(frozen=True)
class PosterData:
    venue_id: int
    name: str
    address: str
    url: str


@functools.cache
def font_path() -> str:
    for candidate in FONT_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    raise Unavailable(
        "no CJK font is installed for posters; install fonts-wqy-microhei (scripts/system-deps.sh)"
    )


@functools.cache
def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_path(), size)


_TOKENS = re.compile(r"[A-Za-z0-9'’.,&()/#-]+|\s+|.")


def wrap(text: str, size: int, width: int, max_lines: int) -> list[str]:
    """Greedy line breaks (CJK anywhere, Latin at word ends); the last line ends with … if cut."""
    f = font(size)
    lines: list[str] = []
    current = ""
    for token in _TOKENS.findall(text.strip()):
        candidate = current + token
        if f.getlength(candidate) <= width or not current:
            current = candidate
            continue
        lines.append(current.rstrip())
        current = token.lstrip()
    if current.strip():
        lines.append(current.rstrip())
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while last and f.getlength(last + "…") > width:
            last = last[:-1]
        lines[-1] = last + "…"
    return lines


def _fit_name(name: str) -> tuple[int, list[str]]:
    """Largest font size at which the name fits two lines."""
    for size in (80, 72, 64, 56, 48, 42):
        lines = wrap(name, size, WIDTH - 2 * MARGIN, 2)
        if not lines or not lines[-1].endswith("…"):
            return size, lines
    return 42, wrap(name, 42, WIDTH - 2 * MARGIN, 2)


@dataclass(frozen=True)
class _Layout:
    name_size: int
    name_lines: list[str]
    name_y: list[int]
    matrix: qr.Matrix
    module: int
    qr_x: int
    qr_y: int
    qr_side: int
    instruction_y: int
    number_y: int
    address_lines: list[str]
    address_y: list[int]
    url_y: int


def _layout(data: PosterData) -> _Layout:
    size, lines = _fit_name(data.name)
    y = HEADER_H + 50
    name_y = []
    for _ in lines:
        name_y.append(y)
        y += int(size * 1.25)
    matrix = qr.encode(data.url)
    modules = matrix.size + 2 * qr.QUIET_ZONE
    module = max(4, QR_BOX // modules)
    side = module * modules
    qr_y = y + 10
    after_qr = qr_y + side + 10
    address_lines = wrap(data.address, 30, WIDTH - 2 * MARGIN, 2) if data.address else []
    address_y = [after_qr + 130 + i * 40 for i in range(len(address_lines))]
    return _Layout(
        name_size=size,
        name_lines=lines,
        name_y=name_y,
        matrix=matrix,
        module=module,
        qr_x=(WIDTH - side) // 2,
        qr_y=qr_y,
        qr_side=side,
        instruction_y=after_qr,
        number_y=after_qr + 70,
        address_lines=address_lines,
        address_y=address_y,
        url_y=HEIGHT - 60,
    )


def _number(venue_id: int) -> str:
    return f"场所编号 Venue No. {venue_id:08d}"


def poster_image(data: PosterData) -> Image.Image:
    lay = _layout(data)
    img = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, WIDTH, HEADER_H), fill=GREEN)
    draw.text((WIDTH // 2, 50), TITLE, font=font(96), fill="white", anchor="mt")
    draw.text((WIDTH // 2, 165), SUBTITLE, font=font(36), fill="white", anchor="mt")
    for text, y in zip(lay.name_lines, lay.name_y, strict=True):
        draw.text((WIDTH // 2, y), text, font=font(lay.name_size), fill=INK, anchor="mt")
    n = lay.matrix.size
    code = Image.frombytes("L", (n, n), qr.gray_bytes(lay.matrix))
    code = code.resize((n * lay.module, n * lay.module), Image.Resampling.NEAREST)
    quiet = qr.QUIET_ZONE * lay.module
    img.paste(code, (lay.qr_x + quiet, lay.qr_y + quiet))
    draw.text((WIDTH // 2, lay.instruction_y), INSTRUCTION, font=font(36), fill=INK, anchor="mt")
    draw.text((WIDTH // 2, lay.number_y), _number(data.venue_id), font=font(34), fill=INK, anchor="mt")
    for text, y in zip(lay.address_lines, lay.address_y, strict=True):
        draw.text((WIDTH // 2, y), text, font=font(30), fill=MUTED, anchor="mt")
    draw.text((WIDTH // 2, lay.url_y), data.url, font=font(22), fill=MUTED, anchor="mt")
    return img


def poster_png(data: PosterData) -> bytes:
    buf = io.BytesIO()
    poster_image(data).save(buf, "PNG", dpi=(DPI, DPI), compress_level=6)
    return buf.getvalue()


def poster_pdf(data: PosterData) -> bytes:
    buf = io.BytesIO()
    poster_image(data).save(
        buf, "PDF", resolution=float(DPI), quality=92, title=f"Venue {data.venue_id}", creator="venue-checkin"
    )
    return buf.getvalue()


def poster_svg(data: PosterData) -> bytes:
    lay = _layout(data)
    mid = WIDTH // 2

    def text(y: int, size: int, value: str, fill: str, weight: str = "normal") -> str:
        # SVG places the baseline at y; Pillow's "mt" anchor put the top of the text there.
        base = y + int(size * 0.88)
        return (
            f'<text x="{mid}" y="{base}" font-size="{size}" fill="{fill}" font-weight="{weight}" '
            f'text-anchor="middle">{escape(value)}</text>'
        )

    quiet = qr.QUIET_ZONE * lay.module
    path = qr.svg_path(lay.matrix, lay.qr_x + quiet, lay.qr_y + quiet, lay.module)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="210mm" height="297mm" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="{escape(SVG_FONT_FAMILY, {chr(34): "&quot;"})}">',
        f"<title>{escape(data.name)}</title>",
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>',
        f'<rect width="{WIDTH}" height="{HEADER_H}" fill="#0b7a3e"/>',
        text(50, 96, TITLE, "#fff", "bold"),
        text(165, 36, SUBTITLE, "#fff"),
        *(text(y, lay.name_size, line, "#111") for line, y in zip(lay.name_lines, lay.name_y, strict=True)),
        f'<rect x="{lay.qr_x}" y="{lay.qr_y}" width="{lay.qr_side}" height="{lay.qr_side}" fill="#fff"/>',
        f'<path d="{path}" fill="#000" shape-rendering="crispEdges"/>',
        text(lay.instruction_y, 36, INSTRUCTION, "#111"),
        text(lay.number_y, 34, _number(data.venue_id), "#111"),
        *(text(y, 30, line, "#5a5a5a") for line, y in zip(lay.address_lines, lay.address_y, strict=True)),
        text(lay.url_y, 22, data.url, "#5a5a5a"),
        "</svg>",
    ]
    return "\n".join(parts).encode("utf-8")


def render(fmt: str, data: PosterData) -> bytes:
    if fmt == "png":
        return poster_png(data)
    if fmt == "svg":
        return poster_svg(data)
    if fmt == "pdf":
        return poster_pdf(data)
    raise ValueError(f"unknown poster format {fmt!r}; expected one of {', '.join(FORMATS)}")
