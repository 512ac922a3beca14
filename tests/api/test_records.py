"""Platform record sync (SPEC §4): PUT / DELETE of users, properties, offers, requests to book and trips."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from messaging.store.db import session_scope
from messaging.store.models import (
    Conversation,
    ConversationParticipant,
    Message,
    Offer,
    Property,
    PropertyConversation,
    PropertyMessage,
    RequestToBook,
    Trip,
    User,
)

HOST = {"name": "Hana Host", "email": "hana@example.com", "phoneNumber": "+351900000000", "role": "host"}
TRAVELER = {"name": "Tomás", "email": "t@example.com", "phoneNumber": None, "role": "guest"}
PROPERTY = {"hostId": "h1", "name": "Casa Azul", "city": "Lisbon", "address": "Rua A 1",
            "timezone": "Europe/Lisbon", "checkInTime": "16:00", "checkOutTime": "11:00"}
OFFER = {"propertyId": 7, "travelerId": "t1", "checkIn": "2026-12-20", "checkOut": "2026-12-27",
         "totalPriceCents": 123400, "currency": "EUR", "status": "Pending", "expiresAt": "2026-12-01T09:30:00Z"}
REQUEST = {"propertyId": 7, "travelerId": "t1", "checkIn": "2026-12-20", "checkOut": "2026-12-27", "numGuests": 2,
           "totalPriceCents": 123400, "currency": "EUR", "status": "Pending", "createdAt": "2026-11-20T10:00:00Z"}
TRIP = {"propertyId": 7, "travelerId": "t1", "checkIn": "2026-12-20", "checkOut": "2026-12-27", "numGuests": 2,
        "status": "Booked", "offerId": 3, "requestToBookId": 4}

# The optional fields these bodies leave out, as a PUT's response shows them (null: unknown).
OPTIONAL_NULLS: dict[str, dict[str, Any]] = {
    "users": {"locale": None},
    "properties": dict.fromkeys(("maxGuests", "bedrooms", "bathrooms", "amenities", "petsAllowed", "smokingAllowed",
                                 "houseRules", "checkInInfo", "cancellationPolicy", "about")),
    "requests-to-book": {"resolvedAt": None},
    "trips": {"totalPriceCents": None, "currency": None},
}
KINDS = {
    "users": ("h1", HOST),
    "properties": (7, PROPERTY),
    "offers": (3, OFFER),
    "requests-to-book": (4, REQUEST),
    "trips": (5, TRIP),
}


@pytest.fixture
def service(auth: Any) -> dict[str, str]:
    return auth("platform", "service")


def put(client: Any, headers: dict[str, str], kind: str, ident: Any, body: dict[str, Any]) -> Any:
    return client.put(f"/v1/{kind}/{ident}", json=body, headers=headers)


def seed(client: Any, headers: dict[str, str], upto: str = "trips") -> None:
    """h1 hosts property 7; t1 has offer 3, request to book 4 and trip 5 there."""
    assert put(client, headers, "users", "t1", TRAVELER).status_code == 201
    for kind, (ident, body) in KINDS.items():
        r = put(client, headers, kind, ident, body)
        assert r.status_code == 201, r.json
        if kind == upto:
            return


def count(app: Any, model: Any, *where: Any) -> int:
    with app.app_context(), session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


# --- create and replace ---------------------------------------------------------------------------


def test_put_creates_then_replaces_each_kind(client, service):
    put(client, service, "users", "t1", TRAVELER)
    for kind, (ident, body) in KINDS.items():
        created = put(client, service, kind, ident, body)
        assert created.status_code == 201, (kind, created.json)
        defaults = OPTIONAL_NULLS.get(kind, {})
        assert created.json == {"id": ident, **defaults, **body}, kind
        replaced = put(client, service, kind, ident, body)
        assert replaced.status_code == 200, (kind, replaced.json)
        assert replaced.json == created.json


def test_replace_stores_the_new_values(client, app, service):
    seed(client, service, upto="offers")
    r = put(client, service, "offers", 3, {**OFFER, "status": "Accepted", "totalPriceCents": 99900,
                                           "expiresAt": "2026-12-02T10:00:00+02:00"})
    assert r.status_code == 200
    assert r.json["expiresAt"] == "2026-12-02T08:00:00Z"  # returned in UTC
    with app.app_context(), session_scope() as session:
        offer = session.get(Offer, 3)
        assert (offer.status, offer.total_price_cents, offer.currency) == ("Accepted", 99900, "EUR")
    r = put(client, service, "users", "h1", {"role": "admin"})
    assert r.status_code == 200
    assert r.json == {"id": "h1", "name": None, "email": None, "phoneNumber": None, "role": "admin", "locale": None}


def test_property_times_default_to_the_seed_defaults(client, app, service):
    put(client, service, "users", "h1", HOST)
    body = {k: v for k, v in PROPERTY.items() if k not in ("checkInTime", "checkOutTime", "city", "address")}
    r = put(client, service, "properties", 8, body)
    assert r.status_code == 201
    assert (r.json["checkInTime"], r.json["checkOutTime"]) == ("15:00", "10:00")
    with app.app_context(), session_scope() as session:
        stored = session.get(Property, 8)
        assert (stored.check_in_time.isoformat(), stored.timezone) == ("15:00:00", "Europe/Lisbon")


def test_request_to_book_resolved_at_and_trip_links_are_optional(client, app, service):
    seed(client, service, upto="requests-to-book")
    r = put(client, service, "requests-to-book", 4, {**REQUEST, "status": "Accepted",
                                                     "resolvedAt": "2026-11-21T12:00:00+00:00"})
    assert r.status_code == 200
    assert r.json["resolvedAt"] == "2026-11-21T12:00:00Z"
    bare = {k: v for k, v in TRIP.items() if k not in ("offerId", "requestToBookId")}
    r = put(client, service, "trips", 9, bare)
    assert r.status_code == 201
    assert (r.json["offerId"], r.json["requestToBookId"]) == (None, None)


# --- validation -----------------------------------------------------------------------------------

INVALID = [
    # (kind, id in the path, changes to the valid body, the field the 422 names)
    ("users", "x" * 256, {}, "id"),
    ("users", "h1", {"role": "owner"}, "role"),
    ("users", "h1", {"role": None}, "role"),
    ("users", "h1", {"name": "a\x00b"}, "name"),
    ("users", "h1", {"name": "n" * 256}, "name"),
    ("properties", 0, {}, "id"),
    ("properties", -3, {}, "id"),
    ("properties", "abc", {}, "id"),
    ("properties", 2**31, {}, "id"),
    ("properties", 7, {"hostId": ""}, "hostId"),
    ("properties", 7, {"hostId": "h" * 256}, "hostId"),
    ("properties", 7, {"name": ""}, "name"),
    ("properties", 7, {"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ("properties", 7, {"timezone": "../../etc/passwd"}, "timezone"),
    ("properties", 7, {"timezone": "localtime"}, "timezone"),
    ("properties", 7, {"checkInTime": "3pm"}, "checkInTime"),
    ("properties", 7, {"checkInTime": "24:00"}, "checkInTime"),
    ("properties", 7, {"checkOutTime": "10:60"}, "checkOutTime"),
    ("properties", 7, {"checkOutTime": "10:00:00"}, "checkOutTime"),
    ("offers", 3, {"propertyId": 0}, "propertyId"),
    ("offers", 3, {"propertyId": "7"}, "propertyId"),
    ("offers", 3, {"propertyId": 2**31}, "propertyId"),
    ("offers", 3, {"travelerId": ""}, "travelerId"),
    ("offers", 3, {"checkIn": "20/12/2026"}, "checkIn"),
    ("offers", 3, {"checkIn": "2026-02-30"}, "checkIn"),
    ("offers", 3, {"checkIn": "2026-12-20T00:00:00Z"}, "checkIn"),
    ("offers", 3, {"checkOut": "2026-12-20"}, "checkOut"),
    ("offers", 3, {"checkOut": "2026-12-19"}, "checkOut"),
    ("offers", 3, {"totalPriceCents": -1}, "totalPriceCents"),
    ("offers", 3, {"totalPriceCents": 12.5}, "totalPriceCents"),
    ("offers", 3, {"totalPriceCents": 2**63}, "totalPriceCents"),
    ("offers", 3, {"currency": "eur"}, "currency"),
    ("offers", 3, {"currency": "EURO"}, "currency"),
    ("offers", 3, {"status": "Open"}, "status"),
    ("offers", 3, {"status": "Booked"}, "status"),
    ("offers", 3, {"expiresAt": "2026-12-01T09:30:00"}, "expiresAt"),
    ("offers", 3, {"expiresAt": "2026-12-01"}, "expiresAt"),
    ("offers", 3, {"expiresAt": 1764581400}, "expiresAt"),
    ("offers", 3, {"expiresAt": None}, "expiresAt"),
    ("requests-to-book", 4, {"numGuests": 0}, "numGuests"),
    ("requests-to-book", 4, {"numGuests": True}, "numGuests"),
    ("requests-to-book", 4, {"status": "Cancelled"}, "status"),
    ("requests-to-book", 4, {"createdAt": "yesterday"}, "createdAt"),
    ("requests-to-book", 4, {"resolvedAt": "2026-11-21 12:00"}, "resolvedAt"),
    ("requests-to-book", 4, {"checkOut": "2026-12-01"}, "checkOut"),
    ("trips", 5, {"status": "Pending"}, "status"),
    ("trips", 5, {"numGuests": -2}, "numGuests"),
    ("trips", 5, {"offerId": 0}, "offerId"),
    ("trips", 5, {"requestToBookId": "4"}, "requestToBookId"),
    ("trips", 5, {"checkOut": "2026-12-20"}, "checkOut"),
]


@pytest.mark.parametrize(("kind", "ident", "changes", "field"), INVALID)
def test_invalid_records_are_422_naming_the_field(client, app, service, kind, ident, changes, field):
    seed(client, service)
    body = {**KINDS[kind][1], **changes}
    r = put(client, service, kind, ident, body)
    assert r.status_code == 422, r.json
    assert r.content_type == "application/problem+json"
    assert field in [e["field"] for e in r.json["errors"]], r.json


@pytest.mark.parametrize("kind", list(KINDS))
def test_missing_required_fields_are_named(client, service, kind):
    r = put(client, service, kind, KINDS[kind][0], {})
    assert r.status_code == 422
    required = {"users": {"role"}, "properties": {"hostId", "name", "timezone"},
                "offers": {"propertyId", "travelerId", "checkIn", "checkOut", "totalPriceCents", "currency",
                           "status", "expiresAt"},
                "requests-to-book": {"propertyId", "travelerId", "checkIn", "checkOut", "numGuests",
                                     "totalPriceCents", "currency", "status", "createdAt"},
                "trips": {"propertyId", "travelerId", "checkIn", "checkOut", "numGuests", "status"}}[kind]
    assert {e["field"] for e in r.json["errors"]} == required


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("extra", [{"colour": "blue"}, {"id": 1}, {"host_id": "h1"}])
def test_unknown_fields_are_422(client, service, kind, extra):
    seed(client, service)
    ident, body = KINDS[kind]
    r = put(client, service, kind, ident, {**body, **extra})
    assert r.status_code == 422
    assert next(iter(extra)) in [e["field"] for e in r.json["errors"]]


def test_malformed_json_is_400_and_a_non_object_422(client, service):
    r = client.put("/v1/users/h1", data=b"{nope", content_type="application/json", headers=service)
    assert r.status_code == 400
    r = client.put("/v1/users/h1", json=[HOST], headers=service)
    assert r.status_code == 422


def test_unknown_host_is_422_naming_host_id(client, app, service):
    r = put(client, service, "properties", 7, {**PROPERTY, "hostId": "h9"})
    assert r.status_code == 422
    assert r.json["errors"] == [{"field": "hostId", "message": "unknown user h9"}]
    assert count(app, Property) == 0


def test_unknown_property_and_traveler_are_both_named(client, app, service):
    for kind, (ident, body) in (("offers", KINDS["offers"]), ("requests-to-book", KINDS["requests-to-book"]),
                                ("trips", KINDS["trips"])):
        r = put(client, service, kind, ident, {**body, "propertyId": 70, "travelerId": "ghost",
                                               "offerId": None, "requestToBookId": None}
                if kind == "trips" else {**body, "propertyId": 70, "travelerId": "ghost"})
        assert r.status_code == 422, kind
        assert r.json["errors"] == [
            {"field": "propertyId", "message": "unknown property 70"},
            {"field": "travelerId", "message": "unknown user ghost"},
        ]


def test_trip_with_unknown_offer_or_request_is_422(client, app, service):
    seed(client, service, upto="properties")
    r = put(client, service, "trips", 5, TRIP)
    assert r.status_code == 422
    assert r.json["errors"] == [
        {"field": "offerId", "message": "unknown offer 3"},
        {"field": "requestToBookId", "message": "unknown request to book 4"},
    ]
    assert count(app, Trip) == 0


# --- who may call ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["guest", "host", "admin"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_only_the_service_role_may_sync(client, app, auth, service, role, kind):
    seed(client, service)
    ident, body = KINDS[kind]
    assert put(client, auth("u9", role), kind, ident, body).status_code == 403
    # Even an invalid body is refused for the role first.
    assert put(client, auth("u9", role), kind, ident, {"bogus": 1}).status_code == 403
    r = client.delete(f"/v1/{kind}/{ident}", headers=auth("u9", role))
    assert r.status_code == 403
    assert r.content_type == "application/problem+json"


@pytest.mark.parametrize("kind", list(KINDS))
def test_no_token_is_401(client, kind):
    ident, body = KINDS[kind]
    r = client.put(f"/v1/{kind}/{ident}", json=body)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.delete(f"/v1/{kind}/{ident}").status_code == 401


# --- delete ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_delete_is_204_then_404(client, service, kind):
    seed(client, service)
    ident = KINDS[kind][0]
    r = client.delete(f"/v1/{kind}/{ident}", headers=service)
    assert r.status_code == 204
    assert r.data == b""
    r = client.delete(f"/v1/{kind}/{ident}", headers=service)
    assert r.status_code == 404
    assert r.content_type == "application/problem+json"


def test_delete_unknown_ids_is_404_or_422(client, service):
    assert client.delete("/v1/users/nobody", headers=service).status_code == 404
    assert client.delete("/v1/trips/999", headers=service).status_code == 404
    assert client.delete("/v1/trips/0", headers=service).status_code == 422


def _chat(app: Any) -> dict[str, str]:
    """A conversation between t1 and h1 with a message each, and t1's thread on property 7 linked to
    offer 3, request 4 and trip 5, with a message each."""
    with app.app_context(), session_scope() as session:
        conversation = Conversation(name="stay")
        thread = PropertyConversation(traveler_id="t1", property_id=7, offer_id=3, request_to_book_id=4, trip_id=5)
        session.add_all([conversation, thread])
        session.flush()
        session.add_all([
            ConversationParticipant(conversation_id=conversation.id, user_id="t1"),
            ConversationParticipant(conversation_id=conversation.id, user_id="h1"),
            Message(conversation_id=conversation.id, user_id="t1", message="hello"),
            Message(conversation_id=conversation.id, user_id="h1", message="welcome"),
            PropertyMessage(conversation_id=thread.id, author_id="t1", message="is it quiet?"),
            PropertyMessage(conversation_id=thread.id, author_id="h1", message="very"),
        ])
        return {"conversation": conversation.id, "thread": thread.id}


def test_deleting_offer_request_and_trip_unlinks_the_property_thread(client, app, service):
    seed(client, service)
    ids = _chat(app)
    assert client.delete("/v1/offers/3", headers=service).status_code == 204
    with app.app_context(), session_scope() as session:
        thread = session.get(PropertyConversation, ids["thread"])
        assert (thread.offer_id, thread.request_to_book_id, thread.trip_id) == (None, 4, 5)
        assert session.get(Trip, 5).offer_id is None
    assert client.delete("/v1/requests-to-book/4", headers=service).status_code == 204
    assert client.delete("/v1/trips/5", headers=service).status_code == 204
    with app.app_context(), session_scope() as session:
        thread = session.get(PropertyConversation, ids["thread"])
        assert (thread.offer_id, thread.request_to_book_id, thread.trip_id) == (None, None, None)
    assert count(app, PropertyMessage) == 2


def test_deleting_a_traveler_follows_the_seed_cascades(client, app, service):
    seed(client, service)
    ids = _chat(app)
    assert client.delete("/v1/users/t1", headers=service).status_code == 204
    with app.app_context(), session_scope() as session:
        assert session.get(User, "t1") is None
        messages = session.scalars(select(Message).order_by(Message.message)).all()
        # The traveler's message stays, authorless; the host's is untouched.
        assert [(m.message, m.user_id) for m in messages] == [("hello", None), ("welcome", "h1")]
        participants = session.scalars(select(ConversationParticipant.user_id)).all()
        assert participants == ["h1"]
        assert session.get(Conversation, ids["conversation"]) is not None
        # Their property thread goes (as traveler), with every message in it.
        assert session.get(PropertyConversation, ids["thread"]) is None
    assert count(app, PropertyMessage) == 0
    assert count(app, Offer) == count(app, RequestToBook) == count(app, Trip) == 0
    assert count(app, Property) == 1


def test_deleting_a_host_removes_their_properties_and_messages(client, app, service):
    seed(client, service)
    ids = _chat(app)
    assert client.delete("/v1/users/h1", headers=service).status_code == 204
    assert count(app, Property) == count(app, Offer) == count(app, Trip) == 0
    assert count(app, PropertyConversation) == count(app, PropertyMessage) == 0
    assert count(app, Message, Message.user_id.is_(None)) == 1
    assert count(app, ConversationParticipant, ConversationParticipant.conversation_id == ids["conversation"]) == 1


def test_deleting_a_property_removes_its_records_and_threads(client, app, service):
    seed(client, service)
    _chat(app)
    assert client.delete("/v1/properties/7", headers=service).status_code == 204
    assert count(app, Offer) == count(app, RequestToBook) == count(app, Trip) == 0
    assert count(app, PropertyConversation) == count(app, PropertyMessage) == 0
    assert count(app, User) == 2
    assert count(app, Message) == 2


# --- the API document -----------------------------------------------------------------------------


def test_openapi_describes_the_record_bodies(client):
    doc = client.get("/openapi.json").json
    put_offer = doc["paths"]["/v1/offers/{id}"]["put"]
    assert put_offer["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/OfferBody")
    assert put_offer["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/OfferRecord")
    schemas = doc["components"]["schemas"]
    for name in ("UserBody", "UserRecord", "PropertyBody", "PropertyRecord", "OfferBody", "OfferRecord",
                 "RequestToBookBody", "RequestToBookRecord", "TripBody", "TripRecord"):
        assert name in schemas
    assert "id" not in schemas["TripBody"]["properties"]
    assert "id" in schemas["TripRecord"]["required"]
    assert schemas["OfferBody"]["additionalProperties"] is False
    assert "delete" in doc["paths"]["/v1/requests-to-book/{id}"]
