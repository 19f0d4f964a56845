"""Venue codes, the fast QR encoder and posters: no Redis, no ClickHouse.

QR codes are decoded with a real decoder (zxing-cpp); the encoder is checked
module for module against the ``qrcode`` package with the same version and mask.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
import qrcode
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageFont
from qrcode.util import MODE_8BIT_BYTE, QRData

from checkin.platform.keyring import Keyring, b64url_decode, b64url_encode
from tests.support.pdf import pdf_page
from venues import codes, export, poster, qr

KEYRING = Keyring.parse(Keyring.generate(1))
BASE = "https://checkin.example.gov.cn"


def decode_all(image: Image.Image) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(image)]


def pdf_page_image(pdf: bytes) -> Image.Image:
    """The poster PDF's page drawn at 150 dpi."""
    return pdf_page(pdf, 150)


# --- tokens -------------------------------------------------------------------------


def test_token_round_trip_and_size() -> None:
    token = codes.sign(KEYRING, 4_000_000_000, 65535)
    assert len(token) == codes.TOKEN_CHARS == 26
    claims = codes.verify(KEYRING, token)
    assert (claims.venue_id, claims.code_version, claims.key_id) == (4_000_000_000, 65535, 1)
    url = codes.checkin_url(BASE + "/", token)
    assert url == f"{BASE}/v/{token}"
    assert qr.encode(codes.checkin_url("http://127.0.0.1:8000", token)).version <= 4


@settings(max_examples=150, deadline=None)
@given(
    venue_id=st.integers(1, 2**32 - 1),
    version=st.integers(1, 2**16 - 1),
    bit=st.integers(0, codes.TOKEN_BYTES * 8 - 1),
)
def test_any_single_bit_change_of_the_token_bytes_is_refused(venue_id: int, version: int, bit: int) -> None:
    raw = bytearray(b64url_decode(codes.sign(KEYRING, venue_id, version)))
    raw[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(codes.InvalidCode):
        codes.verify(KEYRING, b64url_encode(bytes(raw)))


@settings(max_examples=150, deadline=None)
@given(
    venue_id=st.integers(1, 2**32 - 1),
    bit=st.integers(0, codes.TOKEN_CHARS * 8 - 1),
)
def test_any_single_bit_change_of_the_token_text_is_refused(venue_id: int, bit: int) -> None:
    text = bytearray(codes.sign(KEYRING, venue_id, 1).encode())
    text[bit // 8] ^= 1 << (bit % 8)
    tampered = text.decode("latin-1")
    with pytest.raises(codes.InvalidCode):
        codes.verify(KEYRING, tampered)


def test_rotated_keyring_signs_with_the_new_key_and_old_codes_still_verify() -> None:
    old_token = codes.sign(KEYRING, 77, 3)
    rotated = Keyring.parse(KEYRING.rotated().serialize())
    assert rotated.active_id == 2
    new_token = codes.sign(rotated, 77, 3)
    assert codes.verify(rotated, new_token).key_id == 2
    assert codes.verify(rotated, old_token).key_id == 1
    with pytest.raises(codes.InvalidCode):
        codes.verify(KEYRING, new_token)  # a keyring without key 2 refuses it
    other = Keyring.parse(Keyring.generate(1))
    with pytest.raises(codes.InvalidCode):
        codes.verify(other, old_token)  # same key id, different secret


# --- QR ----------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(data=st.binary(min_size=1, max_size=200), mask=st.integers(0, 7), level=st.sampled_from([0, 1, 2, 3]))
def test_fast_encoder_matches_the_qrcode_package(data: bytes, mask: int, level: int) -> None:
    matrix = qr.encode(data, level=level, mask=mask)
    ref = qrcode.QRCode(version=matrix.version, error_correction=level, mask_pattern=mask, border=0)
    ref.add_data(QRData(data, mode=MODE_8BIT_BYTE), optimize=0)
    ref.make(fit=False)
    assert matrix.cells == bytes(1 if c else 0 for row in ref.modules for c in row)
    assert matrix.version == qr.smallest_version(len(data), level)


def test_qr_png_and_svg_decode_to_the_exact_url() -> None:
    url = codes.checkin_url(BASE, codes.sign(KEYRING, 123456, 2))
    matrix = qr.encode(url)
    image = Image.open(io.BytesIO(qr.png(matrix)))
    assert image.mode == "1" and image.size == ((matrix.size + 8) * 8,) * 2
    assert decode_all(image) == [url]
    assert decode_all(image.resize((image.width * 2, image.height * 2))) == [url]
    svg = qr.svg(matrix)
    assert svg.startswith("<svg") and 'fill="#000"' in svg
    with pytest.raises(qr.QRTooLong):
        qr.encode("x" * 3000)


# --- posters -------------------------------------------------------------------------

NAME = "兰州牛肉拉面（张掖路店）"


def _data(name: str = NAME, address: str = "城关区张掖路 88 号") -> poster.PosterData:
    token = codes.sign(KEYRING, 42, 1)
    return poster.PosterData(venue_id=42, name=name, address=address, url=codes.checkin_url(BASE, token))


def test_cjk_font_has_real_glyphs() -> None:
    font = ImageFont.truetype(poster.font_path(), 64)
    tofu = font.getmask("\ue000")  # a private-use code point: the font's missing-glyph box
    for ch in "兰州场所码":
        mask = font.getmask(ch)
        assert mask.size != (0, 0)
        assert mask.size != tofu.size or bytes(mask) != bytes(tofu), ch


def test_png_poster_has_the_name_and_a_decodable_code() -> None:
    data = _data()
    image = Image.open(io.BytesIO(poster.render("png", data)))
    assert image.size == (poster.WIDTH, poster.HEIGHT)
    assert decode_all(image) == [data.url]
    # The name band differs from a poster with another name: the name is drawn there.
    other = poster.poster_image(_data(name="另一家店"))
    band = (0, poster.HEADER_H, poster.WIDTH, poster.HEADER_H + 200)
    diff = ImageChops.difference(image.convert("RGB").crop(band), other.crop(band))
    assert diff.getbbox() is not None


def test_pdf_poster_decodes_to_the_url() -> None:
    data = _data(name="A" * 300, address="很长的地址" * 40)  # long text is wrapped and cut, not overflowing
    pdf = poster.render("pdf", data)
    assert pdf.startswith(b"%PDF-")
    assert b"/MediaBox" in pdf
    assert decode_all(pdf_page_image(pdf)) == [data.url]


def test_svg_poster_is_escaped_vector_text() -> None:
    data = _data(name='<b>"老王" & 小李</b>')
    svg = poster.render("svg", data).decode()
    assert "&lt;b&gt;" in svg and "<b>" not in svg
    assert "场所编号 Venue No. 00000042" in svg
    assert data.url in svg
    assert re.search(r'<path d="M[0-9]', svg)


def test_export_zip_single_process(tmp_path: Path) -> None:
    rows = [(i, 1, f"店{i}", "", "620102", "620102001001") for i in range(1, 31)]
    out = tmp_path / "codes.zip"
    result = export.export_zip(
        iter(rows),
        len(rows),
        out,
        keyring_text=KEYRING.serialize(),
        base_url=BASE,
        fmt="png",
        qr_only=True,
        workers=1,
    )
    assert result.count == 30 and out.exists() and not (tmp_path / "codes.zip.partial").exists()
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        assert names[0] == "620102/620102001001/1-v1.png"
        body = zf.read("620102/620102001001/7-v1.png")
    url = decode_all(Image.open(io.BytesIO(body)))[0]
    assert codes.verify(KEYRING, url.rsplit("/", 1)[1]).venue_id == 7
