"""Processing a platform event: one concierge message per recipient, ever (SPEC §5.1, §5.5).

Runs in a worker. The unique (event_id, recipient_id) of ``concierge_message_origins`` is what
guarantees "at most once" across redeliveries, retries and concurrent workers; the event row's
state decides whether there is anything left to do.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from concierge.models import ConciergeMessageOrigin, OfferThread, PlatformEvent
from concierge.notifications import (
    EventDataError,
    EventNotApplicable,
    Notification,
    parse_facts,
    plan_notifications,
)
from messaging.conversations import _new_conversation, concierge_conversation_id, participant_ids, post_message
from messaging.db import utcnow
from messaging.live import publish_after_commit
from messaging.models import Conversation, User
from messaging.outbox import enqueue_after_commit
from messaging.upsert import insert_ignore

log = logging.getLogger(__name__)

FINAL_STATUSES = frozenset({"processed", "skipped", "failed"})
STALE_AFTER = dt.timedelta(minutes=2)


def begin_processing(session: Session, event_id: str) -> bool:
    """Mark the event as being processed (one more attempt); False if there is nothing to do."""
    query = select(PlatformEvent).where(PlatformEvent.id == event_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    event = session.execute(query).scalar_one_or_none()
    if event is None or event.status in FINAL_STATUSES:
        return False
    event.status = "processing"
    event.attempts += 1
    event.updated_at = utcnow()
    return True


def process_event(session: Session, event_id: str) -> str:
    """Write the event's notifications and finish it; returns the final status."""
    query = select(PlatformEvent).where(PlatformEvent.id == event_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()  # a concurrent run waits, then sees "processed"
    event = session.execute(query).scalar_one_or_none()
    if event is None:
        return "missing"
    if event.status in FINAL_STATUSES:
        return event.status
    now = utcnow()
    try:
        facts = parse_facts(event.type, event.occurred_at, event.payload.get("data") or {})
        notes = plan_notifications(facts)
        _require_recipients(session, notes)
    except EventNotApplicable as exc:
        _finish(event, "skipped", str(exc), now)
        return "skipped"
    except EventDataError as exc:
        _finish(event, "failed", str(exc), now)
        return "failed"
    for note in notes:
        deliver(session, event.id, note)
    _finish(event, "processed", None, now)
    return "processed"


def _finish(event: PlatformEvent, status: str, error: str | None, now: dt.datetime) -> None:
    event.status = status
    event.last_error = error
    event.updated_at = now
    event.processed_at = now


def mark_failed(session: Session, event_id: str, error: str) -> None:
    now = utcnow()
    session.execute(
        update(PlatformEvent)
        .where(PlatformEvent.id == event_id, PlatformEvent.status.not_in(FINAL_STATUSES))
        .values(status="failed", last_error=error[:2000], updated_at=now, processed_at=now)
    )


def _require_recipients(session: Session, notes: list[Notification]) -> None:
    wanted = {n.recipient_id for n in notes}
    known = set(session.scalars(select(User.id).where(User.id.in_(wanted))))
    missing = sorted(wanted - known)
    if missing:
        raise EventDataError(f"recipient user(s) unknown: {', '.join(missing)}")


def deliver(session: Session, event_id: str, note: Notification) -> dict[str, Any] | None:
    """Write one notification unless this (event, recipient) already has its message."""
    if _already_notified(session, event_id, note.recipient_id):
        return None
    if note.target == "offer":
        assert note.offer_id is not None
        conversation_id = offer_conversation_id(session, note.offer_id, note.recipient_id)
    else:
        conversation_id = concierge_conversation_id(session, note.recipient_id)
    try:
        with session.begin_nested():
            message = post_message(
                session,
                conversation_id,
                None,
                note.text[:1500],
                origin={"kind": "event", "event_id": event_id, "recipient_id": note.recipient_id},
            )
    except IntegrityError:
        if not _already_notified(session, event_id, note.recipient_id):
            raise
        log.info("event %s already notified %s", event_id, note.recipient_id)
        return None
    publish_after_commit(session, "message.created", participant_ids(session, conversation_id), message)
    return message


def _already_notified(session: Session, event_id: str, recipient_id: str) -> bool:
    return (
        session.execute(
            select(ConciergeMessageOrigin.message_id).where(
                ConciergeMessageOrigin.event_id == event_id, ConciergeMessageOrigin.recipient_id == recipient_id
            )
        ).first()
        is not None
    )


def offer_conversation_id(session: Session, offer_id: int, traveler_id: str) -> str:
    """The offer's conversation (``conversations.offer_id``), created on demand with the traveler."""
    existing = session.execute(
        select(OfferThread.conversation_id).where(OfferThread.offer_id == offer_id)
    ).scalar()
    if existing is not None:
        return str(existing)
    candidate = _new_conversation(session, [traveler_id], name=None, offer_id=str(offer_id))
    if insert_ignore(
        session, OfferThread, {"offer_id": offer_id, "conversation_id": candidate, "traveler_id": traveler_id}
    ):
        return candidate
    session.delete(session.get(Conversation, candidate))
    winner = session.execute(select(OfferThread.conversation_id).where(OfferThread.offer_id == offer_id)).scalar_one()
    return str(winner)


def stale_event_ids(session: Session, now: dt.datetime | None = None, limit: int = 500) -> list[str]:
    """Events still pending or processing after STALE_AFTER: their task was lost (worker killed
    past the broker's redelivery, or never sent)."""
    cutoff = (now or utcnow()) - STALE_AFTER
    return list(
        session.scalars(
            select(PlatformEvent.id)
            .where(PlatformEvent.status.in_(("pending", "processing")), PlatformEvent.updated_at < cutoff)
            .order_by(PlatformEvent.updated_at)
            .limit(limit)
        )
    )


def requeue_events(session: Session, event_ids: list[str]) -> None:
    """Send the events to the worker again (via the outbox) and note when."""
    if not event_ids:
        return
    session.execute(update(PlatformEvent).where(PlatformEvent.id.in_(event_ids)).values(updated_at=utcnow()))
    for event_id in event_ids:
        enqueue_after_commit(session, "concierge.process_event", event_id)


def retry_failed_event(session: Session, event_id: str) -> PlatformEvent | None:
    """An admin's retry: a failed event goes back to pending and to the worker."""
    event = session.get(PlatformEvent, event_id)
    if event is None or event.status != "failed":
        return event
    event.status = "pending"
    event.last_error = None
    event.updated_at = utcnow()
    event.processed_at = None
    enqueue_after_commit(session, "concierge.process_event", event_id)
    return event
