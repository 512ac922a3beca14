"""Settings read from the environment, with the embedded defaults used when nothing is set."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# make run's private servers and beat schedule live here (INSTANCE_DIR overrides: the runner's own test).
INSTANCE_DIR = Path(os.environ.get("INSTANCE_DIR") or Path(__file__).resolve().parent.parent / "instance")

# Used only when JWT_SECRET / JWT_PUBLIC_KEY are both unset, so `make run` works out of the box.
# It is printed at start-up and refused when APP_ENV=production.
DEV_JWT_SECRET = "dev-only-secret-change-me-0123456789abcdef"


# Periodic work (SPEC §5.3 and §5.5); every task is idempotent, so overlapping runs are harmless.
BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    # Every 5 s: a task the broker lost (Redis emptied) is sent again at most OUTBOX_REDISPATCH_SECONDS + 5 s
    # after it was sent, so within 30 s of Redis answering again with the default of 15 s.
    "sweep-outbox": {"task": "outbox.sweep", "schedule": 5.0},
    "sweep-stale-events": {"task": "concierge.sweep_stale_events", "schedule": 60.0},
    "check-in-reminders": {"task": "concierge.schedule_check_in_reminders", "schedule": 300.0},
    "offer-expiry-reminders": {"task": "concierge.schedule_offer_expiry_reminders", "schedule": 300.0},
    "expire-requests-to-book": {"task": "concierge.expire_requests_to_book", "schedule": 300.0},
    "nudge-waiting-hosts": {"task": "concierge.nudge_waiting_hosts", "schedule": 600.0},
    # A hand-over no person answered within 30 minutes: told within a minute after (decision 0014).
    "handover-alerts": {"task": "concierge.alert_unanswered_handovers", "schedule": 60.0},
    "unread-webhooks": {"task": "concierge.schedule_unread_webhooks", "schedule": 30.0},
    # Idempotency-Key claims older than 24 h (messaging/api/idempotency.py); without it the table only grows.
    "purge-idempotency-keys": {"task": "idempotency.purge", "schedule": 3600.0},
}


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def load_settings() -> dict[str, Any]:
    """Build the Flask config mapping from environment variables (see README, "Settings")."""
    app_env = os.environ.get("APP_ENV", "development")
    # No default: `make run` (messaging.embedded) starts a private PostgreSQL and sets it; create_app refuses none.
    database_url = os.environ.get("DATABASE_URL") or None
    if database_url and (database_url.startswith("postgresql://") or database_url.startswith("postgres://")):
        database_url = "postgresql+psycopg://" + database_url.split("://", 1)[1]
    redis_url = os.environ.get("REDIS_URL") or None
    key_prefix = os.environ.get("REDIS_KEY_PREFIX", "")
    visibility_timeout = _int("CELERY_VISIBILITY_TIMEOUT", 300)
    public_key = os.environ.get("JWT_PUBLIC_KEY") or None
    secret = os.environ.get("JWT_SECRET") or (None if public_key else DEV_JWT_SECRET)
    return {
        "APP_ENV": app_env,
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO").upper(),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        # Starts every Redis key the service writes (live streams, abuse limits, Celery's queues): deployments
        # sharing one Redis never meet.
        "REDIS_KEY_PREFIX": key_prefix,
        "CELERY_VISIBILITY_TIMEOUT": visibility_timeout,
        "JWT_SECRET": secret,
        "JWT_SECRET_IS_DEFAULT": secret == DEV_JWT_SECRET,
        "JWT_PUBLIC_KEY": public_key,
        "JWT_ISSUER": os.environ.get("JWT_ISSUER") or None,
        "JWT_AUDIENCE": os.environ.get("JWT_AUDIENCE") or None,
        "PORT": _int("PORT", 8000),
        "MAX_CONTENT_LENGTH": _int("MAX_BODY_BYTES", 64 * 1024),
        "DB_POOL_SIZE": _int("DB_POOL_SIZE", 10),
        "DB_POOL_TIMEOUT": _seconds("DB_POOL_TIMEOUT", 3),
        # Bounds on every PostgreSQL connection of the web, worker and beat processes (messaging.store.db.Timeouts);
        # 0 turns one off.
        "DB_CONNECT_TIMEOUT": _seconds("DB_CONNECT_TIMEOUT", 3),
        "DB_STATEMENT_TIMEOUT": _seconds("DB_STATEMENT_TIMEOUT", 5),
        "DB_LOCK_TIMEOUT": _seconds("DB_LOCK_TIMEOUT", 2),
        "DB_KEEPALIVES_IDLE": _int("DB_KEEPALIVES_IDLE", 30),
        "DB_KEEPALIVES_INTERVAL": _int("DB_KEEPALIVES_INTERVAL", 10),
        "DB_KEEPALIVES_COUNT": _int("DB_KEEPALIVES_COUNT", 3),
        # The web tier's bound on one request, a stuck database included (messaging.api.deadline).
        "REQUEST_TIMEOUT": _seconds("REQUEST_TIMEOUT", 6),
        # Signs the admin pages' session (CSRF tokens, messages); derived from JWT_SECRET when unset.
        "SECRET_KEY": os.environ.get("SECRET_KEY") or None,
        "ADMIN_COOKIE_SECURE": os.environ.get("ADMIN_COOKIE_SECURE") == "1",
        # /metrics needs "Authorization: Bearer <this>"; unset, it is served only outside production (health.py).
        "METRICS_TOKEN": os.environ.get("METRICS_TOKEN") or None,
        # Abuse limits (messaging/api/limits.py): "N/period" items separated by ";", per user (per token for events).
        "RATE_LIMITS_ENABLED": os.environ.get("RATE_LIMITS_ENABLED", "1") not in ("0", "false", "no", "off"),
        "RATE_LIMIT_MESSAGES": os.environ.get("RATE_LIMIT_MESSAGES") or None,
        "RATE_LIMIT_THREADS": os.environ.get("RATE_LIMIT_THREADS") or None,
        "RATE_LIMIT_EVENTS": os.environ.get("RATE_LIMIT_EVENTS") or None,
        # Seconds after which the outbox sweeper sends again a task sent but not done (messaging/outbox.py).
        "OUTBOX_REDISPATCH_SECONDS": _int("OUTBOX_REDISPATCH_SECONDS", 15),
        # A Celery worker's Prometheus exporter (concierge/worker_metrics.py), 0 = none. On by default in production
        # only, so the test suite's workers and `make run` (whose worker is in-process) never contend for a port.
        "WORKER_METRICS_PORT": _int("WORKER_METRICS_PORT", 9808 if app_env == "production" else 0),
        "WORKER_METRICS_HOST": os.environ.get("WORKER_METRICS_HOST") or "127.0.0.1",
        # Browser origins allowed to call /v1 (messaging.api.cors): exact origins, comma-separated; a port of "*"
        # allows any port (development). Unset: none.
        "CORS_ORIGINS": [o.strip() for o in os.environ.get("CORS_ORIGINS", "").split(",") if o.strip()],
        "PLATFORM_WEBHOOK_URL": os.environ.get("PLATFORM_WEBHOOK_URL") or None,
        "PLATFORM_WEBHOOK_SECRET": os.environ.get("PLATFORM_WEBHOOK_SECRET") or None,
        "CELERY": celery_settings(redis_url, key_prefix, visibility_timeout),
    }


def celery_settings(redis_url: str | None, key_prefix: str = "", visibility_timeout: int = 300) -> dict[str, Any]:
    """The Celery settings of an app whose broker is ``redis_url``, every key it writes under ``key_prefix``
    (``REDIS_KEY_PREFIX``); ``visibility_timeout`` is ``CELERY_VISIBILITY_TIMEOUT``."""
    return {
        "broker_url": redis_url,  # kombu's own transport for its scheme (redis://, rediss://, sentinel://)
        "result_backend": None,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        # Intake must answer while Redis is down: fail a publish fast, the outbox sweeper retries.
        "broker_transport_options": {
            "visibility_timeout": visibility_timeout,
            # kombu prefixes every key it writes (queues, unacked messages, bindings) with it.
            "global_keyprefix": key_prefix,
            # kombu looks for unacknowledged messages past that timeout only every interval × throttle
            # seconds (10 × 10 by default, and once when a worker connects), so a killed worker's tasks
            # would wait up to 100 s more whatever the timeout: look at least every timeout / 2 (≤ 10 s).
            "unacked_restore_interval": max(1, min(10, visibility_timeout // 2)),
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": 1,
            "socket_timeout": 5,
        },
        "broker_connection_timeout": 1,
        "task_publish_retry_policy": {
            "max_retries": 1,
            "interval_start": 0,
            "interval_step": 0.1,
            "interval_max": 0.2,
        },
        "beat_schedule": BEAT_SCHEDULE,
        "imports": ("tasks.concierge_tasks", "tasks.scheduled_tasks"),
    }
