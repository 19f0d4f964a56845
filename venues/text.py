"""Texts an operator writes that residents and tracers read (docs/ARCHITECTURE.md, "Integrity of the
record").

A venue's name reaches residents in official notices (the exposure SMS, the phone page) and tracers in
every answer. An operator who may write anything there can send a phishing text with the health
authority's voice: "万达广场。【卫健委】补贴发放：请点击 http://… 填写银行卡". So every such text (the
venue's ``name`` and ``address``) is 1..:data:`MAX_CHARS` characters of printable text, and each rule
it breaks is named in the 400 (``reason``):

* ``text_length``: 1..60 characters after trimming spaces;
* ``text_url``: no web address or domain-like word (``http``, ``www``, ``://``, ``t.cn``,
  ``example.com``, an IP address), also when written with full-width letters or an ideographic dot;
* ``text_brackets``: no 【】 or 〖〗 (the sender mark official texts begin with);
* ``text_bidi``: no bidirectional override, embedding or isolate (U+202A..U+202E, U+2066..U+2069,
  U+061C), which make a text read differently from how it is stored;
* ``text_invisible``: no zero-width or other invisible format character (U+200B..U+200F, U+2060..,
  U+FEFF, U+00AD, ...);
* ``text_control``: no control character, line or paragraph separator, private-use or unassigned code
  point.

Letters are compared after NFKC (full-width ``ｈｔｔｐ`` is ``http``, ``︻`` is ``【``).
"""

from __future__ import annotations

import re
import unicodedata

from checkin.platform.errors import BadInput

MAX_CHARS = 60
TEXT_FIELDS = ("name", "address")
"""Venue fields an operator writes that residents and tracers read."""

BIDI = frozenset("\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
BRACKETS = frozenset("【】〖〗")
DOTS = str.maketrans({"。": ".", "｡": ".", "．": ".", "·": "."})
TLDS = (
    "com|net|org|info|biz|top|xyz|site|online|club|shop|vip|app|link|click|live|icu|cc|tv|me|io|ly|co|"
    "cn|hk|mo|tw|tk|ml|ga|cf|gq|to|gl|gd|ws|la|nu|sh|ai|so|us|uk|ru|jp|kr|in|de|fr|gov|edu|mil|int|"
    "work|ink|fun|pub|wang|ren|xin|cloud|store|tech|pro|name|mobi|asia|tel|today|win|bid|loan|date|"
    "download|review|party|trade|science|racing|men|stream|gift|run|red|kim|lol|one|page|dev|ltd|"
    "group|cyou|buzz|monster|rest|bar|bond|cfd|sbs|skin|beauty|hair|quest|space|website|vip|social"
)
URL = re.compile(
    r"://"
    r"|(?<![a-z0-9])(?:https?|ftps?|www)(?![a-z])"
    rf"|(?<![\w-])(?:[^\W_](?:[\w-]{{0,61}}[^\W_])?\.)+(?:{TLDS})(?![a-z0-9-])"
    r"|(?<![0-9.])\d{1,3}(?:\.\d{1,3}){3}(?![0-9])"
)


def problem(text: str, *, required: bool = True) -> tuple[str, str] | None:
    """(rule, explanation) of the first rule ``text`` breaks, or None. An empty text breaks
    ``text_length`` only when ``required``."""
    trimmed = text.strip()
    if not trimmed:
        return ("text_length", f"must not be blank (1 to {MAX_CHARS} characters)") if required else None
    for ch in text:
        if ch in BIDI:
            return "text_bidi", f"must not contain the bidirectional control character U+{ord(ch):04X}"
        category = unicodedata.category(ch)
        if category == "Cf":
            return "text_invisible", f"must not contain the invisible character U+{ord(ch):04X}"
        if category in ("Cc", "Cs", "Co", "Cn", "Zl", "Zp"):
            return "text_control", f"must not contain the control or unprintable character U+{ord(ch):04X}"
    if len(trimmed) > MAX_CHARS:
        return "text_length", f"must be 1 to {MAX_CHARS} characters, got {len(trimmed)}"
    folded = unicodedata.normalize("NFKC", trimmed).casefold()
    if any(ch in BRACKETS for ch in folded):
        return "text_brackets", "must not contain 【】 or 〖〗 (the sender mark of official texts)"
    found = URL.search(folded.translate(DOTS))
    if found:
        return "text_url", f"must not contain a web address or domain name ({found.group(0)!r})"
    return None


def check(field: str, text: str, *, required: bool = True) -> str:
    """The text trimmed; 400 naming the field and the rule it breaks."""
    broken = problem(text, required=required)
    if broken is not None:
        rule, why = broken
        raise BadInput(f"{field} {why} (rule {rule})", reason=rule, field=field)
    return text.strip()


def usable(text: str) -> bool:
    """True when ``text`` keeps every rule (a stored name from before the rules is shown as it is
    only if it does)."""
    return problem(text) is None
