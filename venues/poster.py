"""Printable venue posters: PNG (screens, quick prints), SVG and PDF (A4 or A3, for a print shop).

Three kinds, picked from the venue's state by :func:`kind_of` (docs/ARCHITECTURE.md, "Posters"):

* ``checkin``: the venue's printed code. The venue name (Chinese renders with a CJK font from the
  system, see :data:`FONT_CANDIDATES`), the QR code of the check-in URL (error correction M, fixed
  mask), a one-line instruction, the venue number, the address and the URL.
* ``screen``: a venue whose code is on a screen at the door. The notice "请扫描门口屏幕上的场所码 /
  Scan the code on the screen at the entrance", and no check-in QR (its printed code is refused).
* ``closed``: a closed venue. "本场所已停用 / This venue has closed" with the date, no QR.

One layout (:func:`layout`) in pixels of an A4 page at 150 dpi is drawn three ways: Pillow for the
PNG, SVG elements, and a PDF whose text is text in an embedded, subset TrueType font (a print shop
can check and search it) and whose QR code is vector paths (:func:`venues.qr.rectangles`: runs of dark
modules merged into rectangles), so A3 is as sharp as A4. Line breaks are measured once, with the same
font, so the three agree.
"""

from __future__ import annotations

import functools
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
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
WIDTH, HEIGHT = 1240, 1754  # A4 at 150 dpi: the layout's unit is one pixel of this page
MARGIN = 80
HEADER_H = 230
Color = tuple[int, int, int]
GREEN: Color = (11, 122, 62)
BLUE: Color = (21, 88, 160)
RED: Color = (160, 32, 24)
INK: Color = (17, 17, 17)
MUTED: Color = (90, 90, 90)
WHITE: Color = (255, 255, 255)
TITLE = "场所码"
SUBTITLE = "Venue check-in code"
INSTRUCTION = "请使用手机扫码登记 · Scan with your phone camera to check in"
SCREEN_TITLE = "场所码在门口屏幕上"
SCREEN_SUBTITLE = "The check-in code is on the screen at the entrance"
SCREEN_CALL = "请扫描门口屏幕上的场所码"
SCREEN_CALL_EN = "Scan the code on the screen at the entrance"
CLOSED_TITLE = "本场所已停用"
CLOSED_SUBTITLE = "This venue has closed"
QR_BOX = 860
"""Largest side of the QR code (quiet zone included), in pixels."""

Kind = Literal["checkin", "screen", "closed"]
KINDS: tuple[str, ...] = ("checkin", "screen", "closed")
FORMATS = ("png", "svg", "pdf")
MEDIA_TYPES = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf"}
PaperSize = Literal["a4", "a3"]
PAPER_SIZES: tuple[str, ...] = ("a4", "a3")
PAGE_POINTS: dict[str, tuple[float, float]] = {
    "a4": (595.2756, 841.8898),  # 210 x 297 mm
    "a3": (841.8898, 1190.5512),  # 297 x 420 mm
}
PDF_FONT = "PosterCJK"
SUBJECTS = {"checkin": "venue check-in poster", "screen": "door screen notice", "closed": "closed notice"}


@dataclass(frozen=True)
class PosterData:
    venue_id: int
    name: str
    address: str
    url: str = ""
    """What the QR code encodes (the check-in poster only)."""
    kind: Kind = "checkin"
    closed_on: str = ""
    """Local date (YYYY-MM-DD) the venue closed on (the ``closed`` notice)."""
    step_s: int = 30
    """How often the door screen's code changes (the ``screen`` notice)."""


def kind_of(active: bool, code_mode: str) -> Kind:
    """The poster a venue's state calls for: a closed venue's notice, the screen notice of a venue whose
    code is on a screen at the door (its printed code is refused), else the check-in poster."""
    if not active:
        return "closed"
    return "screen" if code_mode == "rotating" else "checkin"


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


