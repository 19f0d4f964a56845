"""The phone's home: the resident's health code and their family's (docs/ARCHITECTURE.md, "The phone
page").

``GET /v1/residents/me`` answers what 健康码 apps put on their first screen, for the resident and
each person they may check in (their active companions, the ``cmp`` list of their hot state): the
masked name, the colour with the health authority's reason and since when, the last negative test
(none when a positive test was sampled after it), the open stay if there is one and the number of
unread exposure notices; for the resident also how many guardian links wait for their confirmation.

On a single Redis node it is one call over the lean hot-path connection
(:mod:`checkin.platform.hot_redis`; redis-py's client costs more CPU per command than the whole
answer): ``home.lua`` reads the resident's hot state, notices, kept stays and pending guardians, then
the same for each dependant and the name of each open stay's venue. The token's version is compared
with the one read there, so authentication costs no call of its own. On a Redis Cluster the same
reads go in pipelines (the keys lie in several slots): the resident's, the dependants', the venues'.
An open stay comes from the person's recent stays kept beside the check-in script
(checkin/checkins/stays.lua: the string ``person-stays``, its entries oldest first): the newest stay
that has begun and whose end, as the one-place-at-a-time rule has set it, is still ahead.

``PUT /v1/residents/me/language`` remembers the page's language on the person's record (field
``lang``), so the texts the tracing service sends them are in that language.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import resources
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, get, put
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send

from checkin.platform import auth
from checkin.platform.auth import Principal, requires_role
from checkin.platform.context import Context
from checkin.platform.hot_redis import hot_of, run_commands
from checkin.platform.instants import format_ms, now_ms
from checkin.platform.persons import LANG_FIELD
from checkin.platform.service import Part

TAGS = ["residents"]
RESIDENT = [requires_role("resident")]
_UNREAD = b'"acked_at"'
_encoder = msgspec.json.Encoder()
"""An acknowledged notice carries this key (an unread one leaves it out)."""


class OpenStay(msgspec.Struct):
    checkin_id: Annotated[str, msgspec.Meta(examples=["0023fa91c04be7d5512ae0f"])]
    venue_id: int
    venue_name: str
    at: Annotated[str, msgspec.Meta(examples=["2026-03-15T09:12:44.218Z"])]
    """When the stay began."""
    ends_at: Annotated[str, msgspec.Meta(examples=["2026-03-15T10:12:44.218Z"])]
    """When it ends as known now (the venue's dwell, unless a check-out or a next stay ends it)."""


class HealthCode(msgspec.Struct, kw_only=True):
    person_id: int
    name_masked: Annotated[str, msgspec.Meta(examples=["张*丰"])]
    status: Annotated[Literal["green", "yellow", "red"], msgspec.Meta(examples=["green"])]
    reason: Annotated[str, msgspec.Meta(examples=[""])]
    """The health authority's reason for the colour (empty: none given)."""
    since: Annotated[str | None, msgspec.Meta(examples=["2026-03-10T02:00:00.000Z"])]
    """When the colour was set (null: never set, the default colour)."""
    last_negative_test_at: Annotated[str | None, msgspec.Meta(examples=["2026-03-14T08:30:00.000Z"])]
    """The latest negative test, unless a positive one was sampled after it."""
    open_stay: OpenStay | None
    unread_notices: int


class Home(HealthCode, kw_only=True):
    dependants: list[HealthCode]
    """The persons you may check in (confirmed links), in person id order."""
    pending_guardians: int
    """Guardian links that wait for your confirmation (``GET /v1/residents/me/guardians``)."""
    evaluated_at: str


class LanguageIn(msgspec.Struct, forbid_unknown_fields=True):
    lang: Annotated[Literal["zh-CN", "en"], msgspec.Meta(examples=["en"])]


class Language(msgspec.Struct):
    lang: Literal["zh-CN", "en"]


_STATE_FIELDS = ("st", "sr", "su", "nt", "pt", "nm", "cmp", "tv")
_SCRIPT = (resources.files("checkin.residents") / "home.lua").read_bytes()
_SCRIPT_SHA = hashlib.sha1(_SCRIPT).hexdigest().encode()  # noqa: S324 - the name Redis gives a script


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw or "")


def _stay_keys(ctx: Context, person_id: int) -> list[str]:
    """Every copy of the person's recent stays (one per stream shard in cluster mode)."""
    if not ctx.keys.cluster:
        return [ctx.keys.stays(person_id, 0)]
    return [ctx.keys.stays(person_id, n) for n in range(ctx.keys.shards)]


