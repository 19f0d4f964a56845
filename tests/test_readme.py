"""The README documents every setting and both quick-start commands."""

from __future__ import annotations

from pathlib import Path

from checkin.platform.settings import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    missing = [
        f"CHECKIN_{name.upper()}"
        for name in Settings.__struct_fields__
        if f"CHECKIN_{name.upper()}" not in README
    ]
    assert missing == []


def test_quick_start_is_the_two_make_commands() -> None:
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick.splitlines() if line.startswith("make ")]
    assert commands == ["make run", "make test"]
