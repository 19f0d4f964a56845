"""Debian's chromium, driven through Playwright, for the browser tests.

One launch for every browser test: ``executable_path=/usr/bin/chromium`` (Playwright's own
browser download is not used) with the same flags. When chromium or Playwright is missing the
test is skipped, except under ``CI=true``, where it fails: a CI run must not pass by skipping
its browser tests.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def require_browser() -> None:
    """Skip the test (fail it under ``CI=true``) unless Playwright and Debian chromium are installed."""
    missing = []
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package is not installed")
    if not Path(CHROMIUM).exists():
        missing.append(f"Debian chromium is not installed ({CHROMIUM} is missing)")
    if not missing:
        return
    reason = "; ".join(missing)
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser test cannot run under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


@contextmanager
def chromium() -> Iterator[Any]:
    """A Playwright (sync API) browser of headless Debian chromium; closed on exit."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@asynccontextmanager
async def async_chromium() -> AsyncIterator[Any]:
    """A Playwright (async API) browser of headless Debian chromium; closed on exit."""
    require_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()
