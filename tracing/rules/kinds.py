"""The alert kinds, and which of them the rule engine raises (``CHECKIN_RULES_ENABLED``)."""

from __future__ import annotations

from checkin.platform.settings import Settings, SettingsError

RULE_KINDS = (
    "red_code_entry",
    "yellow_code_entry",
    "test_expired_entry",
    "watchlist_entry",
    "exposure_site_visit",
    "capacity_exceeded",
    "impossible_travel",
    "remote_scan",
)
"""Alert kinds the rule engine raises from scans (``CHECKIN_RULES_ENABLED`` picks among them)."""
ALERT_KINDS = (*RULE_KINDS, "bulk_read")
"""Every alert kind: the rule engine's and ``bulk_read`` (a key reached its hourly contact-details
budget; raised by the tracing API at the city level)."""

ALL = "all"
"""``CHECKIN_RULES_ENABLED=all`` (the default): every rule kind."""


def enabled_kinds(settings: Settings) -> frozenset[str]:
    """The rule kinds ``CHECKIN_RULES_ENABLED`` names; an unknown one is a :class:`SettingsError`."""
    names = [r.strip() for r in settings.rules_enabled.split(",") if r.strip()]
    if ALL in names:
        return frozenset(RULE_KINDS)
    unknown = set(names) - set(RULE_KINDS)
    if unknown:
        raise SettingsError(
            f"CHECKIN_RULES_ENABLED: unknown rule(s) {', '.join(sorted(unknown))}; "
            f"known: {ALL}, {', '.join(RULE_KINDS)}"
        )
    return frozenset(names)
