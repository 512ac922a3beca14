"""Processing a platform event: one concierge message per recipient, ever, and one per fact, whoever reports it
(SPEC §5.1, §5.5).

Runs in a worker. The unique (event_id, recipient_id) of ``concierge_message_origins`` is what
guarantees "at most once" across redeliveries, retries and concurrent workers; the event row's
state decides whether there is anything left to do. The key of ``concierge_facts`` (concierge.facts), claimed
in the transaction of the messages, does the same across events reporting one fact.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from concierge.facts import Fact, claim_fact, duplicate_reason, fact_of
from concierge.models import OfferThread, PlatformEvent
from concierge.notifications import (
    EventDataError,
    EventNotApplicable,
    Notification,
    parse_facts,
    plan_notifications,
)
from messaging.chat.conversations import (
    _new_conversation,
    concierge_conversation_id,
    offer_conversation_name,
    post_concierge_message,
)
from messaging.live.bus import publish_after_commit
from messaging.outbox import enqueue_after_commit
from messaging.store.db import driver_cursor, utcnow
from messaging.store.models import Conversation
from messaging.store.upsert import insert_ignore

log = logging.getLogger(__name__)

FINAL_STATUSES = frozenset({"processed", "skipped", "failed"})
STALE_AFTER = dt.timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class Started:
    """An event taken up for processing: what it is (never changed once stored)."""

    type: str
    occurred_at: dt.datetime
    payload: dict[str, Any]


def begin_processing(session: Session, event_id: str) -> Started | None:
    """Mark the event as being processed (one more attempt), in one statement — committed at once, in autocommit,
    unless ``session`` has a transaction open (then it is the caller's to commit) — so the attempt counts even if
    the worker dies while processing; the event as stored, or None if there is nothing to do (no such event, or
    it is finished)."""
    with driver_cursor(session) as cursor:
        cursor.execute(_BEGIN_SQL, (utcnow(), event_id, sorted(FINAL_STATUSES)))
        row = cursor.fetchone()
    return Started(*row) if row is not None else None


_BEGIN_SQL = (
    "UPDATE platform_events SET status = 'processing', attempts = attempts + 1, updated_at = %s "
    "WHERE id = %s AND status <> ALL(%s) RETURNING type, occurred_at, payload"
)


def process_event(session: Session, event_id: str, started: Started, now: dt.datetime | None = None) -> str:
    """Write the event's notifications and finish it, in ``session``'s transaction; returns the final status.

    The notes are planned from the event's records first (they never change once stored), as written at ``now``
    (default: the current time), however long the event waited: a notice whose moment has passed by then ends
    the event ``skipped`` with the reason. Then the event row is locked (a concurrent run of the same event
    waits, then finds it finished) and every recipient read with it, so "already notified" read under that lock
    holds until commit; the unique (event, recipient) key of the origins stays the guarantee.

    The event's fact (:func:`concierge.facts.fact_of`) is claimed for its recipients before their messages are
    written: a recipient another report already told gets nothing, and the event ends ``skipped`` with
    ``lastError`` naming that report when nobody is left to tell (``processed``, with the same note, when
    others were told)."""
    notes: list[Notification] = []
    fact: Fact | None = None
    outcome: tuple[str, str] | None = None  # (final status, error) without any message
    try:
        facts = parse_facts(started.type, started.occurred_at, started.payload.get("data") or {})
        notes = plan_notifications(facts, now or utcnow())
        fact = fact_of(facts)
    except EventNotApplicable as exc:
        outcome = ("skipped", str(exc))
    except EventDataError as exc:
        outcome = ("failed", str(exc))
    status, recipients = _lock(session, event_id, {n.recipient_id for n in notes})
    if status is None or status in FINAL_STATUSES:
        return status or "missing"
    if outcome is None:
        missing = sorted({n.recipient_id for n in notes} - set(recipients))
        if missing:
            outcome = ("failed", f"recipient user(s) unknown: {', '.join(missing)}")
    if outcome is not None:
        return _finish(session, event_id, *outcome)
    assert fact is not None  # planned without an exception
    told = claim_fact(session, event_id, fact, (r for r, found in recipients.items() if not found.notified))
    written = 0
    for note in notes:
        if note.recipient_id in told:
            continue
        written += deliver(session, event_id, note, recipients[note.recipient_id]) is not None
        recipients[note.recipient_id] = Recipient(None, notified=True)  # one message per recipient, however planned
    if not told:
        return _finish(session, event_id, "processed", None)
    return _finish(session, event_id, "processed" if written else "skipped", duplicate_reason(fact, told.values()))


def _finish(session: Session, event_id: str, status: str, error: str | None) -> str:
    now = utcnow()
    with driver_cursor(session) as cursor:
        cursor.execute(_FINISH_SQL, (status, error, now, now, event_id))
    return status


_FINISH_SQL = (
    "UPDATE platform_events SET status = %s, last_error = %s, updated_at = %s, processed_at = %s WHERE id = %s"
)


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


def _lock(session: Session, event_id: str, wanted: set[str]) -> tuple[str | None, dict[str, Recipient]]:
    """Lock the event row in the session's transaction and read, in the same query, each wanted recipient that
    is a known user: their concierge conversation and whether this event already notified them. Returns the
    event's status (None: no such event) and the recipients found."""
    session.connection()  # in the session's transaction
    with driver_cursor(session) as cursor:
        cursor.execute(_LOCK_SQL, {"eid": event_id, "ids": sorted(wanted)})
        rows = cursor.fetchall()
    if not rows:
        return None, {}
    return rows[0][0], {row[1]: Recipient(row[2], bool(row[3])) for row in rows if row[1] is not None}


# Only the event row is locked (FOR UPDATE OF e), not the users' or threads' rows it is joined with. One row per
# wanted recipient that exists; one row with NULL recipient columns when none is wanted or none exists.
_LOCK_SQL = """
SELECT e.status, u.id, t.conversation_id,
       EXISTS (SELECT 1 FROM concierge_message_origins o WHERE o.event_id = e.id AND o.recipient_id = u.id)
  FROM platform_events e
  LEFT JOIN users u ON u.id = ANY(%(ids)s)
  LEFT JOIN concierge_threads t ON t.user_id = u.id
 WHERE e.id = %(eid)s
   FOR UPDATE OF e
"""


def deliver(session: Session, event_id: str, note: Notification, recipient: Recipient) -> dict[str, Any] | None:
    """Write one notification unless this (event, recipient) already has its message."""
    if recipient.notified:
        log.info("event %s already notified %s", event_id, note.recipient_id)
        return None
    if note.target == "offer":
        assert note.offer_id is not None
        conversation_id = offer_conversation_id(session, note.offer_id, note.recipient_id)
    else:
        conversation_id = recipient.concierge_conversation_id or concierge_conversation_id(
            session, note.recipient_id, known_missing=True
        )
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
    candidate = _new_conversation(
        session, [traveler_id], name=offer_conversation_name(session, offer_id), offer_id=str(offer_id)
    )
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
