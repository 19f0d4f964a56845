"""The alert kinds, and which of them the rule engine raises (``CHECKIN_RULES_ENABLED``)."""

from __future__ import annotations

from checkin.platform.settings import Settings, chosen_names

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


def enabled_kinds(settings: Settings) -> frozenset[str]:
    """The rule kinds ``CHECKIN_RULES_ENABLED`` names (``all`` by default); an unknown one is a
    :class:`SettingsError`."""
    return frozenset(chosen_names("CHECKIN_RULES_ENABLED", settings.rules_enabled, RULE_KINDS, "rule"))
