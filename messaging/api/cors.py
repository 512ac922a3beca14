"""Cross-origin calls from browsers (the platform's web app on its own origin) to the API and the live stream.

Flask-CORS answers preflights and adds the headers, for ``/v1/…`` only: the admin pages, ``/metrics`` and the
health endpoints never answer cross-origin. Only the origins in ``CORS_ORIGINS`` are allowed, each exact (scheme,
host and port) — ``http://localhost:*`` allows any port of that scheme and host, for development; an origin not on
the list gets no CORS headers at all, and with the list empty (the production default) none does. Bearer tokens
only: no cookies, so no ``Access-Control-Allow-Credentials``. Error responses (problem details) carry the headers
too, so a browser can read why a call failed.
"""

from __future__ import annotations

import re

from flask import Flask
from flask_cors import CORS

# What browsers may send and read (SPEC §6: EventSource sends Last-Event-ID when it reconnects).
ALLOWED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
ALLOWED_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID", "X-Request-Id"]
EXPOSED_HEADERS = ["X-Request-Id", "Retry-After", "Idempotent-Replayed", "Location"]
# How long a browser may reuse a preflight's answer (Chromium caps it at two hours).
MAX_AGE_SECONDS = 7200


def origin_patterns(origins: list[str]) -> list[str | re.Pattern[str]]:
    """The configured origins as Flask-CORS matches them: exact strings, and a port of ``*`` as a pattern that
    allows any port of that scheme and host (nothing else: no other wildcard is read)."""
    patterns: list[str | re.Pattern[str]] = []
    for origin in origins:
        origin = origin.rstrip("/")
        if origin.endswith(":*"):
            patterns.append(re.compile(re.escape(origin[:-2]) + r":[0-9]{1,5}\Z"))
        else:
            patterns.append(origin)
    return patterns


def install_cors(app: Flask) -> None:
    """Answer cross-origin calls to ``/v1/…`` from ``CORS_ORIGINS``; nothing when the list is empty."""
    origins = app.config.get("CORS_ORIGINS") or []
    if not origins:
        return
    CORS(
        app,
        resources={r"/v1/.*": {}},
        origins=origin_patterns(origins),
        methods=ALLOWED_METHODS,
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        max_age=MAX_AGE_SECONDS,
        supports_credentials=False,
        always_send=False,
        vary_header=True,
    )
