"""Instants as the API takes them: RFC 3339 in UTC with milliseconds and a ``Z``."""

from __future__ import annotations

import datetime as dt

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def iso(moment: dt.datetime) -> str:
    """``moment`` (aware) as RFC 3339 in UTC with milliseconds."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_ms(ms: int) -> str:
    """A unix instant in milliseconds as RFC 3339 in UTC with milliseconds."""
    return iso(EPOCH + dt.timedelta(milliseconds=ms))