def _person_commands(ctx: Context, person_id: int) -> list[tuple[Any, ...]]:
    """The reads of one person: hot state, kept stays (each copy), notices."""
    commands: list[tuple[Any, ...]] = [("HMGET", ctx.keys.pstate_copies(person_id)[0], *_STATE_FIELDS)]
    commands += [("GET", key) for key in _stay_keys(ctx, person_id)]
    commands.append(("HVALS", ctx.keys.notices(person_id)))
    return commands


def _stays(texts: Sequence[Any]) -> list[tuple[int, int, str, int]]:
    """(start, end, check-in id, venue id) of the person's kept stays: the entries of the string,
    ``start|base end|kind|version|end|...`` (';'-separated), where ``...`` is the stay's scan line
    (version, check-in id, person, venue, ... tab-separated) or ``check-in id|venue id|tail``."""
    out: list[tuple[int, int, str, int]] = []
    for text in texts:
        for entry in _text(text).split(";") if text else ():
            parts = entry.split("|", 5)
            try:
                start, end, rest = int(parts[0]), int(parts[4]), parts[5]
                cid, sep, after = rest.partition("|")
                if sep and "\t" not in cid:  # check-in id|venue id|tail
                    out.append((start, end, cid, int(after.partition("|")[0])))
                else:  # the scan line: version, check-in id, person, venue, ...
                    line = rest.split("\t", 4)
                    out.append((start, end, line[1], int(line[3])))
            except (ValueError, IndexError):
                continue
    return out


def _open_stay(stays: Sequence[tuple[int, int, str, int]], now: int) -> tuple[str, int, int, int] | None:
    """(check-in id, venue id, start, end) of the newest stay that has begun and not ended."""
    found: tuple[str, int, int, int] | None = None
    for start, end, checkin_id, venue_id in stays:
        if start > now or (found is not None and start <= found[2]):
            continue
        if end > now:
            found = (checkin_id, venue_id, start, end)
        elif found is None:
            found = ("", 0, start, 0)  # the newest stay that began has ended: none is open
    return found if found and found[0] else None


class _Read:
    """One person as read: hot state, unread notices, open stay (the venue's name may come later)."""

    def __init__(self, person_id: int, state: Sequence[Any], unread: int, unknown: str) -> None:
        st, sr, su, nt, pt, nm, cmp, tv = (_text(v) if v is not None else None for v in state[:8])
        self.person_id = person_id
        self.status = st if st in ("green", "yellow", "red") else unknown
        self.reason = sr or ""
        self.since = format_ms(int(su)) if su and su.isdigit() and int(su) > 0 else None
        negative = int(nt) if nt and nt.isdigit() else 0
        positive = int(pt) if pt and pt.isdigit() else 0
        self.negative = format_ms(negative) if negative > 0 and negative > positive else None
        self.name = nm or "*"
        self.companions = sorted({int(x) for x in (cmp or "").split(",") if x.isdigit()})
        self.token_version = int(tv) if tv and tv.isdigit() else 0
        self.unread = unread
        self.stay: tuple[str, int, int, int] | None = None

    @classmethod
    def of_pipeline(cls, person_id: int, replies: Sequence[Any], now: int, unknown: str) -> _Read:
        """From the replies of :func:`_person_commands`."""
        read = cls(person_id, replies[0], sum(1 for v in replies[-1] or () if _UNREAD not in v), unknown)
        read.stay = _open_stay(_stays(replies[1:-1]), now)
        return read

    @classmethod
    def of_script(cls, row: Sequence[Any], unknown: str, names: dict[int, str]) -> _Read:
        """From one person of ``home.lua``'s answer (the venue's name goes into ``names``)."""
        pid, state, unread = int(row[0]), [*row[1:7], None, row[7]], int(row[8])
        read = cls(pid, state, unread, unknown)
        if row[9]:
            read.stay = (_text(row[9]), int(row[10]), int(row[11]), int(row[12]))
            if row[13]:
                names[int(row[10])] = _text(row[13])
        return read

    def code(self, venue_names: dict[int, str]) -> HealthCode:
        stay = None
        if self.stay is not None:
            checkin_id, venue_id, start, end = self.stay
            stay = OpenStay(
                checkin_id, venue_id, venue_names.get(venue_id, ""), format_ms(start), format_ms(end)
            )
        return HealthCode(
            person_id=self.person_id,
            name_masked=self.name,
            status=self.status,  # type: ignore[arg-type]
            reason=self.reason,
            since=self.since,
            last_negative_test_at=self.negative,
            open_stay=stay,
            unread_notices=self.unread,
        )


