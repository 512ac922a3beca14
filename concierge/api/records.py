"""HTTP: the platform keeps its users, properties, offers, requests to book and trips in sync (service role)."""

from __future__ import annotations

from flask import Response
from pydantic import Field

from concierge import records as svc
from messaging.api.http import api_blueprint, json_response, no_content, only_roles
from messaging.chat.users import known_users
from messaging.schemas import ApiModel
from messaging.store.db import get_session, read_session

bp = api_blueprint(
    "records",
    __name__,
    "Platform records",
    "The platform's records mirrored here: create or replace (PUT), delete with the cascades of SPEC §1",
    roles=frozenset({"service", "admin"}),  # admins read records; only the platform writes them
)


class UserPath(ApiModel):
    id: svc.UserId


class RecordPath(ApiModel):
    id: int = Field(gt=0, le=svc.INT32_MAX)


def _saved(record: ApiModel, created: bool) -> Response:
    get_session().commit()
    return json_response(record, 201 if created else 200)


@bp.put("/users/<id>", responses={200: svc.UserRecord, 201: svc.UserRecord})
@only_roles("service")
def put_user(path: UserPath, body: svc.UserBody) -> Response:
    """Create (201) or replace (200) a user.

    The platform's user `id`, mirrored here (users are also created from their first token's claims). A user
    the platform deleted is put back: their tokens are accepted again.

    **Who may call it:** the platform, with a `service` token (any other role: 403).

    **Errors:** 422 for a missing, invalid or unknown field.
    """
    record = svc.UserRecord(id=path.id, **body.model_dump())
    return _saved(record, svc.upsert_user(get_session(), record))


@bp.delete("/users/<id>", responses={204: None, 404: None})
@only_roles("service")
def delete_user(path: UserPath) -> Response:
    """Delete a user (204).

    Their messages keep their text with no author (shown as `senderType` `deleted`); their participations,
    property threads (as traveler), property messages and hosted properties go. Their tokens are refused (401)
    from then on, and their open live-update streams end.

    **Who may call it:** the platform, with a `service` token (any other role: 403).

    **Errors:** 404 for an unknown user.
    """
    svc.delete_user(get_session(), path.id)
    known_users().discard(path.id)
    get_session().commit()
    return no_content()


@bp.put("/properties/<id>", responses={200: svc.PropertyRecord, 201: svc.PropertyRecord})
@only_roles("service")
def put_property(path: RecordPath, body: svc.PropertyBody) -> Response:
    """Create (201) or replace (200) a property.

    The facts the concierge tells travelers (address, time zone, check-in and check-out times) come from here.

    **Who may call it:** the platform, with a `service` token (any other role: 403).

    **Errors:** 422 for a missing, invalid or unknown field (an unknown IANA `timezone`, a time not HH:MM), or a
    `hostId` the service does not know (named in `errors`).
    """
    record = svc.PropertyRecord(id=path.id, **body.model_dump())
    return _saved(record, svc.upsert_property(get_session(), record))


@bp.delete("/properties/<id>", responses={204: None, 404: None})
@only_roles("service")
def delete_property(path: RecordPath) -> Response:
    """Delete a property (204), with its offers, requests to book, trips and property threads.

    **Who may call it:** the platform, with a `service` token (any other role: 403).

    **Errors:** 404 for an unknown property.
    """
    svc.delete_property(get_session(), path.id)
    get_session().commit()
    return no_content()


@bp.put("/offers/<id>", responses={200: svc.OfferRecord, 201: svc.OfferRecord})
@only_roles("service")
def put_offer(path: RecordPath, body: svc.OfferBody) -> Response:
    """Create (201) or replace (200) an offer.

    **Who may call it:** the platform, with a `service` token (any other role: 403).

    **Errors:** 422 for a missing, invalid or unknown field (`checkOut` not after `checkIn`, a currency not
    3 uppercase letters), or a `propertyId` or `travelerId` the service does not know (each named in `errors`).
    """
    record = svc.OfferRecord(id=path.id, **body.model_dump())
    return _saved(record, svc.upsert_offer(get_session(), record))


@bp.delete("/offers/<id>", responses={204: None, 404: None})
@only_roles("service")
def delete_offer(path: RecordPath) -> Response:
    """Delete an offer (204); property threads and trips linked to it keep going without the link.

    **Who may call it:** the platform, with a `service` token (any other role: 403).

    **Errors:** 404 for an unknown offer.
    """
    svc.delete_offer(get_session(), path.id)
    get_session().commit()
    return no_content()


