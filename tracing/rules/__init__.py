"""The rule engine: pure rule checks, the engine that feeds them from the scan streams, alerts
(model, dedupe, publishing to the live stream) and the writer of their ClickHouse history."""
