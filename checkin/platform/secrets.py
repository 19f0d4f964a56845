"""Admin key and keyring generated on first start and kept in the data dir.

When ``CHECKIN_ADMIN_KEY`` / ``CHECKIN_KEYRING`` are empty they are read from
``<data_dir>/secrets.json`` (mode 0600), which is created atomically the first
time so that several workers starting together agree on one set of secrets.
"""

from __future__ import annotations

import json
import os
import secrets as pysecrets
from pathlib import Path

import msgspec

from checkin.platform.keyring import Keyring
from checkin.platform.settings import Settings

SECRETS_FILE = "secrets.json"


def _generate() -> dict[str, str]:
    return {"admin_key": "adm_" + pysecrets.token_urlsafe(24), "keyring": Keyring.generate(1)}


def load_or_create(data_dir: Path) -> dict[str, str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SECRETS_FILE
    if not path.exists():
        tmp = data_dir / f".{SECRETS_FILE}.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(_generate(), fh)
        try:
            os.link(tmp, path)  # atomic: fails if another process won the race
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    loaded: dict[str, str] = json.loads(path.read_text())
    return loaded


def save_keyring(data_dir: Path, keyring: Keyring) -> None:
    """Persist a rotated keyring (used by `checkin keys rotate`)."""
    current = load_or_create(data_dir)
    current["keyring"] = keyring.serialize()
    tmp = data_dir / f".{SECRETS_FILE}.rotate"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(current, fh)
    os.replace(tmp, data_dir / SECRETS_FILE)


def resolve_secrets(settings: Settings) -> Settings:
    if settings.admin_key and settings.keyring:
        return settings
    stored = load_or_create(settings.data_path)
    return msgspec.structs.replace(
        settings,
        admin_key=settings.admin_key or stored["admin_key"],
        keyring=settings.keyring or stored["keyring"],
    )