async def home(ctx: Context, principal: Principal, one_call: bool = True) -> Home:
    """The resident's health code and their dependants'; 401 for a revoked token. ``one_call``: by
    the script on a single node (False reads with pipelines, as on a Redis Cluster)."""
    pid = principal.person_id or 0
    now = now_ms()
    unknown = ctx.settings.unknown_status
    hot = hot_of(ctx) if one_call else None
    if hot is not None:
        keys = ctx.keys
        answer = await hot.evalsha(
            _SCRIPT,
            _SCRIPT_SHA,
            [],
            [
                pid,
                now,
                keys.pstate_prefix(0),
                keys.stays_prefix(0),
                keys.person(0)[:-1],
                keys.venue_prefix(0).split("{", 1)[0],
                keys.shards,
            ],
        )
        names: dict[int, str] = {}
        me = _Read.of_script(answer[1], unknown, names)
        if principal.token_version < me.token_version:
            raise auth.revoked()
        return _answer(
            me, [_Read.of_script(row, unknown, names) for row in answer[2:]], int(answer[0]), names, now
        )
    commands = _person_commands(ctx, pid)
    replies = await run_commands(ctx, [*commands, ("SCARD", ctx.keys.pending_guardians(pid))])
    me = _Read.of_pipeline(pid, replies[:-1], now, unknown)
    if principal.token_version < me.token_version:
        raise auth.revoked()
    pending = int(replies[-1] or 0)
    dependants: list[_Read] = []
    if me.companions:
        batches = [_person_commands(ctx, dep) for dep in me.companions]
        replies = await run_commands(ctx, [c for batch in batches for c in batch])
        at = 0
        for dep, batch in zip(me.companions, batches, strict=True):
            dependants.append(_Read.of_pipeline(dep, replies[at : at + len(batch)], now, unknown))
            at += len(batch)
    wanted = sorted({r.stay[1] for r in (me, *dependants) if r.stay})
    names = {}
    if wanted:
        found = await run_commands(ctx, [("HGET", ctx.keys.venue(vid), "name") for vid in wanted])
        names = {vid: _text(n) for vid, n in zip(wanted, found, strict=True) if n}
    return _answer(me, dependants, pending, names, now)


def _answer(me: _Read, dependants: Sequence[_Read], pending: int, names: dict[int, str], now: int) -> Home:
    own = me.code(names)
    return Home(
        **msgspec.structs.asdict(own),
        dependants=[d.code(names) for d in dependants],
        pending_guardians=pending,
        evaluated_at=format_ms(now),
    )


def _front(app: ASGIApp) -> ASGIApp:
    """The route answered from raw ASGI, as the check-in's hot routes are
    (:mod:`checkin.checkins.hot_route`): the page asks it every 30 s on every phone, and Litestar's
    per-request machinery costs more CPU than the answer. Errors raised here become problem+json
    through the app's exception handlers, like any route's; the handler below declares the route."""

    async def front(scope: Scope, receive: Receive, send: Send) -> None:
        ctx: Context = scope["app"].state["ctx"]
        authorization = next(
            (bytes(v).decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None
        )
        # the token's version is compared with the one the script reads
        principal = await auth.authenticate(ctx, authorization, check_version=False)
        principal.require("resident")
        body = _encoder.encode(await home(ctx, principal))
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
        await send(start)
        done: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
        await send(done)

    return front


@get(
    "/v1/residents/me",
    summary="Your health code (resident): colour, reason and since when, last negative test, open "
    "stay, unread notices; the same for each person you may check in",
    tags=TAGS,
    security=[{"bearer": []}],
    middleware=[_front],
    # the token's version is compared with the one the script reads
    guards=[requires_role("resident", check_version=False)],
)
async def get_home(ctx: Context, request: Request[Any, Any, Any]) -> Home:
    """Declares the route (answered by :func:`_front`)."""
    return await home(ctx, await auth.request_principal(request, check_version=False))


@put(
    "/v1/residents/me/language",
    summary="Remember the phone page's language (resident): the texts you are sent use it",
    tags=TAGS,
    guards=RESIDENT,
)
async def put_language(data: LanguageIn, ctx: Context, principal: Principal) -> Language:
    await ctx.redis.hset(
        ctx.keys.person(principal.person_id or 0), LANG_FIELD, "en" if data.lang == "en" else "zh"
    )
    return Language(lang=data.lang)


PART = Part("home", routes=[get_home, put_language])
