"""Admin key, keyring and the private Redis password, generated on first use and kept in the data dir.

When ``CHECKIN_ADMIN_KEY`` / ``CHECKIN_KEYRING`` are empty they are read from
``<data_dir>/secrets.json`` (mode 0600, in a data dir created 0700), which is created atomically the
first time so that several workers starting together agree on one set of secrets. The password of
the private ``redis-server`` that ``checkin up`` starts is added the first time it starts one; commands
run later against the same data dir find that server through it.
"""

from __future__ import annotations

import functools
import json
import os
import secrets as pysecrets
from pathlib import Path

import msgspec

from checkin.platform.keyring import Keyring
from checkin.platform.redis_conn import has_password, reachable, with_password
from checkin.platform.settings import Settings, load_settings

SECRETS_FILE = "secrets.json"
REDIS_PASSWORD = "redis_password"  # noqa: S105 - the name of the field, not a password


def _generate() -> dict[str, str]:
    return {"admin_key": "adm_" + pysecrets.token_urlsafe(24), "keyring": Keyring.generate(1)}


def make_data_dir(data_dir: Path) -> None:
    """Create the data dir readable by its owner only (it holds secrets, the database and logs)."""
    if not data_dir.exists():
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        data_dir.mkdir(mode=0o700, exist_ok=True)


def load_or_create(data_dir: Path) -> dict[str, str]:
    make_data_dir(data_dir)
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


def _rewrite(data_dir: Path, current: dict[str, str]) -> None:
    tmp = data_dir / f".{SECRETS_FILE}.{os.getpid()}.new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(current, fh)
    os.replace(tmp, data_dir / SECRETS_FILE)


def save_keyring(data_dir: Path, keyring: Keyring) -> None:
    """Persist a rotated keyring (used by `checkin keys rotate`)."""
    current = load_or_create(data_dir)
    current["keyring"] = keyring.serialize()
    _rewrite(data_dir, current)


def private_redis_password(data_dir: Path) -> str:
    """The password of this data dir's private redis-server, generated the first time."""
    current = load_or_create(data_dir)
    if not current.get(REDIS_PASSWORD):
        current[REDIS_PASSWORD] = pysecrets.token_urlsafe(24)
        _rewrite(data_dir, current)
    return current[REDIS_PASSWORD]


def _stored(data_dir: Path) -> dict[str, str] | None:
    """The secrets file's content, or None when there is none (nothing is created)."""
    path = data_dir / SECRETS_FILE
    if not path.exists():
        return None
    loaded: dict[str, str] = json.loads(path.read_text())
    return loaded


def resolve_secrets(settings: Settings, *, create: bool = True) -> Settings:
    """Settings with the stored secrets filled in; a Redis URL without a password that does not answer
    becomes the URL of this data dir's private redis-server when one was started here.

    With ``create=False`` (read-only commands such as ``checkin status``) nothing is written: secrets
    that are neither set nor stored stay empty."""
    stored: dict[str, str] | None = None
    if not (settings.admin_key and settings.keyring):
        stored = load_or_create(settings.data_path) if create else _stored(settings.data_path)
        if stored is None:
            return settings
        settings = msgspec.structs.replace(
            settings,
            admin_key=settings.admin_key or stored["admin_key"],
            keyring=settings.keyring or stored["keyring"],
        )
    if has_password(settings.redis_url) or not (settings.data_path / SECRETS_FILE).exists():
        return settings
    password = (stored or load_or_create(settings.data_path)).get(REDIS_PASSWORD)
    if password and not reachable(settings.redis_url):
        settings = msgspec.structs.replace(settings, redis_url=with_password(settings.redis_url, password))
    return settings


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, built once: the environment's, with the stored secrets filled in."""
    return resolve_secrets(load_settings())
