"""The QR library comparison of loadtest/bench_qr.py measures like with like: the same URLs, level
M, PNGs of the same side that zxing-cpp decodes back to their URL."""

from __future__ import annotations

import io

import zxingcpp
from PIL import Image

from checkin.platform.keyring import Keyring
from loadtest import bench_qr


def test_every_library_writes_the_same_size_png_that_decodes_to_its_url() -> None:
    keyring = Keyring.parse(Keyring.generate(1))
    url = bench_qr._urls(keyring, 1)[0]
    sizes = set()
    for _matrix, png in bench_qr.LIBRARIES.values():
        image = Image.open(io.BytesIO(png(url)))
        assert [b.text for b in zxingcpp.read_barcodes(image)] == [url]
        assert image.mode == "1"
        sizes.add(image.size)
    assert sizes == {((33 + 8) * 8, (33 + 8) * 8)}  # version 4, 4-module quiet zone, 8 px a module


def test_compare_libraries_gives_both_figures_of_each_library() -> None:
    figures = bench_qr.compare_libraries(Keyring.parse(Keyring.generate(1)), 3)
    assert len(figures) == 2 * len(bench_qr.LIBRARIES)
    assert all(f.value > 0 and f.ratio is not None and f.ratio > 0 for f in figures)
    ours = [f for f in figures if "project encoder" in f.figure]
    assert [f.ratio for f in ours] == [1.0, 1.0]