@bp.put("/requests-to-book/<id>", responses={200: svc.RequestToBookRecord, 201: svc.RequestToBookRecord})
@only_roles("service")
def put_request_to_book(path: RecordPath, body: svc.RequestToBookBody) -> Response:
    """Create (201) or replace (200) a request to book.

    **Who may call it:** the platform, with a `service` token (any other role: 403).

    **Errors:** 422 for a missing, invalid or unknown field (`checkOut` not after `checkIn`, fewer than 1
    guest), or a `propertyId` or `travelerId` the service does not know (each named in `errors`).
    """
    record = svc.RequestToBookRecord(id=path.id, **body.model_dump())
    return _saved(record, svc.upsert_request_to_book(get_session(), record))


@bp.delete("/requests-to-book/<id>", responses={204: None, 404: None})
@only_roles("service")
def delete_request_to_book(path: RecordPath) -> Response:
    """Delete a request to book (204); property threads and trips linked to it lose the link.

    **Who may call it:** the platform, with a `service` token (any other role: 403).

    **Errors:** 404 for an unknown request to book.
    """
    svc.delete_request_to_book(get_session(), path.id)
    get_session().commit()
    return no_content()


@bp.put("/trips/<id>", responses={200: svc.TripRecord, 201: svc.TripRecord})
@only_roles("service")
def put_trip(path: RecordPath, body: svc.TripBody) -> Response:
    """Create (201) or replace (200) a trip.

    `offerId` and `requestToBookId`, when given, link the trip to the offer or request it came from.

    **Who may call it:** the platform, with a `service` token (any other role: 403).

    **Errors:** 422 for a missing, invalid or unknown field (`checkOut` not after `checkIn`, fewer than 1
    guest), or a `propertyId`, `travelerId`, `offerId` or `requestToBookId` the service does not know (each
    named in `errors`).
    """
    record = svc.TripRecord(id=path.id, **body.model_dump())
    return _saved(record, svc.upsert_trip(get_session(), record))


@bp.delete("/trips/<id>", responses={204: None, 404: None})
@only_roles("service")
def delete_trip(path: RecordPath) -> Response:
    """Delete a trip (204); property threads linked to it lose the link.

    **Who may call it:** the platform, with a `service` token (any other role: 403).

    **Errors:** 404 for an unknown trip.
    """
    svc.delete_trip(get_session(), path.id)
    get_session().commit()
    return no_content()


@bp.get("/users/<id>", responses={200: svc.UserRecord})
def get_user(path: UserPath) -> Response:
    """Read an user as stored here.

    What the last PUT stored (or an event carried), in the shape the platform PUTs it, with its `id`.

    **Who may call it:** the platform (`service` tokens) and admins (any other role: 403).

    **Errors:** 404 for an user the service does not have.
    """
    return json_response(svc.stored_record(read_session(), svc.UserRecord, path.id))


@bp.get("/properties/<id>", responses={200: svc.PropertyRecord})
def get_property(path: RecordPath) -> Response:
    """Read a property as stored here.

    What the last PUT stored (or an event carried), in the shape the platform PUTs it, with its `id`.

    **Who may call it:** the platform (`service` tokens) and admins (any other role: 403).

    **Errors:** 404 for a property the service does not have.
    """
    return json_response(svc.stored_record(read_session(), svc.PropertyRecord, path.id))


@bp.get("/offers/<id>", responses={200: svc.OfferRecord})
def get_offer(path: RecordPath) -> Response:
    """Read an offer as stored here.

    What the last PUT stored (or an event carried), in the shape the platform PUTs it, with its `id`.

    **Who may call it:** the platform (`service` tokens) and admins (any other role: 403).

    **Errors:** 404 for an offer the service does not have.
    """
    return json_response(svc.stored_record(read_session(), svc.OfferRecord, path.id))


@bp.get("/requests-to-book/<id>", responses={200: svc.RequestToBookRecord})
def get_request_to_book(path: RecordPath) -> Response:
    """Read a request to book as stored here.

    What the last PUT stored (or an event carried), in the shape the platform PUTs it, with its `id`.

    **Who may call it:** the platform (`service` tokens) and admins (any other role: 403).

    **Errors:** 404 for a request to book the service does not have.
    """
    return json_response(svc.stored_record(read_session(), svc.RequestToBookRecord, path.id))


@bp.get("/trips/<id>", responses={200: svc.TripRecord})
def get_trip(path: RecordPath) -> Response:
    """Read a trip as stored here.

    What the last PUT stored (or an event carried), in the shape the platform PUTs it, with its `id`.

    **Who may call it:** the platform (`service` tokens) and admins (any other role: 403).

    **Errors:** 404 for a trip the service does not have.
    """
    return json_response(svc.stored_record(read_session(), svc.TripRecord, path.id))
