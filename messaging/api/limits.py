"""Abuse limits: per-user limits on posting messages and opening threads, a per-token limit on event intake.

Built on the ``limits`` library (the counters and algorithms Flask-Limiter uses), called directly from the
limited views, so routes without a limit pay nothing and a limited one pays its counters alone.

- **Shared across processes**: counters live in Redis (``REDIS_URL``, keys under ``REDIS_KEY_PREFIX``), so every
  web process counts against the same budget.
- **Sliding-window counters** (``limits``' ``SlidingWindowCounterRateLimiter``): one Redis round trip per limit
  of a limited request, and no burst of twice the limit at a window's edge as a fixed window allows.
- **After authentication**: a limited view counts when it runs, after the blueprint authenticated the caller,
  so an anonymous request is 401 and never spends anyone's budget. The key is the user (every token of one
  user shares a budget) or, for event intake, the token itself (a SHA-256 of it).
- **One budget per kind**: every way a user posts a message — in a conversation, in a property thread, as an
  admin from the API or from the admin pages (keyed by the signed-in admin) — spends the ``messages`` budget;
  creating conversations and opening property threads share ``threads``. An endpoint may count against several
  kinds (:data:`LIMITED_ENDPOINTS`), in order: opening a property thread always posts its first message, so
  every call counts against ``threads`` and ``messages``, whether it creates the thread (201) or reuses it
  (200) — which it is cannot be known before the view writes. A request refused by a later kind (or a later
  limit of one kind) has still spent the earlier ones.
- A refused request is 429 problem details with ``Retry-After`` (seconds until the window lets one through;
  on the admin pages, their HTML error page with the same status and header) and changes nothing. If Redis
  is unreachable the limits fall back to per-process memory for 30 seconds at a time, logged, rather than
  refusing or failing requests.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, cast

from flask import Flask, current_app, g
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from messaging.api.auth import bearer_token
from messaging.errors import ProblemError

log = logging.getLogger(__name__)

LIMITER = "concierge_limits"
KEY_PREFIX = "concierge-limits"
FALLBACK_SECONDS = 30.0
# kind → (setting, default)
LIMITS = {
    "messages": ("RATE_LIMIT_MESSAGES", "60/minute;1000/hour"),
    "threads": ("RATE_LIMIT_THREADS", "20/minute;200/hour"),
    "events": ("RATE_LIMIT_EVENTS", "6000/minute"),
}

# The limited views (endpoint → the kinds it counts against, in order); a new creating route belongs here too.
LIMITED_ENDPOINTS: dict[str, tuple[str, ...]] = {
    "conversations.post_message": ("messages",),
    "property_threads.reply_in_property_thread": ("messages",),
    "admin.reply": ("messages",),
    "admin_pages.reply": ("messages",),
    "conversations.create_conversation": ("threads",),
    "property_threads.open_property_thread": ("threads", "messages"),
    "events.post_event": ("events",),
}


class TooManyRequests(ProblemError):
    status, title, slug = 429, "Too many requests", "rate-limited"


def user_key() -> str:
    return f"user:{g.principal.user_id}"


def token_key() -> str:
    return token_key_of(bearer_token() or "")


def token_key_of(token: str) -> str:
    """The key a service token's requests are counted under (a digest: the token itself is never stored)."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:32]


class AbuseLimits:
    """The limits of one application (its settings, its store)."""

    def __init__(self, config: Any) -> None:
        key_prefix = (config.get("REDIS_KEY_PREFIX") or "") + KEY_PREFIX
        storage = storage_from_string(config["REDIS_URL"], key_prefix=key_prefix, socket_connect_timeout=1,
                                      socket_timeout=1)
        self.shared = SlidingWindowCounterRateLimiter(storage)
        self.local = SlidingWindowCounterRateLimiter(MemoryStorage())
        self.items: dict[str, list[RateLimitItem]] = {
            kind: parse_many(str(config.get(setting) or default)) for kind, (setting, default) in LIMITS.items()
        }
        self._shared_down_until = 0.0

    def count(self, kind: str, key: str) -> None:
        """Count one request of ``kind`` for ``key`` against each of its limits; 429 when one is exhausted."""
        for item in self.items[kind]:
            limiter = self._limiter()
            try:
                allowed = limiter.hit(item, kind, key)
            except Exception as exc:  # noqa: BLE001 - the store is unreachable: count in this process meanwhile
                log.warning("abuse limits: store unreachable (%s); counting in this process for %.0f s",
                            exc, FALLBACK_SECONDS)
                self._shared_down_until = time.monotonic() + FALLBACK_SECONDS
                limiter = self.local
                allowed = limiter.hit(item, kind, key)
            if not allowed:
                raise TooManyRequests(
                    f"Too many requests of this kind ({kind}); slow down.",
                    headers={"Retry-After": str(self._retry_after(limiter, item, kind, key))},
                )

    def count_request(self, endpoint: str, key: str) -> None:
        """Count one request to a limited ``endpoint`` for ``key`` against each of its kinds
        (:data:`LIMITED_ENDPOINTS`); 429 at the first one exhausted."""
        for kind in LIMITED_ENDPOINTS[endpoint]:
            self.count(kind, key)

    def _limiter(self) -> SlidingWindowCounterRateLimiter:
        return self.local if time.monotonic() < self._shared_down_until else self.shared

    @staticmethod
    def _retry_after(limiter: SlidingWindowCounterRateLimiter, item: RateLimitItem, kind: str, key: str) -> int:
        """Seconds until the window lets one through: at least 1, at most the window's length."""
        window = max(1, int(item.get_expiry()))
        try:
            reset_at = limiter.get_window_stats(item, kind, key).reset_time
            return min(window, max(1, math.ceil(reset_at - time.time())))
        except Exception:  # noqa: BLE001 - the store may have gone meanwhile; the window's length is an upper bound
            return window


def init_limits(app: Flask) -> None:
    app.extensions[LIMITER] = AbuseLimits(app.config)


def apply_limits(app: Flask) -> None:
    """Wrap the limited views (after the blueprints are registered): each counts when it runs, i.e. after the
    blueprint has authenticated the caller (``g.principal``: the bearer token's, or the admin pages' signed-in
    admin) and before the view writes. Nothing is wrapped when ``RATE_LIMITS_ENABLED`` is off."""
    if not app.config.get("RATE_LIMITS_ENABLED", True):
        return
    for endpoint in LIMITED_ENDPOINTS:
        app.view_functions[endpoint] = _limited(app.view_functions[endpoint], endpoint)


def _limited(view: Callable[..., Any], endpoint: str) -> Callable[..., Any]:
    key = token_key if "events" in LIMITED_ENDPOINTS[endpoint] else user_key

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        cast(AbuseLimits, current_app.extensions[LIMITER]).count_request(endpoint, key())
        return view(*args, **kwargs)

    return wrapper
