"""Landing Redis data in ClickHouse: the scan sink (streams -> ``scans``) and the venue registry
mirror (registry changes -> ``venues``)."""
