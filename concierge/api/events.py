"""HTTP: the platform posts events (role service) and reads their processing state."""

from __future__ import annotations

from flask import Response, request
from pydantic import Field

from concierge.events import EventIn, accept_event, event_json, event_records_markdown, get_event
from messaging.api.http import api_blueprint, json_response
from messaging.schemas import ApiModel, documented
from messaging.store.db import get_session

bp = api_blueprint("events", __name__, "Events", "Platform events for the concierge", roles=frozenset({"service"}))


class EventPath(ApiModel):
    id: str = Field(min_length=1, max_length=255)


ACCEPTED_EXAMPLE = {
    "id": "evt-trip.booked-1", "type": "trip.booked", "status": "pending", "attempts": 0, "lastError": None,
    "occurredAt": "2027-03-01T09:30:00Z", "receivedAt": "2027-03-01T09:30:01.204Z", "processedAt": None,
    "messages": [],
}
PROCESSED_EXAMPLE = {
    **ACCEPTED_EXAMPLE, "status": "processed", "attempts": 1, "processedAt": "2027-03-01T09:30:02.517Z",
    "messages": [{
        "id": "V1StGXR8_Z5jdHi6B-myT", "conversationId": "k8Pq2Rs_Tu4Vw6Xy8Za0b", "userId": None,
        "senderType": "concierge", "read": False, "isEdit": False, "createdAt": "2027-03-01T09:30:02.498Z",
        "message": "Your trip to Casa Azul in Lisbon is booked: Fri 12 Mar – Mon 15 Mar (3 nights), 3 guests. "
                   "Address: Rua das Flores 12, Lisboa. Check-in from 16:00 on Fri 12 Mar, check-out by 11:00 on "
                   "Mon 15 Mar.",
    }, {
        "id": "Wq4Er6Ty8Ui0Op2As4Df6", "conversationId": "Gh8Jk0Lz2Xc4Vb6Nm8Qw0", "userId": None,
        "senderType": "concierge", "read": False, "isEdit": False, "createdAt": "2027-03-01T09:30:02.501Z",
        "message": "Tomás Silva booked Casa Azul in Lisbon for Fri 12 Mar – Mon 15 Mar (3 nights), 3 guests. "
                   "Check-in from 16:00, check-out by 11:00.",
    }],
}


class EventOut(ApiModel):
    model_config = documented(examples={
        "accepted": {"summary": "Just accepted: pending, no message yet", "value": ACCEPTED_EXAMPLE},
        "processed": {"summary": "Processed: the concierge's messages", "value": PROCESSED_EXAMPLE},
    })

    id: str
    type: str
    status: str = Field(description="pending | processing | processed | failed | skipped")
    attempts: int
    last_error: str | None
    occurred_at: str
    received_at: str
    processed_at: str | None
    messages: list[dict]  # type: ignore[type-arg]


def post_event_description() -> str:
    """POST /v1/events's description, with the records each event type carries: the table the intake checks
    events against (:data:`concierge.events.EVENT_RECORDS`)."""
    return "\n\n".join((
        "The platform reports what happened to an offer, a request to book or a trip (SPEC §5.1). The event is "
        "stored with the records it carries (each upserted) in one transaction and answered 202 (`pending`); "
        "the concierge then tells the people concerned, in the background: `GET /v1/events/{id}` follows it. "
        "Posting the same `id` and body again, also concurrently, returns the stored event (200) and tells no one "
        "twice.",
        "**Who may call it:** the platform, with a `service` token (any other role: 403).",
        "**Errors:** 422 for an unknown `type` (listing the known ones), for an event without the record its "
        "type is about, or for a record that refers to a user, property, offer or request to book the service "
        "does not know and the event does not carry (naming each field); 409 when the `id` was received before "
        "with a different body.",
        "**Records by event type**, under `data` (the examples, one per event type, carry them):",
        event_records_markdown(),
    ))


@bp.post("/events", responses={202: EventOut, 200: EventOut}, description=post_event_description())
def post_event(body: EventIn) -> Response:
    """Accept a platform event (202; 200 for a repeat)."""
    session = get_session()
    event, created = accept_event(session, body, request.get_json())
    resource = event_json(session, event, just_accepted=created)
    session.commit()
    return json_response(resource, 202 if created else 200)


@bp.get("/events/<id>", responses={200: EventOut})
def read_event(path: EventPath) -> Response:
    """An event's processing state and the concierge messages it produced.

    `status` is `pending` until a worker takes it, then `processing`, and ends `processed` (with the messages
    it wrote), `skipped` (no longer applicable, or a fact already told: `lastError` says why) or `failed` (its
    records are missing or inconsistent, or its last attempt failed: `lastError` says what; an admin may retry
    it).

    **Who may call it:** the platform, with a `service` token (any other role: 403).

    **Errors:** 404 for an unknown event id.
    """
    session = get_session()
    return json_response(event_json(session, get_event(session, path.id)))