@functools.cache
def pdf_font() -> str:
    """Registers the first candidate with TrueType outlines with ReportLab (which embeds a subset of
    the glyphs a document uses); CFF fonts such as Noto CJK are skipped."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFError, TTFont

    for candidate in FONT_CANDIDATES:
        if not Path(candidate).is_file():
            continue
        try:
            pdfmetrics.registerFont(TTFont(PDF_FONT, candidate, subfontIndex=0))
        except TTFError:
            continue
        return PDF_FONT
    raise Unavailable(
        "no CJK TrueType font is installed for PDF posters; "
        "install fonts-wqy-microhei (scripts/system-deps.sh)"
    )


_TOKENS = re.compile(r"[A-Za-z0-9'’.,&()/#:-]+|\s+|.")


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


def _fit(text: str, sizes: tuple[int, ...], max_lines: int = 2) -> tuple[int, list[str]]:
    """Largest font size at which the text fits ``max_lines`` lines (cut with … at the smallest)."""
    for size in sizes:
        lines = wrap(text, size, WIDTH - 2 * MARGIN, max_lines)
        if not lines or not lines[-1].endswith("…"):
            return size, lines
    return sizes[-1], wrap(text, sizes[-1], WIDTH - 2 * MARGIN, max_lines)


# --- the layout: what goes where, in pixels of the A4 page at 150 dpi --------------------------------


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int
    color: Color


@dataclass(frozen=True)
class Text:
    y: int
    """Top of the line (the font's ascender), centred on the page."""
    size: int
    text: str
    color: Color


@dataclass(frozen=True)
class Code:
    matrix: qr.Matrix
    x: int
    """Left of the first module (inside the quiet zone)."""
    y: int
    module: int


@dataclass
class Layout:
    title: str
    boxes: list[Box] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)
    code: Code | None = None


def _number(venue_id: int) -> str:
    return f"场所编号 Venue No. {venue_id:08d}"


class _Flow:
    """Lines placed top to bottom."""

    def __init__(self, lay: Layout, y: int) -> None:
        self.lay, self.y = lay, y

    def lines(self, lines: list[str], size: int, color: Color, leading: float = 1.25, after: int = 0) -> None:
        for line in lines:
            self.lay.texts.append(Text(self.y, size, line, color))
            self.y += int(size * leading)
        self.y += after

    def text(self, value: str, size: int, color: Color, max_lines: int = 2, after: int = 0) -> None:
        self.lines(wrap(value, size, WIDTH - 2 * MARGIN, max_lines), size, color, after=after)


