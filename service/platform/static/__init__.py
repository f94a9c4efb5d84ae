"""Files the service serves itself: the docs pages, their scripts and the vendored ReDoc
(see redoc.README.md). A package so that installs carry them as package data."""
