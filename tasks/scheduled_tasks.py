"""Periodic tasks (Celery beat): reminders, expiring requests to book, host nudges, the platform webhook, and the
purge of expired Idempotency-Key claims.

Each is idempotent (deterministic event ids, unique origins, unique (user, hour) deliveries; a purge deletes only
what is expired), so an overlapping or repeated run changes nothing.
"""

from __future__ import annotations

import logging
import random

from celery import shared_task
from flask import current_app

from concierge import scheduling, webhooks
from messaging.api.idempotency import purge_expired_idempotency_keys
from messaging.store.db import session_scope, utcnow
from tasks.concierge_tasks import TRANSIENT

log = logging.getLogger(__name__)
# 1 s, 2 s, 4 s … capped at 10 minutes: fifteen retries keep trying for a little over an hour.
WEBHOOK_MAX_RETRIES = 15
WEBHOOK_BACKOFF_CAP = 600
# Expired Idempotency-Key claims deleted per transaction: a large backlog is worked through in short statements.
PURGE_BATCH = 5000


def webhook_backoff(retries: int) -> float:
    return float(min(WEBHOOK_BACKOFF_CAP, 2**retries)) * random.uniform(0.9, 1.1)  # noqa: S311 - jitter


@shared_task(name="concierge.schedule_check_in_reminders", acks_late=True)
def schedule_check_in_reminders() -> int:
    with session_scope() as session:
        return scheduling.schedule_check_in_reminders(session, utcnow())


@shared_task(name="concierge.schedule_offer_expiry_reminders", acks_late=True)
def schedule_offer_expiry_reminders() -> int:
    with session_scope() as session:
        return scheduling.schedule_offer_expiry_reminders(session, utcnow())


@shared_task(name="concierge.expire_requests_to_book", acks_late=True)
def expire_requests_to_book() -> int:
    with session_scope() as session:
        return scheduling.expire_requests_to_book(session, utcnow())


@shared_task(name="idempotency.purge", acks_late=True)
def purge_idempotency_keys() -> int:
    """Delete every Idempotency-Key claim expired when the run starts, :data:`PURGE_BATCH` per transaction; returns
    how many."""
    now, purged = utcnow(), 0
    while True:
        with session_scope() as session:
            deleted = purge_expired_idempotency_keys(session, now, limit=PURGE_BATCH)
        purged += deleted
        if deleted < PURGE_BATCH:
            return purged


@shared_task(name="concierge.nudge_waiting_hosts", acks_late=True)
def nudge_waiting_hosts() -> int:
    with session_scope() as session:
        return scheduling.nudge_waiting_hosts(session, utcnow())


@shared_task(name="concierge.alert_unanswered_handovers", acks_late=True)
def alert_unanswered_handovers() -> int:
    with session_scope() as session:
        return scheduling.alert_unanswered_handovers(session, utcnow())


def _webhook_settings() -> tuple[str | None, str | None]:
    url, secret = current_app.config.get("PLATFORM_WEBHOOK_URL"), current_app.config.get("PLATFORM_WEBHOOK_SECRET")
    if url and not secret:
        log.warning("PLATFORM_WEBHOOK_URL is set without PLATFORM_WEBHOOK_SECRET: webhooks are off")
        return None, None
    return url, secret


@shared_task(name="concierge.schedule_unread_webhooks", acks_late=True)
def schedule_unread_webhooks() -> int:
    url, _secret = _webhook_settings()
    with session_scope() as session:
        return webhooks.schedule_unread_webhooks(session, utcnow(), url)


@shared_task(bind=True, name="concierge.deliver_webhook", acks_late=True, max_retries=WEBHOOK_MAX_RETRIES)
def deliver_webhook(self, delivery_id: str) -> str:  # type: ignore[no-untyped-def]
    url, secret = _webhook_settings()
    if not url or not secret:
        return "off"
    try:
        with session_scope() as session:  # the attempt is recorded even when it failed
            outcome = webhooks.deliver(session, delivery_id, url, secret)
            error = session.get(webhooks.WebhookDelivery, delivery_id)
            detail = error.last_error if error is not None else None
        if outcome != "retry":
            return outcome
        raise webhooks.DeliveryFailed(detail or "not delivered")
    except (webhooks.DeliveryFailed, *TRANSIENT) as exc:
        if self.request.retries >= self.max_retries:
            with session_scope() as session:
                webhooks.give_up(session, delivery_id, f"gave up after {self.request.retries + 1} tries: {exc}")
            return "failed"
        raise self.retry(exc=exc, countdown=webhook_backoff(self.request.retries)) from exc
