"""Event intake (SPEC §4 "Platform records and events"): validate, upsert the records, store the
event and its outbox entry in one transaction. Processing happens in a worker (concierge.processing).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, Field, ValidationError, field_validator
from sqlalchemy.orm import Session

from concierge import records
from concierge.models import ConciergeMessageOrigin, PlatformEvent
from concierge.notifications import EVENT_TYPES, subject_key
from messaging.db import utcnow
from messaging.errors import Conflict, NotFound, Unprocessable
from messaging.models import Message, Offer, Property, RequestToBook, User
from messaging.outbox import enqueue_after_commit
from messaging.resources import message_json, select_messages
from messaging.schemas import ApiModel
from messaging.upsert import insert_ignore

PROCESS_EVENT_TASK = "concierge.process_event"
EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]


def _keep(value: Any) -> Any:
    return value


# Inside an event, a record whose dates are out of order is still accepted: the event is stored and
# ends as ``failed`` with a readable error (SPEC §5) rather than being refused at the door.
class EventOffer(records.OfferRecord):
    _dates_in_order = field_validator("check_out")(_keep)  # type: ignore[assignment]


class EventRequestToBook(records.RequestToBookRecord):
    _dates_in_order = field_validator("check_out")(_keep)  # type: ignore[assignment]


class EventTrip(records.TripRecord):
    _dates_in_order = field_validator("check_out")(_keep)  # type: ignore[assignment]


class EventData(ApiModel):
    property: records.PropertyRecord | None = None
    traveler: records.UserRecord | None = None
    host: records.UserRecord | None = None
    offer: EventOffer | None = None
    request_to_book: EventRequestToBook | None = None
    trip: EventTrip | None = None


class EventIn(ApiModel):
    id: Annotated[str, Field(min_length=1, max_length=255), AfterValidator(records._no_nul)]
    type: EventType = Field(description="One of the known event types (SPEC §5.1)")
    occurred_at: records.IsoDateTime
    data: EventData


def payload_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _upsert_records(session: Session, event: EventIn) -> None:
    """Upsert what the event carries, people and places first so references resolve (a reference to a record
    upserted here needs no lookup)."""
    data = event.data
    people = [user for user in (data.host, data.traveler) if user is not None]
    if people:
        records.forget_deletions(session, [user.id for user in people])
    for user in people:
        records.upsert_user(session, user, forget_deletion=False)
    known: set[tuple[type[Any], Any]] = {(User, user.id) for user in people}
    if data.property is not None:
        records.upsert_property(session, data.property, prefix="data.property.", known=known)
        known.add((Property, data.property.id))
    # A record that fails the strict checks (dates out of order) stays in the event, for its
    # error, but is not mirrored.
    try:
        if data.offer is not None:
            offer = records.OfferRecord.model_validate(data.offer.model_dump())
            records.upsert_offer(session, offer, prefix="data.offer.", known=known)
            known.add((Offer, offer.id))
        if data.request_to_book is not None:
            request = records.RequestToBookRecord.model_validate(data.request_to_book.model_dump())
            records.upsert_request_to_book(session, request, prefix="data.requestToBook.", known=known)
            known.add((RequestToBook, request.id))
        if data.trip is not None:
            trip = records.TripRecord.model_validate(data.trip.model_dump())
            records.upsert_trip(session, trip, prefix="data.trip.", known=known)
    except ValidationError:
        return


def accept_event(session: Session, event: EventIn, body: dict[str, Any]) -> tuple[PlatformEvent, bool]:
    """Store a new event (True) or return the stored one for a repeated delivery (False).

    The same id with a different body is a 409. The outbox entry commits with the event.
    """
    digest = payload_hash(body)
    existing = session.get(PlatformEvent, event.id)
    if existing is not None:
        return _same_or_conflict(existing, digest), False
    key = subject_key(event.type)
    if body.get("data", {}).get(key) is None:
        raise Unprocessable(
            f"A {event.type} event carries its {key} record in data.{key}.",
            errors=[{"field": f"data.{key}", "message": "required for this event type"}],
        )
    _upsert_records(session, event)
    now = utcnow()
    values = {
        "id": event.id,
        "type": event.type,
        "occurred_at": event.occurred_at,
        "payload": body,
        "payload_hash": digest,
        "source": "platform",
        "status": "pending",
        "attempts": 0,
        "received_at": now,
        "updated_at": now,
    }
    if not insert_ignore(session, PlatformEvent, values):  # a concurrent delivery of the same id got there first
        stored = session.get(PlatformEvent, event.id, populate_existing=True)
        assert stored is not None
        return _same_or_conflict(stored, digest), False
    enqueue_after_commit(session, PROCESS_EVENT_TASK, event.id)
    # What was just inserted, as the resource shows it (not attached to the session: nothing to read back).
    return PlatformEvent(**values, last_error=None, processed_at=None), True


def record_internal_event(
    session: Session, event_id: str, event_type: str, occurred_at: Any, data: dict[str, Any], source: str
) -> bool:
    """Store an event the service found itself (the scheduler); once per id, however often it runs."""
    body = {"id": event_id, "type": event_type, "occurredAt": occurred_at.isoformat(), "data": data}
    now = utcnow()
    inserted = insert_ignore(
        session,
        PlatformEvent,
        {
            "id": event_id,
            "type": event_type,
            "occurred_at": occurred_at,
            "payload": body,
            "payload_hash": payload_hash(body),
            "source": source,
            "status": "pending",
            "attempts": 0,
            "received_at": now,
            "updated_at": now,
        },
    )
    if inserted:
        enqueue_after_commit(session, PROCESS_EVENT_TASK, event_id)
    return inserted


def _same_or_conflict(stored: PlatformEvent, digest: str) -> PlatformEvent:
    if stored.payload_hash != digest:
        raise Conflict(f"Event {stored.id} was already received with a different body.")
    return stored


def event_json(session: Session, event: PlatformEvent, *, just_accepted: bool = False) -> dict[str, Any]:
    """The Event resource; ``just_accepted``: accepted in this transaction, so no message can exist yet (the
    worker writes them after it commits) and none are looked for."""
    rows = [] if just_accepted else session.execute(
        select_messages()
        .where(ConciergeMessageOrigin.event_id == event.id)
        .order_by(Message.created_at, Message.id)
    ).all()
    return {
        "id": event.id,
        "type": event.type,
        "status": event.status,
        "attempts": event.attempts,
        "lastError": event.last_error,
        "occurredAt": event.occurred_at,
        "receivedAt": event.received_at,
        "processedAt": event.processed_at,
        "messages": [message_json(r) for r in rows],
    }


def get_event(session: Session, event_id: str) -> PlatformEvent:
    event = session.get(PlatformEvent, event_id) if len(event_id) <= 255 else None
    if event is None:
        raise NotFound("No such event.")
    return event


