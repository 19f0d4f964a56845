"""Versioned static assets (page scripts and styles) served from a package's ``static/`` folder.

A page links ``/path/file.js?v=<version>``; the version is a hash of the content, so a
versioned URL can be cached for a month and an unversioned one is revalidated often.

A page whose script is a set of ES modules (:class:`Modules`) links ``<prefix>/<version>/main.js``
with one version for the whole set: the modules import each other by relative paths, which stay in
that versioned folder, so a module cached for a month never meets an older or newer neighbour.
"""

from __future__ import annotations

import hashlib
from importlib import resources

from litestar import Response

from checkin.platform.errors import NotFound

MEDIA_TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8", "png": "image/png"}


MONTH_S = 86400 * 30
STALE_S = 300


def _headers(version: str, max_age: int) -> dict[str, str]:
    return {
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": f"public, max-age={max_age}",
        "ETag": f'"{version}"',
    }


class Asset:
    def __init__(self, package: str, name: str) -> None:
        self.body = (resources.files(package) / "static" / name).read_bytes()
        self.media_type = MEDIA_TYPES[name.rsplit(".", 1)[-1]]
        self.version = hashlib.sha256(self.body).hexdigest()[:12]

    def response(self, v: str | None) -> Response[bytes]:
        max_age = MONTH_S if v == self.version else STALE_S
        headers = _headers(self.version, max_age)
        return Response(content=self.body, media_type=self.media_type, headers=headers)


class Modules:
    """The ES modules in a package's ``static/<folder>/``, served as ``<prefix>/<version>/<name>``."""

    def __init__(self, package: str, folder: str, prefix: str) -> None:
        root = resources.files(package) / "static" / folder
        self.files = {
            entry.name: entry.read_bytes()
            for entry in sorted(root.iterdir(), key=lambda e: e.name)
            if entry.name.endswith(".js")
        }
        digest = hashlib.sha256()
        for name, body in self.files.items():
            digest.update(name.encode() + b"\0" + body + b"\0")
        self.version = digest.hexdigest()[:12]
        self.prefix = prefix

    def url(self, name: str = "main.js") -> str:
        return f"{self.prefix}/{self.version}/{name}"

    def urls(self) -> list[str]:
        """Every module's versioned address (what a service worker precaches)."""
        return [self.url(name) for name in self.files]

    def response(self, version: str, name: str) -> Response[bytes]:
        """The module ``name``; cached for a month at the current version, briefly at any other."""
        body = self.files.get(name)
        if body is None:
            raise NotFound(f"no script {name!r}")
        max_age = MONTH_S if version == self.version else STALE_S
        return Response(content=body, media_type=MEDIA_TYPES["js"], headers=_headers(self.version, max_age))


def read_text(package: str, name: str) -> str:
    return (resources.files(package) / "static" / name).read_text(encoding="utf-8")
