"""The platform: what any service of this shape needs and the domain never mentions by name —
settings, the database layer and migrations, the HTTP edge (body limits, headers, CORS, request
log), rate limits, request parsing, cursors, JSON, logs, the local development database, the
OpenAPI document and its docs pages, and the process lifecycle."""
