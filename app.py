"""Application factory: configuration, extensions, blueprints, error handlers and CLI commands.

``celery_app`` (built on first use) is what ``celery -A app.celery_app worker`` runs.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import orjson
from celery import Celery
from flask import Response, redirect, request
from flask_openapi3 import Info, OpenAPI

from concierge import cli as concierge_cli
from concierge import worker_metrics
from concierge.admin.pages import init_admin_pages
from concierge.api import admin as admin_api
from concierge.api import events as events_api
from concierge.api import records as records_api
from messaging import cli as messaging_cli
from messaging.api import conversations as conversations_api
from messaging.api import deadline
from messaging.api import me as me_api
from messaging.api import property_threads as property_threads_api
from messaging.api import stream as stream_api
from messaging.api.cors import install_cors
from messaging.api.document import finish_document
from messaging.api.health import bp as health_bp
from messaging.api.http import ApiRequest, install_request_hooks, json_response
from messaging.api.limits import apply_limits, init_limits
from messaging.config import celery_settings, load_settings
from messaging.errors import register_error_handlers, validation_problem
from messaging.live.bus import install_live_updates
from messaging.queue import celery_init_app
from messaging.store.db import db

# GET /: where a person (or a client) goes next.
HOME_LINKS = {"api": "/v1", "docs": "/docs", "openapi": "/openapi.json", "admin": "/admin/", "health": "/healthz"}
HOME_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Concierge messaging API</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem">
<h1>Concierge messaging API</h1>
<p>Conversations between travelers and hosts, live updates, and the concierge bot.</p>
<ul>
<li><a href="/docs">API documentation</a> (<a href="/openapi.json">OpenAPI document</a>)</li>
<li><a href="/admin/">Admin pages</a>: review the concierge's transcripts and events</li>
<li><a href="/healthz">Health</a> and <a href="/readyz">readiness</a></li>
</ul>
<p>The API is under <code>/v1</code> and takes a bearer token.</p>
</body></html>
"""
SECURITY_SCHEMES = {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}


class ConciergeAPI(OpenAPI):
    """flask-openapi3's app, whose generated document also lists the problem-details errors, and whose requests
    keep the JSON body the application parsed (:class:`messaging.api.http.ApiRequest`)."""

    request_class = ApiRequest

    def generate_spec_json(self) -> None:
        super().generate_spec_json()
        finish_document(self.spec_json)


def create_app(config: dict[str, Any] | None = None) -> OpenAPI:
    """The application, from the environment's settings (README, "Settings") updated with ``config``.

    Raises RuntimeError when a required setting is missing (``DATABASE_URL``, a PostgreSQL URL; ``REDIS_URL``) or
    refused (the default JWT secret in production).
    """
    app = ConciergeAPI(
        __name__,
        info=Info(title="Concierge messaging API", version="1.0.0"),
        security_schemes=SECURITY_SCHEMES,  # type: ignore[arg-type]
        validation_error_status=422,
        validation_error_callback=validation_problem,
        doc_prefix="/docs",
        doc_url="/openapi.json",
    )
    app.config.update(load_settings())
    if config:
        app.config.update(config)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if not str(app.config.get("DATABASE_URL") or "").startswith("postgresql"):
        raise RuntimeError("DATABASE_URL must be set to a PostgreSQL URL (postgresql://user@host:5432/name); "
                           "`make run` starts a private server and sets it")
    if not app.config.get("REDIS_URL"):
        raise RuntimeError("REDIS_URL must be set: Celery's broker, the live updates and the abuse limits live in "
                           "Redis (`make run` starts a private one)")
    if "CELERY" not in (config or {}):
        # Celery's broker follows REDIS_URL and REDIS_KEY_PREFIX as given here, not only as the environment had them.
        app.config["CELERY"] = celery_settings(
            app.config["REDIS_URL"], app.config.get("REDIS_KEY_PREFIX") or "", app.config["CELERY_VISIBILITY_TIMEOUT"]
        )
    if app.config["APP_ENV"] == "production" and app.config.get("JWT_SECRET_IS_DEFAULT"):
        raise RuntimeError("JWT_SECRET or JWT_PUBLIC_KEY must be set when APP_ENV=production")
    logging.basicConfig(level=app.config.get("LOG_LEVEL", "INFO"))

    db.init_app(app)
    install_live_updates(app)
    celery_init_app(app)
    worker_metrics.install(app)  # the Celery worker's exporter, started when a worker is ready
    register_error_handlers(app)
    init_limits(app)
    _register_blueprints(app)
    install_request_hooks(app)
    install_cors(app)
    apply_limits(app)
    _register_cli(app)
    deadline.install(app)  # last: it wraps the finished application
    return app


def _register_blueprints(app: OpenAPI) -> None:
    app.register_blueprint(health_bp)
    for module in (me_api, conversations_api, property_threads_api, records_api, events_api, admin_api):
        app.register_api(module.bp)
    app.register_api(stream_api.bp)
    init_admin_pages(app)

    @app.get("/openapi.json", doc_ui=False)
    def openapi_document() -> Response:
        return Response(orjson.dumps(app.api_doc), content_type="application/json")

    @app.get("/", doc_ui=False)
    def home() -> Response:
        """Where to go from here: a small page for a browser, the same links as JSON for anything else."""
        if request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html":
            return Response(HOME_PAGE, content_type="text/html; charset=utf-8")
        return json_response({"name": "Concierge messaging API", "links": HOME_LINKS})

    @app.get("/docs", doc_ui=False, strict_slashes=True)
    def docs() -> Any:
        return redirect("/docs/swagger", code=302)


def _register_cli(app: OpenAPI) -> None:
    messaging_cli.register_commands(app)
    concierge_cli.register_commands(app)


@functools.cache
def _celery_app() -> Celery:
    return create_app().extensions["celery"]  # type: ignore[no-any-return]


def __getattr__(name: str) -> Any:
    """``app.celery_app``: the Celery app of an application built from the environment, on first use rather than
    at import, so that importing this module needs no settings."""
    if name == "celery_app":
        return _celery_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
