"""The phone check-in page a venue QR code opens, with its static script and style."""
