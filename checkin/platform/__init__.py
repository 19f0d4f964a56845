"""What every service shares, and nothing else: settings, secrets and keyring, the service context
and app builder, errors and problem+json, auth and API keys, metrics, Redis connections and key
names, the scan-stream contract, time helpers and the person record.

The platform imports nothing of the rest of the product (``tests/test_layout.py`` checks it), so
ingest, tracing and venues can all depend on it.
"""
