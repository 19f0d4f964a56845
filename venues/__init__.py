"""The venue registry: venue records in Redis, signed venue codes (sign, verify, rotate), QR codes
and printable posters, CSV import and bulk poster export, and the operator page. Served by the
ingest service; imports only ``checkin.platform`` of the rest of the product."""
