"""OpenAPI document and the interactive docs (sanic-ext)."""

from __future__ import annotations

from sanic import Sanic


def setup_docs(app: Sanic) -> None:
    app.config.OAS_URL_PREFIX = "/docs"
    app.config.OAS_UI_DEFAULT = "swagger"
    app.config.OAS_UI_REDOC = True
    app.config.OAS_UI_SWAGGER = True
    app.config.OAS_IGNORE_HEAD = True
    app.config.OAS_IGNORE_OPTIONS = True
    app.config.OAS_AUTODOC = False
    app.config.API_TITLE = "Achievement Journal API"
    app.config.API_VERSION = "1.0.0"
    app.config.API_DESCRIPTION = "Students record achievements; curators verify them; admins run the service."
    app.ext.openapi.add_security_scheme("bearer", "http", scheme="bearer", bearer_format="JWT")