def _header(lay: Layout, color: Color, title: str, subtitle: str) -> None:
    lay.boxes.append(Box(0, 0, WIDTH, HEADER_H, color))
    size, lines = _fit(title, (96, 80, 64), 1)
    lay.texts.append(Text(50 + (96 - size) // 2, size, lines[0], WHITE))
    lay.texts.append(Text(165, 36, subtitle, WHITE))


def _footer(lay: Layout, data: PosterData, y: int) -> None:
    lay.texts.append(Text(y, 34, _number(data.venue_id), INK))
    if data.address:
        for i, line in enumerate(wrap(data.address, 30, WIDTH - 2 * MARGIN, 2)):
            lay.texts.append(Text(y + 60 + i * 40, 30, line, MUTED))


def _checkin(data: PosterData) -> Layout:
    lay = Layout(title=data.name)
    _header(lay, GREEN, TITLE, SUBTITLE)
    size, name_lines = _fit(data.name, (80, 72, 64, 56, 48, 42))
    flow = _Flow(lay, HEADER_H + 50)
    flow.lines(name_lines, size, INK)
    matrix = qr.encode(data.url)
    modules = matrix.size + 2 * qr.QUIET_ZONE
    module = max(4, QR_BOX // modules)
    side = module * modules
    qr_x, qr_y = (WIDTH - side) // 2, flow.y + 10
    quiet = qr.QUIET_ZONE * module
    lay.boxes.append(Box(qr_x, qr_y, side, side, WHITE))
    lay.code = Code(matrix, qr_x + quiet, qr_y + quiet, module)
    after_qr = qr_y + side + 10
    lay.texts.append(Text(after_qr, 36, INSTRUCTION, INK))
    _footer(lay, data, after_qr + 70)
    lay.texts.append(Text(HEIGHT - 60, 22, data.url, MUTED))
    return lay


def _screen_panel(lay: Layout, y: int, step_s: int) -> int:
    """A drawn tablet (an outline, no code in it: nothing on paper to scan) with the step in words."""
    w, h, edge = 560, 360, 18
    x = (WIDTH - w) // 2
    for box in (
        Box(x, y, w, edge, INK),
        Box(x, y + h - edge, w, edge, INK),
        Box(x, y, edge, h, INK),
        Box(x + w - edge, y, edge, h, INK),
        Box(x + w // 2 - 60, y + h, 120, 50, INK),
        Box(x + w // 2 - 160, y + h + 50, 320, 14, INK),
    ):
        lay.boxes.append(box)
    lay.texts.append(Text(y + 110, 56, f"每 {step_s} 秒换一个码", BLUE))
    lay.texts.append(Text(y + 190, 34, f"a new code every {step_s} s", BLUE))
    return y + h + 64


def _screen(data: PosterData) -> Layout:
    lay = Layout(title=data.name)
    _header(lay, BLUE, SCREEN_TITLE, SCREEN_SUBTITLE)
    size, name_lines = _fit(data.name, (80, 72, 64, 56, 48, 42))
    flow = _Flow(lay, HEADER_H + 60)
    flow.lines(name_lines, size, INK, after=70)
    flow.text(SCREEN_CALL, 80, INK, after=10)
    flow.text(SCREEN_CALL_EN, 48, INK, after=90)
    flow.y = _screen_panel(lay, flow.y, data.step_s) + 60
    flow.text("本海报上没有场所码：请扫描入口屏幕上正在显示的码。", 34, MUTED)
    flow.text("This poster carries no check-in code: scan the one the screen shows.", 30, MUTED, after=20)
    flow.text("屏幕上的码拍照或截图后很快失效。", 34, MUTED)
    flow.text("Photos of the screen stop working within a minute.", 30, MUTED)
    _footer(lay, data, max(flow.y + 40, HEIGHT - 200))
    return lay


def _closed(data: PosterData) -> Layout:
    lay = Layout(title=data.name)
    _header(lay, RED, CLOSED_TITLE, CLOSED_SUBTITLE)
    size, name_lines = _fit(data.name, (88, 80, 72, 64, 56, 48, 42))
    flow = _Flow(lay, HEADER_H + 90)
    flow.lines(name_lines, size, INK, after=110)
    if data.closed_on:
        flow.text(f"自 {data.closed_on} 起停止扫码登记", 72, RED, after=10)
        flow.text(f"Check-ins ended on {data.closed_on}", 48, RED, after=140)
    else:
        flow.text("已停止扫码登记", 72, RED, after=10)
        flow.text("Check-ins have ended", 48, RED, after=140)
    flow.text("本场所的场所码已失效，无需扫码。", 44, INK, after=6)
    flow.text("Its check-in code no longer works: there is nothing to scan here.", 34, INK, after=90)
    flow.text("请取下本场所张贴的全部场所码海报。", 44, INK, after=6)
    flow.text("Please take down every check-in poster of this venue.", 34, INK)
    _footer(lay, data, max(flow.y + 40, HEIGHT - 200))
    return lay


def layout(data: PosterData) -> Layout:
    if data.kind == "screen":
        return _screen(data)
    if data.kind == "closed":
        return _closed(data)
    if not data.url:
        raise ValueError("a check-in poster needs the URL its QR code encodes")
    return _checkin(data)


# --- the three drawings -----------------------------------------------------------------------------


def poster_image(data: PosterData) -> Image.Image:
    lay = layout(data)
    img = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(img)
    for b in lay.boxes:
        draw.rectangle((b.x, b.y, b.x + b.w - 1, b.y + b.h - 1), fill=b.color)
    for t in lay.texts:
        draw.text((WIDTH // 2, t.y), t.text, font=font(t.size), fill=t.color, anchor="mt")
    if lay.code is not None:
        c = lay.code
        n = c.matrix.size
        code = Image.frombytes("L", (n, n), qr.gray_bytes(c.matrix))
        img.paste(code.resize((n * c.module, n * c.module), Image.Resampling.NEAREST), (c.x, c.y))
    return img


def poster_png(data: PosterData) -> bytes:
    buf = io.BytesIO()
    poster_image(data).save(buf, "PNG", dpi=(DPI, DPI), compress_level=6)
    return buf.getvalue()


def _hex(color: Color) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color)


def poster_svg(data: PosterData) -> bytes:
    lay = layout(data)
    mid = WIDTH // 2

    def text(t: Text) -> str:
        # SVG places the baseline at y; Pillow's "mt" anchor put the top of the text there.
        base = t.y + int(t.size * 0.88)
        weight = "bold" if t.size >= 80 else "normal"
        return (
            f'<text x="{mid}" y="{base}" font-size="{t.size}" fill="{_hex(t.color)}" font-weight="{weight}" '
            f'text-anchor="middle">{escape(t.text)}</text>'
        )

    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="210mm" height="297mm" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="{escape(SVG_FONT_FAMILY, {chr(34): "&quot;"})}">',
        f"<title>{escape(lay.title)}</title>",
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>',
        *(
            f'<rect x="{b.x}" y="{b.y}" width="{b.w}" height="{b.h}" fill="{_hex(b.color)}"/>'
            for b in lay.boxes
        ),
    ]
    if lay.code is not None:
        c = lay.code
        path = qr.svg_path(c.matrix, c.x, c.y, c.module)
        parts.append(f'<path d="{path}" fill="#000" shape-rendering="crispEdges"/>')
    parts.extend(text(t) for t in lay.texts)
    parts.append("</svg>")
    return "\n".join(parts).encode("utf-8")


def poster_pdf(data: PosterData, size: str = "a4") -> bytes:
    """The poster as a PDF page of ``size`` (a4, a3): text in the embedded subset font, the QR code as
    filled rectangles (one path), so the page scales without blur."""
    from reportlab.pdfgen import canvas

    if size not in PAGE_POINTS:
        raise ValueError(f"unknown paper size {size!r}; expected one of {', '.join(PAPER_SIZES)}")
    face = pdf_font()
    lay = layout(data)
    page_w, page_h = PAGE_POINTS[size]
    s = page_w / WIDTH
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(page_w, page_h), invariant=True, pageCompression=1, initialFontName=face)
    c.setTitle(f"{lay.title} ({data.venue_id})")
    c.setAuthor("venue-checkin")
    c.setCreator("venue-checkin")
    c.setSubject(SUBJECTS[data.kind])
    for b in lay.boxes:
        c.setFillColorRGB(*(v / 255 for v in b.color))
        c.rect(b.x * s, page_h - (b.y + b.h) * s, b.w * s, b.h * s, stroke=0, fill=1)
    if lay.code is not None:
        code = lay.code
        m = code.module * s
        x0, top = code.x * s, page_h - code.y * s
        path = c.beginPath()
        for col, row, w, h in qr.rectangles(code.matrix):
            path.rect(x0 + col * m, top - (row + h) * m, w * m, h * m)
        c.setFillColorRGB(0, 0, 0)
        c.drawPath(path, stroke=0, fill=1)
    mid = WIDTH / 2 * s
    for t in lay.texts:
        ascent = font(t.size).getmetrics()[0]
        c.setFillColorRGB(*(v / 255 for v in t.color))
        c.setFont(face, t.size * s)
        c.drawCentredString(mid, page_h - (t.y + ascent) * s, t.text)
    c.showPage()
    c.save()
    return buf.getvalue()


def render(fmt: str, data: PosterData, size: str = "a4") -> bytes:
    if fmt == "png":
        return poster_png(data)
    if fmt == "svg":
        return poster_svg(data)
    if fmt == "pdf":
        return poster_pdf(data, size)
    raise ValueError(f"unknown poster format {fmt!r}; expected one of {', '.join(FORMATS)}")
