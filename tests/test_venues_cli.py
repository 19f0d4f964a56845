"""``checkin venues import|posters|rotate-keyring`` as real processes against real Redis."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import redis
import zxingcpp
from PIL import Image

from checkin.platform.keyring import Keyring
from checkin.platform.redis_keys import RedisKeys
from checkin.platform.settings import Settings
from tests.support.pdf import pdf_page, pdf_text
from tests.support.values import REDIS_URL
from venues import codes, importer

HEADER = ",".join(importer.COLUMNS)


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "checkin.cli", "venues", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def cli_env(settings: Settings, tmp_path: Path, keyring: bool = True) -> dict[str, str]:
    env = {
        "CHECKIN_DATA_DIR": str(tmp_path / "var"),
        "CHECKIN_REDIS_URL": REDIS_URL,
        "CHECKIN_KEY_PREFIX": settings.key_prefix,
        "CHECKIN_ADMIN_KEY": settings.admin_key,
        "CHECKIN_PUBLIC_BASE_URL": "https://qr.example.cn",
        "CHECKIN_KEYRING": settings.keyring if keyring else "",
    }
    return env


def row(venue_id: int, community: str, name: str = "店", lat: str = "36.1") -> str:
    return f"{venue_id},{name},地址,restaurant,{community[:6]},{community[:9]},{community},{lat},103.8,20,60,"


def test_import_cli_errors_and_progress(settings: Settings, tmp_path: Path, sync_redis: redis.Redis) -> None:
    env = cli_env(settings, tmp_path)
    keys = RedisKeys(settings.key_prefix, settings.stream_shards)
    missing = run(env, "import", str(tmp_path / "nope.csv"))
    assert (
        missing.returncode == 2 and missing.stderr.strip() == f"error: no such file {tmp_path / 'nope.csv'}"
    )

    bad = tmp_path / "bad.csv"
    bad.write_text("venue_id,name\n1,x\n", encoding="utf-8")
    result = run(env, "import", str(bad))
    assert result.returncode == 2
    assert "missing column(s): address, type" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not sync_redis.exists(keys.venue_index())

    good = tmp_path / "venues.csv"
    lines = [HEADER, row(1, "620102001001"), row(2, "620102001001", lat="123"), row(3, "620103001001")]
    good.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report_path = tmp_path / "report.json"
    result = run(env, "import", str(good), "--report", str(report_path))
    assert result.returncode == 1, result.stderr
    assert "3 rows" in result.stdout and "2 created" in result.stdout and "1 rejected" in result.stdout
    assert "line 3: lat 123 is out of range -90..90" in result.stderr
    assert "import:" in result.stderr and "MB" in result.stderr  # the progress line
    assert json.loads(report_path.read_text())["errors"][0]["line"] == 3
    assert sync_redis.zcard(keys.venue_index()) == 2

    again = run(env, "import", str(good), "--strict")
    assert again.returncode == 1 and "nothing was written" in again.stderr


def test_posters_cli_zip_decodes(settings: Settings, tmp_path: Path, sync_redis: redis.Redis) -> None:
    env = cli_env(settings, tmp_path)
    csv_path = tmp_path / "venues.csv"
    lines = [HEADER] + [
        row(i, "620102001001" if i <= 6 else "620103001001", f"面馆{i}") for i in range(1, 10)
    ]
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert run(env, "import", str(csv_path)).returncode == 0
    keys = RedisKeys(settings.key_prefix, settings.stream_shards)
    sync_redis.hset(keys.venue(9), "active", "0")
    sync_redis.hset(keys.venue(2), "code_version", "4")
    keyring = Keyring.parse(settings.keyring)

    out = tmp_path / "out" / "codes.zip"
    result = run(env, "posters", "--out", str(out), "--format", "png", "--qr-only", "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert "8 files" in result.stdout and "codes:" in result.stderr
    with zipfile.ZipFile(out) as zf:
        names = sorted(zf.namelist())
        assert len(names) == 8 and "620102/620102001001/2-v4.png" in names
        image = Image.open(io.BytesIO(zf.read("620102/620102001001/2-v4.png")))
    url = zxingcpp.read_barcodes(image)[0].text
    assert url.startswith("https://qr.example.cn/v/")
    claims = codes.verify(keyring, url.rsplit("/", 1)[1])
    assert (claims.venue_id, claims.code_version) == (2, 4)

    pdfs = tmp_path / "district.zip"
    result = run(env, "posters", "--out", str(pdfs), "--format", "pdf", "--district", "620103")
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(pdfs) as zf:
        assert sorted(zf.namelist()) == [f"620103/620103001001/{i}-v1.pdf" for i in (7, 8)]
        pdf = zf.read("620103/620103001001/7-v1.pdf")
    url = zxingcpp.read_barcodes(pdf_page(pdf, 150))[0].text
    assert codes.verify(keyring, url.rsplit("/", 1)[1]).venue_id == 7

    bad = run(env, "posters", "--out", str(tmp_path / "x.zip"), "--district", "99")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --district")
    empty = run(env, "posters", "--out", str(tmp_path / "x.zip"), "--district", "650000")
    assert empty.returncode == 2 and "no venues in 650000" in empty.stderr
    assert not (tmp_path / "x.zip").exists()


def test_export_cli_writes_a_jurisdictions_pdfs(
    settings: Settings, tmp_path: Path, sync_redis: redis.Redis
) -> None:
    env = cli_env(settings, tmp_path)
    csv_path = tmp_path / "venues.csv"
    lines = [HEADER] + [row(i, "620102001001" if i <= 3 else "620103001001", f"面馆{i}") for i in range(1, 5)]
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert run(env, "import", str(csv_path)).returncode == 0
    keys = RedisKeys(settings.key_prefix, settings.stream_shards)
    sync_redis.hset(keys.venue(2), "code_mode", "rotating")
    sync_redis.hset(keys.venue(3), mapping={"active": "0", "closed_at": "2026-03-12T04:00:00.000Z"})
    keyring = Keyring.parse(settings.keyring)

    out = tmp_path / "print.zip"
    result = run(
        env, "export", "--jurisdiction", "620102", "--size", "a3", "--include-inactive", "--workers", "1"
    )
    assert result.returncode != 0 and "--out" in result.stderr
    result = run(
        env, "export", "--jurisdiction", "620102", "--out", str(out), "--size", "a3", "--include-inactive"
    )
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == [
            "620102/620102001001/1-v1.pdf",
            "620102/620102001001/2-screen-notice.pdf",
            "620102/620102001001/3-closed-notice.pdf",
        ]
        poster, screen, closed = (zf.read(name) for name in sorted(zf.namelist()))
    assert "面馆1" in pdf_text(poster)
    page = pdf_page(poster, 72)
    assert (page.width, page.height) == (842, 1191)  # A3 at 72 dpi
    url = zxingcpp.read_barcodes(page)[0].text
    assert codes.verify(keyring, url.rsplit("/", 1)[1]).venue_id == 1
    assert (
        "请扫描门口屏幕上的场所码" in pdf_text(screen) and zxingcpp.read_barcodes(pdf_page(screen, 72)) == []
    )
    assert "2026-03-12" in pdf_text(closed) and "本场所已停用" in pdf_text(closed)
    bad = run(env, "export", "--jurisdiction", "6201", "--out", str(out))
    assert bad.returncode == 2 and bad.stderr.startswith("error: --jurisdiction")


def test_rotate_keyring_keeps_old_keys(settings: Settings, tmp_path: Path) -> None:
    env = cli_env(settings, tmp_path, keyring=False)
    refused = run({**env, "CHECKIN_KEYRING": settings.keyring}, "rotate-keyring")
    assert refused.returncode == 2 and "CHECKIN_KEYRING" in refused.stderr
    result = run(env, "rotate-keyring")  # keyring generated in, and saved to, the data dir
    assert result.returncode == 0, result.stderr
    assert "added key 2" in result.stdout
    stored = Keyring.parse(json.loads((tmp_path / "var" / "secrets.json").read_text())["keyring"])
    assert sorted(stored.keys) == [1, 2] and stored.active_id == 2
    old_only = Keyring({1: stored.keys[1]})
    assert codes.verify(stored, codes.sign(old_only, 5, 1)).key_id == 1
