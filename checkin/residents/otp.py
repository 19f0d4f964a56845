"""One-time codes by SMS: proof that the caller holds a phone (docs/ARCHITECTURE.md, "Residents
and identity").

``POST /v1/residents/otp {phone}`` makes a challenge: a random 6-digit code, sent to the phone,
kept only as HMAC-SHA256(subkey("otp"), challenge id | code) with the phone's keyed hash, for 5
minutes. A challenge allows 5 attempts; the 5th wrong code locks it. The right code consumes it
(one use). Codes are limited per phone (1 a minute, 10 a day) and per client address
(``CHECKIN_RATE_REGISTER_PER_MIN``).

Redis keys (:class:`~checkin.platform.redis_keys.RedisKeys`): ``otp:challenge:<id>`` hash
(``phone``, ``code``, ``tries``) with the challenge's lifetime; ``otp:phone-minute:<phone hash>``
and ``otp:phone-day:<phone hash>:<day>`` counters.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Annotated

import msgspec

from checkin.platform.context import Context
from checkin.platform.errors import BadInput, DomainError, Gone, TooManyRequests, Unprocessable
from checkin.platform.instants import format_ms, local_day, now_ms
from checkin.platform.persons import PHONE_PATTERN, normalise_phone, phone_hash
from checkin.platform.sms import SmsGateway

OTP_PURPOSE = "otp"
CODE_DIGITS = 6
CODE_PATTERN = f"^[0-9]{{{CODE_DIGITS}}}$"
CHALLENGE_TTL_S = 300
MAX_TRIES = 5
PER_PHONE_DAY = 10
REFUSALS = "checkin_identity_refusals_total"

# KEYS[1] challenge. Counts one attempt; answers {'missing'} | {'locked'} | {'try', phone, code, tries}.
ATTEMPT_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local tries = redis.call('HINCRBY', KEYS[1], 'tries', 1)
if tries > tonumber(ARGV[1]) then return {'locked'} end
local v = redis.call('HMGET', KEYS[1], 'phone', 'code')
return {'try', v[1], v[2], tostring(tries)}
"""


class OtpRequest(msgspec.Struct, forbid_unknown_fields=True):
    phone: Annotated[
        str, msgspec.Meta(examples=["13800138000"], extra_json_schema={"pattern": PHONE_PATTERN})
    ]


class Challenge(msgspec.Struct):
    challenge_id: str
    expires_at: str


def _code_hash(ctx: Context, challenge_id: str, code: str) -> str:
    key = ctx.keyring.subkey(OTP_PURPOSE, min(ctx.keyring.keys))
    return hmac.new(key, f"{challenge_id}|{code}".encode(), hashlib.sha256).hexdigest()


def refused(ctx: Context, reason: str, exc: DomainError) -> DomainError:
    """Count a refusal of the identity routes by reason, and return it to raise."""
    ctx.metrics.inc(REFUSALS, reason=reason)
    exc.extra.setdefault("reason", reason)
    return exc


async def send_code(ctx: Context, gateway: SmsGateway, raw_phone: str) -> Challenge:
    """Make a challenge for a phone and text it the code (limits checked before anything is sent)."""
    phone = normalise_phone(raw_phone)
    ph = phone_hash(ctx.keyring, phone)
    keys = ctx.keys
    now = now_ms()
    minute_key = keys.otp_phone_minute(ph)
    day_key = keys.otp_phone_day(ph, local_day(now, ctx.settings.tz))
    if not await ctx.redis.set(minute_key, 1, nx=True, ex=60):
        retry = max(1, int(await ctx.redis.ttl(minute_key)))
        raise refused(
            ctx,
            "otp_too_soon",
            TooManyRequests(
                f"a code was sent to this phone less than a minute ago; wait {retry} s", retry_after=retry
            ),
        )
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.incr(day_key)
    pipe.expire(day_key, 2 * 86_400)
    today, _ = await pipe.execute()
    if int(today) > PER_PHONE_DAY:
        raise refused(
            ctx,
            "otp_daily_limit",
            TooManyRequests(
                f"at most {PER_PHONE_DAY} codes a day are sent to one phone; try again tomorrow",
                retry_after=3600,
            ),
        )
    challenge_id = secrets.token_urlsafe(16)
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    key = keys.otp_challenge(challenge_id)
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.hset(key, mapping={"phone": ph, "code": _code_hash(ctx, challenge_id, code), "tries": 0})
    pipe.expire(key, CHALLENGE_TTL_S)
    await pipe.execute()
    try:
        await gateway.send(phone, f"【场所码】验证码 {code}，5 分钟内有效，请勿告诉他人。", "otp", otp=code)
    except DomainError:
        await ctx.redis.delete(key, minute_key)  # not sent: the phone may ask again at once
        raise
    return Challenge(challenge_id=challenge_id, expires_at=format_ms(now + CHALLENGE_TTL_S * 1000))


@dataclass(frozen=True)
class Proof:
    """A phone whose possession an OTP has just proved."""

    phone: str


async def prove(ctx: Context, raw_phone: str, challenge_id: str | None, code: str | None) -> Proof:
    """Check the code of a challenge for this phone and consume it; 4xx naming the reason otherwise."""
    phone = normalise_phone(raw_phone)
    if not challenge_id or not code:
        raise refused(
            ctx, "otp_missing", BadInput("challenge_id and otp: ask for a code first, then send it")
        )
    if len(challenge_id) > 64 or not re.fullmatch(CODE_PATTERN, code):
        raise refused(
            ctx, "otp_malformed", BadInput(f"otp: expected the {CODE_DIGITS}-digit code from the SMS")
        )
    key = ctx.keys.otp_challenge(challenge_id)
    reply = await ctx.redis.eval(ATTEMPT_LUA, 1, key, MAX_TRIES)
    state = reply[0].decode()
    if state == "missing":
        raise refused(
            ctx, "otp_expired", Gone("this code has expired or was used already; ask for a new code")
        )
    if state == "locked":
        raise refused(
            ctx,
            "otp_locked",
            TooManyRequests(
                f"{MAX_TRIES} wrong codes: this code is locked; ask for a new code", retry_after=60
            ),
        )
    stored_phone, stored_code, tries = reply[1].decode(), reply[2].decode(), int(reply[3])
    right_code = hmac.compare_digest(stored_code, _code_hash(ctx, challenge_id, code))
    right_phone = hmac.compare_digest(stored_phone, phone_hash(ctx.keyring, phone))
    if not (right_code and right_phone):
        left = MAX_TRIES - tries
        raise refused(
            ctx,
            "otp_wrong",
            Unprocessable(
                "the code is not right for this phone"
                + (f"; {left} attempt(s) left" if left > 0 else "; ask for a new code"),
                attempts_left=max(0, left),
            ),
        )
    if not await ctx.redis.delete(key):  # another request used it at the same moment
        raise refused(ctx, "otp_expired", Gone("this code was used already; ask for a new code"))
    return Proof(phone)
