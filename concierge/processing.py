"""Processing a platform event: one concierge message per recipient, ever (SPEC §5.1, §5.5).

Runs in a worker. The unique (event_id, recipient_id) of ``concierge_message_origins`` is what
guarantees "at most once" across redeliveries, retries and concurrent workers; the event row's
state decides whether there is anything left to do.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from concierge.models import ConciergeMessageOrigin, ConciergeThread, OfferThread, PlatformEvent
from concierge.notifications import (
    EventDataError,
    EventNotApplicable,
    Notification,
    parse_facts,
    plan_notifications,
)
from messaging.conversations import _new_conversation, concierge_conversation_id, post_concierge_message
from messaging.db import driver_cursor, is_postgresql, utcnow
from messaging.live import publish_after_commit
from messaging.models import Conversation, User
from messaging.outbox import enqueue_after_commit
from messaging.upsert import insert_ignore

log = logging.getLogger(__name__)

FINAL_STATUSES = frozenset({"processed", "skipped", "failed"})
STALE_AFTER = dt.timedelta(minutes=2)


# Core statements on the table (not the ORM entity): no ORM bulk-update machinery for a one-row change.
EVENTS = cast(Table, PlatformEvent.__table__)


def begin_processing(session: Session, event_id: str) -> bool:
    """Mark the event as being processed (one more attempt), in one statement committed at once (in autocommit
    on PostgreSQL), so the attempt counts even if the worker dies while processing; False if there is nothing
    to do."""
    if is_postgresql() and not session.in_transaction():
        with driver_cursor(session) as cursor:
            cursor.execute(
                "UPDATE platform_events SET status = 'processing', attempts = attempts + 1, updated_at = %s "
                "WHERE id = %s AND status <> ALL(%s) RETURNING id",
                (utcnow(), event_id, sorted(FINAL_STATUSES)),
            )
            return cursor.fetchone() is not None
    started = session.execute(
        update(EVENTS)
        .where(EVENTS.c.id == event_id, EVENTS.c.status.not_in(FINAL_STATUSES))
        .values(status="processing", attempts=EVENTS.c.attempts + 1, updated_at=utcnow())
        .returning(EVENTS.c.id)
    ).first()
    return started is not None


def process_event(session: Session, event_id: str) -> str:
    """Write the event's notifications and finish it; returns the final status.

    The event row is locked first (a concurrent run of the same event waits, then finds it finished), so
    "already notified" read under that lock holds until commit; the unique (event, recipient) key of the
    origins stays the guarantee."""
    query = select(EVENTS.c.status, EVENTS.c.type, EVENTS.c.occurred_at, EVENTS.c.payload).where(
        EVENTS.c.id == event_id
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    event = session.execute(query).first()
    if event is None:
        return "missing"
    if event.status in FINAL_STATUSES:
        return str(event.status)
    try:
        facts = parse_facts(event.type, event.occurred_at, event.payload.get("data") or {})
        notes = plan_notifications(facts)
        recipients = _recipients(session, event_id, notes)
    except EventNotApplicable as exc:
        return _finish(session, event_id, "skipped", str(exc))
    except EventDataError as exc:
        return _finish(session, event_id, "failed", str(exc))
    for note in notes:
        deliver(session, event_id, note, recipients[note.recipient_id])
        recipients[note.recipient_id] = Recipient(None, notified=True)  # one message per recipient, however planned
    return _finish(session, event_id, "processed", None)


def _finish(session: Session, event_id: str, status: str, error: str | None) -> str:
    now = utcnow()
    session.execute(
        update(EVENTS)
        .where(EVENTS.c.id == event_id)
        .values(status=status, last_error=error, updated_at=now, processed_at=now)
    )
    return status


def mark_failed(session: Session, event_id: str, error: str) -> None:
    now = utcnow()
    session.execute(
        update(PlatformEvent)
        .where(PlatformEvent.id == event_id, PlatformEvent.status.not_in(FINAL_STATUSES))
        .values(status="failed", last_error=error[:2000], updated_at=now, processed_at=now)
    )


@dataclass(frozen=True, slots=True)
class Recipient:
    concierge_conversation_id: str | None  # None: not created yet
    notified: bool  # this event already wrote their message


def _recipients(session: Session, event_id: str, notes: list[Notification]) -> dict[str, Recipient]:
    """Every recipient's concierge conversation and whether this event already notified them, in one query;
    EventDataError naming the recipients that are not known users."""
    wanted = {n.recipient_id for n in notes}
    users, threads, origins = User.__table__, ConciergeThread.__table__, ConciergeMessageOrigin.__table__
    notified = (
        select(origins.c.message_id)
        .where(origins.c.event_id == event_id, origins.c.recipient_id == users.c.id)
        .exists()
    )
    rows = session.execute(
        select(users.c.id, threads.c.conversation_id, notified)
        .select_from(users.outerjoin(threads, threads.c.user_id == users.c.id))
        .where(users.c.id.in_(wanted))
    ).all()
    found = {row[0]: Recipient(row[1], bool(row[2])) for row in rows}
    missing = sorted(wanted - set(found))
    if missing:
        raise EventDataError(f"recipient user(s) unknown: {', '.join(missing)}")
    return found


def deliver(session: Session, event_id: str, note: Notification, recipient: Recipient) -> dict[str, Any] | None:
    """Write one notification unless this (event, recipient) already has its message."""
    if recipient.notified:
        log.info("event %s already notified %s", event_id, note.recipient_id)
        return None
    if note.target == "offer":
        assert note.offer_id is not None
        conversation_id = offer_conversation_id(session, note.offer_id, note.recipient_id)
    else:
        conversation_id = recipient.concierge_conversation_id or concierge_conversation_id(session, note.recipient_id)
    message, audience = post_concierge_message(
        session,
        conversation_id,
        note.text[:1500],
        origin={"kind": "event", "event_id": event_id, "recipient_id": note.recipient_id},
    )
    publish_after_commit(session, "message.created", audience, message)
    return message


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
