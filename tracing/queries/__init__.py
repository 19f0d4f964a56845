"""Read-only questions to the store, as plain functions: timelines, contacts (depth 1 and 2),
exposure screening, statistics and the command-centre report."""
