"""HTTP: the platform posts events (role service) and reads their processing state."""

from __future__ import annotations

from flask import Response, request
from pydantic import Field

from concierge.events import EventIn, accept_event, event_json, get_event
from messaging.db import get_session
from messaging.http import api_blueprint, json_response
from messaging.schemas import ApiModel

bp = api_blueprint("events", __name__, "Events", "Platform events for the concierge", roles=frozenset({"service"}))


class EventPath(ApiModel):
    id: str = Field(min_length=1, max_length=255)


class EventOut(ApiModel):
    id: str
    type: str
    status: str = Field(description="pending | processing | processed | failed | skipped")
    attempts: int
    last_error: str | None
    occurred_at: str
    received_at: str
    processed_at: str | None
    messages: list[dict]  # type: ignore[type-arg]


@bp.post("/events", responses={202: EventOut, 200: EventOut})
def post_event(body: EventIn) -> Response:
    """Accept a platform event (202); the same id and body again returns the stored event (200)."""
    session = get_session()
    event, created = accept_event(session, body, request.get_json())
    resource = event_json(session, event, just_accepted=created)
    session.commit()
    return json_response(resource, 202 if created else 200)


@bp.get("/events/<id>", responses={200: EventOut})
def read_event(path: EventPath) -> Response:
    """An event's processing state and the concierge messages it produced."""
    session = get_session()
    return json_response(event_json(session, get_event(session, path.id)))
