"""venue-checkin: the ingest service, and the platform every service shares.

* :mod:`checkin.platform`: settings, secrets and keyring, the service context and app builder,
  errors and problem+json, auth and API keys, metrics, Redis connections and key names, the
  scan-stream contract, time helpers, the person record. Every service imports it; it imports
  nothing else of the product.
* The ingest rooms, which only the ingest service (``checkin.app``) serves: :mod:`checkin.residents`,
  :mod:`checkin.health`, :mod:`checkin.checkins`, :mod:`checkin.pages`, plus the API-key routes
  and the rate limits. The ingest service never opens ClickHouse.
* :mod:`checkin.cli` and :mod:`checkin.launcher`: the ``checkin`` command and ``checkin up``.

docs/ARCHITECTURE.md describes the rooms and how a check-in travels through them.
"""
