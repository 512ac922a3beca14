"""Abuse limits (Flask-Limiter): per-user limits on posting messages and opening threads, a per-token limit on
event intake.

- **Shared across processes**: counters live in Redis (``REDIS_URL``), so every web process counts against the
  same budget; without Redis (the embedded default, one process) they live in memory.
- **Sliding-window counters** (the ``limits`` library's ``sliding-window-counter``): one Redis round trip per
  limited request, and no burst of twice the limit at a window's edge as a fixed window allows.
- **After authentication**: a limited view checks its limit when it runs, after the blueprint authenticated
  the caller, so an anonymous request is 401 and never spends anyone's budget. The key is the user (every
  token of one user shares a budget) or, for event intake, the token itself (a SHA-256 of it).
- **One budget per kind**: posting in conversations, in property threads and as an admin share the
  ``messages`` budget; creating conversations and opening property threads share ``threads``.
- A refused request is 429 problem details with ``Retry-After`` (seconds until the window lets one through)
  and changes nothing. If Redis is unreachable the limits fall back to per-process memory, logged, rather than
  refusing or failing requests.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from typing import Any, cast

from flask import Flask, current_app, g
from flask_limiter import Limiter

from messaging.auth import bearer_token

LIMITER = "concierge_limiter"
# kind → (setting, default)
LIMITS = {
    "messages": ("RATE_LIMIT_MESSAGES", "60/minute;1000/hour"),
    "threads": ("RATE_LIMIT_THREADS", "20/minute;200/hour"),
    "events": ("RATE_LIMIT_EVENTS", "6000/minute"),
}


def user_key() -> str:
    return f"user:{g.principal.user_id}"


def token_key() -> str:
    return "token:" + hashlib.sha256((bearer_token() or "").encode()).hexdigest()[:32]


def init_limits(app: Flask) -> None:
    """One limiter per application, so apps with different settings in one process keep their own."""
    storage = app.config.get("REDIS_URL") or "memory://"
    limiter = Limiter(
        key_func=user_key,
        storage_uri=storage,
        storage_options={"socket_connect_timeout": 1, "socket_timeout": 1} if storage.startswith("redis") else {},
        strategy="sliding-window-counter",
        # No X-RateLimit-* headers on every response: computing them costs a second Redis round trip per
        # limited request. A refusal still says when to come back (Retry-After, see retry_after()).
        headers_enabled=False,
        swallow_errors=True,
        in_memory_fallback_enabled=True,
        key_prefix="concierge-limits",
        enabled=bool(app.config.get("RATE_LIMITS_ENABLED", True)),
    )
    limiter.init_app(app)
    app.extensions[LIMITER] = limiter


def retry_after() -> int:
    """Seconds until the limit the current request broke lets one through (at least 1)."""
    limiter: Limiter | None = current_app.extensions.get(LIMITER)
    breached = limiter.current_limit if limiter is not None else None
    if breached is None:
        return 1
    window = max(1, int(breached.limit.get_expiry()))  # never more than one window away
    try:
        return min(window, max(1, math.ceil(breached.reset_at - time.time())))
    except Exception:  # noqa: BLE001 - the store may be unreachable; the window's length is an upper bound
        return window


# The limited views (endpoint → kind); a new creating route belongs here too.
LIMITED_ENDPOINTS = {
    "conversations.post_message": "messages",
    "property_threads.reply_in_property_thread": "messages",
    "admin.reply": "messages",
    "conversations.create_conversation": "threads",
    "property_threads.open_property_thread": "threads",
    "events.post_event": "events",
}


def apply_limits(app: Flask) -> None:
    """Wrap the limited views with their limits (after the blueprints are registered). Flask-Limiter checks a
    decorated view's limits when the view runs, i.e. after the blueprint has authenticated the caller."""
    limiter: Limiter = app.extensions[LIMITER]
    for endpoint, kind in LIMITED_ENDPOINTS.items():
        setting, default = LIMITS[kind]
        key = token_key if kind == "events" else user_key
        limit = limiter.limit(
            _limit_value(setting, default), key_func=key, scope=kind,
            error_message=f"Too many requests of this kind ({kind}); slow down.",
        )
        app.view_functions[endpoint] = cast(Any, limit(app.view_functions[endpoint]))


def _limit_value(setting: str, default: str) -> Callable[[], str]:
    def value() -> str:
        return str(current_app.config.get(setting) or default)

    return value
