"""The text message of an exposure notice: the project's own template (docs/ARCHITECTURE.md, "Notices
to residents").

An official text is read as the health authority's voice, so nothing in it is anyone's free text:
it names the venue (a name that keeps :mod:`venues.text`'s rules: no web address, no 【】; a name
stored before those rules that breaks them is replaced by the venue's number), the window in local
time (``CHECKIN_TZ``), the level's instruction in the resident's language and a link to the notice
on the phone page (``{CHECKIN_PUBLIC_BASE_URL}/me#notice-<notice id>``). The tracer's ``message``
is shown on the page only.

Language: Chinese unless the person's record holds the phone page's remembered choice ``en``
(field ``lang`` of ``person:<id>``, written by ``PUT /v1/residents/me/language``; none yet means
Chinese).

A guardian's copy of a dependant's notice says whose visit it was (the dependant's masked name), so
the guardian knows it is about grandma, not about them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Literal
from zoneinfo import ZoneInfo

from checkin.platform.context import Context
from checkin.platform.notices import Notice
from checkin.platform.persons import LANG_FIELD
from venues.text import usable

Lang = Literal["zh", "en"]
NOTICE_PATH = "/me#notice-{notice_id}"
"""Where on the phone page a notice opens (the resident's home, scrolled to the notice)."""

SENDER = "【场所码】"
"""The project's own sender mark: a venue name can never contain 【】, so no one else's text can
carry it."""

INSTRUCTION: dict[Lang, dict[str, str]] = {
    "zh": {
        "inform": "请留意自身健康状况，如出现发热、咳嗽等症状请及时就医。",
        "test": "请尽快就近进行一次核酸检测。",
        "isolate": "请立即居家，不要外出，等待社区联系。",
    },
    "en": {
        "inform": "Watch your health; if you have a fever, a cough or other symptoms, see a doctor.",
        "test": "Get a test at the nearest testing site as soon as you can.",
        "isolate": "Go home now, do not go out, and wait for your community to contact you.",
    },
}
"""What each level asks of the exposed: the words the phone page shows beside the notice."""


def _local(instant: str, tz: str, lang: Lang) -> str:
    at = dt.datetime.fromisoformat(instant.replace("Z", "+00:00")).astimezone(ZoneInfo(tz))
    return at.strftime("%m月%d日 %H:%M") if lang == "zh" else at.strftime("%d %b %H:%M")


def venue_label(notice: Notice, lang: Lang) -> str:
    if usable(notice.venue_name):
        return notice.venue_name.strip()
    return f"场所 {notice.venue_id} 号" if lang == "zh" else f"venue no. {notice.venue_id}"


def safe_name(masked: str) -> str:
    """A masked name as a text may carry it: letters and the mask only (a name is free text: a 【 or
    a digit of a web address must not reach an official text), at most 20 characters."""
    return "".join(c if c.isalpha() or c in "*· " else "*" for c in masked.strip())[:20] or "*"


def link(public_base_url: str, notice_id: str) -> str:
    return public_base_url.rstrip("/") + NOTICE_PATH.format(notice_id=notice_id)


def sms_text(notice: Notice, tz: str, public_base_url: str, lang: Lang = "zh") -> str:
    """The text of one notice: venue, window in local time, the level's instruction, the link."""
    venue = venue_label(notice, lang)
    since, until = _local(notice.since, tz, lang), _local(notice.until, tz, lang)
    url = link(public_base_url, notice.notice_id)
    family = safe_name(notice.for_name_masked or "*") if notice.for_person_id is not None else None
    if lang == "en":
        who = f"your family member {family} was" if family else "you were"
        return (
            f"{SENDER}{venue} was an exposure site from {since} to {until} (local time), while {who} "
            f"there. {INSTRUCTION['en'][notice.level]} Details: {url}"
        )
    who = f"您的家人{family}" if family else "您"
    return (
        f"{SENDER}{who}到访的“{venue}”在{since}至{until}被列为风险场所。"
        f"{INSTRUCTION['zh'][notice.level]}详情：{url}"
    )


async def languages_of(ctx: Context, person_ids: Sequence[int]) -> dict[int, Lang]:
    """The language of each person's texts: ``en`` where their record says so, else ``zh``."""
    if not person_ids:
        return {}
    pipe = ctx.redis.pipeline(transaction=False)
    for pid in person_ids:
        pipe.hget(ctx.keys.person(pid), LANG_FIELD)
    out: dict[int, Lang] = {}
    for pid, raw in zip(person_ids, await pipe.execute(), strict=True):
        out[pid] = "en" if raw in (b"en", "en") else "zh"
    return out
