"""The tracing answers: what a trace, source-tracing or person-lookup question is answered with, in one
place per area (visits, contacts, exposures, sources, lookup). Each answer runs the query, writes the
audit row, binds the persons it names for contact details and masks their names; it knows nothing of
HTTP. The routes in :mod:`tracing.api` parse the request, call the answer and return it."""
