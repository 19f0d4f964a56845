"""Versioned static assets (page scripts and styles) served from a package's ``static/`` folder.

A page links ``/path/file.js?v=<version>``; the version is a hash of the content, so a
versioned URL can be cached for a month and an unversioned one is revalidated often.
"""

from __future__ import annotations

import hashlib
from importlib import resources

from litestar import Response

MEDIA_TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8", "png": "image/png"}


class Asset:
    def __init__(self, package: str, name: str) -> None:
        self.body = (resources.files(package) / "static" / name).read_bytes()
        self.media_type = MEDIA_TYPES[name.rsplit(".", 1)[-1]]
        self.version = hashlib.sha256(self.body).hexdigest()[:12]

    def response(self, v: str | None) -> Response[bytes]:
        max_age = 86400 * 30 if v == self.version else 300
        return Response(
            content=self.body,
            media_type=self.media_type,
            headers={
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": f"public, max-age={max_age}",
                "ETag": f'"{self.version}"',
            },
        )


def read_text(package: str, name: str) -> str:
    return (resources.files(package) / "static" / name).read_text(encoding="utf-8")
