"""Concierge tasks: processing events, answering questions, sweeping the outbox and stale events.

Every task is idempotent (a unique constraint stops a second effect), acknowledged late, and
retried with exponential backoff on transient errors (database or broker unreachable); an event
whose last try fails ends ``failed`` with the error recorded, for an admin to retry. A task sent
through the outbox reports its row done when it is over (messaging.queue), so the sweeper sends
again only what the broker lost.
"""

from __future__ import annotations

import datetime as dt
import logging
import random

from celery import shared_task
from flask import current_app
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import DBAPIError, OperationalError

from concierge import chat, processing
from messaging.outbox import sweep_outbox
from messaging.store.db import session_scope

log = logging.getLogger(__name__)

TRANSIENT = (OperationalError, DBAPIError, BrokerError, ConnectionError, TimeoutError)
MAX_RETRIES = 6


def backoff(retries: int) -> float:
    """1, 2, 4, 8, 16, 32 s (capped at 60), with jitter so retries don't arrive in step."""
    return float(min(60, 2**retries)) * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security


@shared_task(bind=True, name="concierge.process_event", acks_late=True, max_retries=MAX_RETRIES)
def process_event(self, event_id: str) -> str:  # type: ignore[no-untyped-def]
    try:
        with session_scope() as session:
            started = processing.begin_processing(session, event_id)
        if started is None:
            return "nothing to do"
        with session_scope() as session:
            return processing.process_event(session, event_id, started)
    except TRANSIENT as exc:
        if self.request.retries >= self.max_retries:
            log.error("event %s failed after %s tries: %s", event_id, self.request.retries + 1, exc)
            with session_scope() as session:
                processing.mark_failed(session, event_id, f"gave up after {self.request.retries + 1} tries: {exc}")
            return "failed"
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc


@shared_task(bind=True, name="concierge.answer_question", acks_late=True, max_retries=MAX_RETRIES)
def answer_question(self, message_id: str) -> str:  # type: ignore[no-untyped-def]
    try:
        with session_scope() as session:
            return chat.answer_question(session, message_id)
    except TRANSIENT as exc:
        if self.request.retries >= self.max_retries:
            log.error("could not answer message %s: %s", message_id, exc)
            return "failed"
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc


@shared_task(name="outbox.sweep", acks_late=True)
def sweep_outbox_task() -> int:
    redispatch_after = dt.timedelta(seconds=current_app.config["OUTBOX_REDISPATCH_SECONDS"])
    with session_scope() as session:
        return sweep_outbox(session, redispatch_after=redispatch_after)


@shared_task(name="concierge.sweep_stale_events", acks_late=True)
def sweep_stale_events() -> int:
    with session_scope() as session:
        stale = processing.stale_event_ids(session)
        processing.requeue_events(session, stale)
    return len(stale)
