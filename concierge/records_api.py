"""HTTP: the platform keeps its users, properties, offers, requests to book and trips in sync (service role)."""

from __future__ import annotations

from flask import Response
from pydantic import Field

from concierge import records as svc
from messaging.auth import known_users
from messaging.db import get_session
from messaging.http import api_blueprint, json_response, no_content
from messaging.schemas import ApiModel

bp = api_blueprint(
    "records",
    __name__,
    "Platform records",
    "The platform's records mirrored here: create or replace (PUT), delete with the cascades of SPEC §1",
    roles=frozenset({"service"}),
)


class UserPath(ApiModel):
    id: svc.UserId


class RecordPath(ApiModel):
    id: int = Field(gt=0, le=svc.INT32_MAX)


def _saved(record: ApiModel, created: bool) -> Response:
    get_session().commit()
    return json_response(record, 201 if created else 200)


@bp.put("/users/<id>", responses={200: svc.UserRecord, 201: svc.UserRecord})
def put_user(path: UserPath, body: svc.UserBody) -> Response:
    """Create (201) or replace (200) a user."""
    record = svc.UserRecord(id=path.id, **body.model_dump())
    return _saved(record, svc.upsert_user(get_session(), record))


@bp.delete("/users/<id>", responses={204: None, 404: None})
def delete_user(path: UserPath) -> Response:
    """Delete a user: their messages stay with no author; participations, property threads
    (as traveler), property messages and hosted properties go."""
    svc.delete_user(get_session(), path.id)
    known_users().discard(path.id)
    get_session().commit()
    return no_content()


@bp.put("/properties/<id>", responses={200: svc.PropertyRecord, 201: svc.PropertyRecord})
def put_property(path: RecordPath, body: svc.PropertyBody) -> Response:
    """Create (201) or replace (200) a property; its host must be a known user."""
    record = svc.PropertyRecord(id=path.id, **body.model_dump())
    return _saved(record, svc.upsert_property(get_session(), record))


@bp.delete("/properties/<id>", responses={204: None, 404: None})
def delete_property(path: RecordPath) -> Response:
    """Delete a property with its offers, requests to book, trips and property threads."""
    svc.delete_property(get_session(), path.id)
    get_session().commit()
    return no_content()


@bp.put("/offers/<id>", responses={200: svc.OfferRecord, 201: svc.OfferRecord})
def put_offer(path: RecordPath, body: svc.OfferBody) -> Response:
    """Create (201) or replace (200) an offer; its property and traveler must be known."""
    record = svc.OfferRecord(id=path.id, **body.model_dump())
    return _saved(record, svc.upsert_offer(get_session(), record))


@bp.delete("/offers/<id>", responses={204: None, 404: None})
def delete_offer(path: RecordPath) -> Response:
    """Delete an offer; property threads and trips linked to it keep going without the link."""
    svc.delete_offer(get_session(), path.id)
    get_session().commit()
    return no_content()


@bp.put("/requests-to-book/<id>", responses={200: svc.RequestToBookRecord, 201: svc.RequestToBookRecord})
def put_request_to_book(path: RecordPath, body: svc.RequestToBookBody) -> Response:
    """Create (201) or replace (200) a request to book; its property and traveler must be known."""
    record = svc.RequestToBookRecord(id=path.id, **body.model_dump())
    return _saved(record, svc.upsert_request_to_book(get_session(), record))


@bp.delete("/requests-to-book/<id>", responses={204: None, 404: None})
def delete_request_to_book(path: RecordPath) -> Response:
    """Delete a request to book; property threads and trips linked to it lose the link."""
    svc.delete_request_to_book(get_session(), path.id)
    get_session().commit()
    return no_content()


@bp.put("/trips/<id>", responses={200: svc.TripRecord, 201: svc.TripRecord})
def put_trip(path: RecordPath, body: svc.TripBody) -> Response:
    """Create (201) or replace (200) a trip; its property, traveler and any offer or request must be known."""
    record = svc.TripRecord(id=path.id, **body.model_dump())
    return _saved(record, svc.upsert_trip(get_session(), record))


@bp.delete("/trips/<id>", responses={204: None, 404: None})
def delete_trip(path: RecordPath) -> Response:
    """Delete a trip; property threads linked to it lose the link."""
    svc.delete_trip(get_session(), path.id)
    get_session().commit()
    return no_content()
