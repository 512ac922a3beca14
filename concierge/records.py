"""The platform's records mirrored here (SPEC §4): their validated shapes, create-or-replace and delete.

Each record has two shapes: the PUT body (``UserBody`` …: every field but ``id``, which is in the
path) and the embedded form carrying ``id`` (``UserRecord`` …) that events and responses use. The
services take a Session and the embedded form; the caller commits. Deletes leave the cascades of
SPEC §1 to the database's foreign keys.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Set as AbstractSet
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from messaging.chat.users import known_users
from messaging.errors import NotFound, Unprocessable
from messaging.schemas import ApiModel, documented
from messaging.store.models import (
    ConciergeThread,
    ConversationParticipant,
    ConversationStats,
    DeletedUser,
    Message,
    Offer,
    Property,
    ReadCursor,
    RequestToBook,
    Trip,
    User,
)
from messaging.store.upsert import insert_ignore, upsert

INT32_MAX = 2**31 - 1  # the mirrored ids and counts are PostgreSQL integers
INT64_MAX = 2**63 - 1

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})", re.IGNORECASE)
_CLOCK = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
_CURRENCY = re.compile(r"[A-Z]{3}")
_LOCALE = re.compile(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}")
# Present in some systems' zoneinfo directories but not IANA zone names.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


# --- field types ----------------------------------------------------------------------------------


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL: refuse it here rather than fail in the database.
    if "\x00" in value:
        raise PydanticCustomError("nul_character", "must not contain NUL characters")
    return value


def _iso_date(value: Any) -> Any:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise PydanticCustomError("date_format", "must be a date YYYY-MM-DD")
    return value


def _iso_datetime(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or not _DATETIME.fullmatch(value):
        raise PydanticCustomError(
            "datetime_format", "must be an ISO 8601 time with an offset, e.g. 2026-12-01T09:30:00Z"
        )
    return value


def _clock_time(value: str) -> str:
    if not _CLOCK.fullmatch(value):
        raise PydanticCustomError("time_format", "must be a time HH:MM (00:00–23:59)")
    return value


def _currency_code(value: str) -> str:
    if not _CURRENCY.fullmatch(value):
        raise PydanticCustomError("currency", "must be a currency code of 3 uppercase letters")
    return value


def _locale_tag(value: str) -> str:
    if not _LOCALE.fullmatch(value) or len(value) > 35:
        raise PydanticCustomError("locale", "must be a BCP 47 language tag such as pt-PT")
    return value


def _check_out_after_check_in(value: dt.date, info: ValidationInfo) -> dt.date:
    check_in = info.data.get("check_in")
    if check_in is not None and value <= check_in:
        raise PydanticCustomError("date_order", "must be after checkIn")
    return value


def _to_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC)


@cache
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) - _NOT_ZONES


def _iana_zone(value: str) -> str:
    if value not in _known_zones():
        raise PydanticCustomError("timezone", "unknown IANA time zone {zone}", {"zone": repr(value)})
    return value


UserId = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_no_nul)]
RecordId = Annotated[int, Field(strict=True, gt=0, le=INT32_MAX)]
Text255 = Annotated[str, Field(max_length=255), AfterValidator(_no_nul)]
Name = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_no_nul)]
Address = Annotated[str, Field(max_length=1000), AfterValidator(_no_nul)]
Email = Annotated[str, Field(max_length=320), AfterValidator(_no_nul)]
Phone = Annotated[str, Field(max_length=64), AfterValidator(_no_nul)]
IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]
IsoDateTime = Annotated[dt.datetime, BeforeValidator(_iso_datetime), AfterValidator(_to_utc)]
ClockTime = Annotated[
    str,
    Field(examples=["15:00"], description="HH:MM, 24-hour", json_schema_extra={"pattern": f"^{_CLOCK.pattern}$"}),
    AfterValidator(_clock_time),
]
TimeZoneName = Annotated[
    str, Field(min_length=1, max_length=64, examples=["Europe/Lisbon"]), AfterValidator(_iana_zone)
]
Currency = Annotated[
    str,
    Field(examples=["EUR"], description="ISO 4217, uppercase", json_schema_extra={"pattern": "^[A-Z]{3}$"}),
    AfterValidator(_currency_code),
]
PriceCents = Annotated[int, Field(strict=True, ge=0, le=INT64_MAX)]
NumGuests = Annotated[int, Field(strict=True, ge=1, le=INT32_MAX)]
LocaleTag = Annotated[
    str,
    Field(examples=["pt-PT"], description="BCP 47 language tag", json_schema_extra={"pattern": _LOCALE.pattern}),
    AfterValidator(_locale_tag),
]
Count = Annotated[int, Field(strict=True, ge=0, le=INT32_MAX)]
HalfUnits = Annotated[float, Field(ge=0, le=1000, description="e.g. 1.5")]
LongText = Annotated[str, Field(max_length=10_000), AfterValidator(_no_nul)]
Amenity = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_no_nul)]
Amenities = Annotated[list[Amenity], Field(max_length=200, examples=[["Wifi", "Washer", "Street parking"]])]
DealStatus = Literal["Pending", "Accepted", "Withdrawn", "Denied", "Expired"]
TripStatus = Literal["Booked", "Needs attention", "Cancelled"]


# --- examples -------------------------------------------------------------------------------------

# The API document's examples of each record, as events carry them (with ``id``): one consistent set — a host,
# their property, and a traveler's offer, request to book and trip there — that refers only to itself. The PUT
# bodies' examples are the same without ``id``; concierge.events builds its event examples from them.
EXAMPLE_HOST: dict[str, Any] = {
    "id": "host-1", "name": "Helena Costa", "email": "helena@example.com", "phoneNumber": "+351 912 345 678",
    "role": "host",
}
EXAMPLE_TRAVELER: dict[str, Any] = {
    "id": "trav-1", "name": "Tomás Silva", "email": "tomas@example.com", "phoneNumber": "+351 913 456 789",
    "role": "guest", "locale": "pt-PT",
}
EXAMPLE_PROPERTY: dict[str, Any] = {
    "id": 7, "hostId": "host-1", "name": "Casa Azul", "city": "Lisbon", "address": "Rua das Flores 12, Lisboa",
    "timezone": "Europe/Lisbon", "checkInTime": "16:00", "checkOutTime": "11:00",
    "maxGuests": 4, "bedrooms": 2, "bathrooms": 1.5,
    "amenities": ["Wifi", "Washer", "Air conditioning", "Street parking"],
    "petsAllowed": False, "smokingAllowed": False, "houseRules": "Quiet hours from 22:00 to 08:00.",
    "checkInInfo": "Key box left of the door, code 4821.",
    "cancellationPolicy": "Full refund up to 14 days before check-in, 50% up to 7 days before.",
    "about": "A bright flat in Alfama with a view of the river.",
}
EXAMPLE_OFFER: dict[str, Any] = {
    "id": 70, "propertyId": 7, "travelerId": "trav-1", "checkIn": "2027-03-12", "checkOut": "2027-03-15",
    "totalPriceCents": 123456, "currency": "EUR", "status": "Pending", "expiresAt": "2027-03-02T18:00:00Z",
}
EXAMPLE_REQUEST_TO_BOOK: dict[str, Any] = {
    "id": 71, "propertyId": 7, "travelerId": "trav-1", "checkIn": "2027-03-12", "checkOut": "2027-03-15",
    "numGuests": 3, "totalPriceCents": 123456, "currency": "EUR", "status": "Pending",
    "createdAt": "2027-03-01T09:00:00Z",
}
EXAMPLE_TRIP: dict[str, Any] = {
    "id": 72, "propertyId": 7, "travelerId": "trav-1", "checkIn": "2027-03-12", "checkOut": "2027-03-15",
    "numGuests": 3, "status": "Booked", "totalPriceCents": 123456, "currency": "EUR",
}


def _without_id(record: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in record.items() if name != "id"}


# --- record bodies (PUT) and records (with id) ----------------------------------------------------


class _WithUserId(ApiModel):
    id: UserId


class _WithRecordId(ApiModel):
    id: RecordId


class UserBody(ApiModel):
    model_config = documented(_without_id(EXAMPLE_TRAVELER))

    name: Text255 | None = None
    email: Email | None = None
    phone_number: Phone | None = None
    role: Literal["guest", "host", "admin"]
    locale: LocaleTag | None = None


class PropertyBody(ApiModel):
    model_config = documented(_without_id(EXAMPLE_PROPERTY))

    host_id: UserId
    name: Name
    city: Text255 | None = None
    address: Address | None = None
    timezone: TimeZoneName
    check_in_time: ClockTime = "15:00"
    check_out_time: ClockTime = "10:00"
    # The listing's optional facts (SPEC §4): absent or null is unknown, and the concierge says so.
    max_guests: Count | None = None
    bedrooms: Count | None = None
    bathrooms: HalfUnits | None = None
    amenities: Amenities | None = None
    pets_allowed: bool | None = None
    smoking_allowed: bool | None = None
    house_rules: LongText | None = None
    check_in_info: LongText | None = Field(
        default=None, description="How to get in (key box, codes): the concierge tells only the trip's traveler, "
        "from 72 hours before check-in until check-out")
    cancellation_policy: LongText | None = None
    about: LongText | None = None


class OfferBody(ApiModel):
    model_config = documented(_without_id(EXAMPLE_OFFER))

    property_id: RecordId
    traveler_id: UserId
    check_in: IsoDate
    check_out: IsoDate
    total_price_cents: PriceCents
    currency: Currency
    status: DealStatus
    expires_at: IsoDateTime

    _dates_in_order = field_validator("check_out")(_check_out_after_check_in)


class RequestToBookBody(ApiModel):
    model_config = documented(_without_id(EXAMPLE_REQUEST_TO_BOOK))

    property_id: RecordId
    traveler_id: UserId
    check_in: IsoDate
    check_out: IsoDate
    num_guests: NumGuests
    total_price_cents: PriceCents
    currency: Currency
    status: DealStatus
    created_at: IsoDateTime
    resolved_at: IsoDateTime | None = None

    _dates_in_order = field_validator("check_out")(_check_out_after_check_in)


class TripBody(ApiModel):
    model_config = documented(_without_id(EXAMPLE_TRIP))

    property_id: RecordId
    traveler_id: UserId
    check_in: IsoDate
    check_out: IsoDate
    num_guests: NumGuests
    status: TripStatus
    offer_id: RecordId | None = None
    request_to_book_id: RecordId | None = None
    total_price_cents: PriceCents | None = Field(default=None, description="What the traveler paid; with `currency`")
    currency: Currency | None = None

    _dates_in_order = field_validator("check_out")(_check_out_after_check_in)

    @model_validator(mode="after")
    def _price_with_currency(self) -> TripBody:
        if self.total_price_cents is not None and self.currency is None:
            raise PydanticCustomError("currency_missing", "currency is required with totalPriceCents")
        return self


# The base order puts ``id`` first in the documents and the JSON.
class UserRecord(UserBody, _WithUserId):
    model_config = documented(EXAMPLE_TRAVELER)


class PropertyRecord(PropertyBody, _WithRecordId):
    model_config = documented(EXAMPLE_PROPERTY)


class OfferRecord(OfferBody, _WithRecordId):
    model_config = documented(EXAMPLE_OFFER)


class RequestToBookRecord(RequestToBookBody, _WithRecordId):
    model_config = documented(EXAMPLE_REQUEST_TO_BOOK)


class TripRecord(TripBody, _WithRecordId):
    model_config = documented(EXAMPLE_TRIP)


# --- services -------------------------------------------------------------------------------------


def stored_record(session: Session, record_type: type[AnyRecord], record_id: Any) -> dict[str, Any]:
    """A record as stored here, in the shape the platform PUTs it (camelCase, dates and times as text); 404 for
    one this service does not have (a deleted user included)."""
    model, what = _STORED[record_type]
    row = session.get(model, record_id)
    if row is None:
        raise NotFound(f"No such {what}.")
    stored: dict[str, Any] = {}
    for name, field in record_type.model_fields.items():
        value = getattr(row, name, None)
        if isinstance(value, dt.time):
            value = value.strftime("%H:%M")
        elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            value = value.isoformat()
        stored[field.alias or name] = value
    return stored


def _clock(value: str) -> dt.time:
    return dt.time.fromisoformat(value)


# Records known to exist (upserted earlier in the same transaction), whose references need no lookup.
Known = AbstractSet[tuple[type[Any], Any]]
# A reference to look up: (model, id, field, what it is), e.g. (User, "u1", "hostId", "user").
Check = tuple[type[Any], Any, str, str]
AnyRecord = UserRecord | PropertyRecord | OfferRecord | RequestToBookRecord | TripRecord


# The optional fields SPEC §4 adds to the seed's records (the listing's facts, the trip's price, the user's locale).
OPTIONAL_FACTS: dict[type[Any], frozenset[str]] = {
    User: frozenset({"locale"}),
    Property: frozenset({"max_guests", "bedrooms", "bathrooms", "amenities", "pets_allowed", "smoking_allowed",
                         "house_rules", "check_in_info", "cancellation_policy", "about"}),
    Trip: frozenset({"total_price_cents", "currency"}),
}


def _written(model: type[Any], values: dict[str, Any], replace: bool) -> dict[str, Any]:
    if replace:
        return values
    optional = OPTIONAL_FACTS.get(model, frozenset())
    return {name: value for name, value in values.items() if value is not None or name not in optional}


def row_of(record: AnyRecord, *, replace: bool = False) -> tuple[type[Any], dict[str, Any], list[Check]]:
    """What upserting a record writes: its model, the column values, and the references it must find.

    ``replace`` (a PUT) writes every field, a null one included; otherwise (a record an event carries) an optional
    fact (:data:`OPTIONAL_FACTS`) the record leaves null keeps the value stored, so an event about a booking need
    not repeat the listing."""
    if isinstance(record, UserRecord):
        values = record.model_dump(include={"id", "name", "email", "phone_number", "role", "locale"})
        return User, _written(User, values, replace), []
    if isinstance(record, PropertyRecord):
        values = record.model_dump()
        values["check_in_time"] = _clock(record.check_in_time)
        values["check_out_time"] = _clock(record.check_out_time)
        return Property, _written(Property, values, replace), [(User, record.host_id, "hostId", "user")]
    checks: list[Check] = [
        (Property, record.property_id, "propertyId", "property"),
        (User, record.traveler_id, "travelerId", "user"),
    ]
    if isinstance(record, OfferRecord):
        return Offer, record.model_dump(), checks
    if isinstance(record, RequestToBookRecord):
        return RequestToBook, record.model_dump(), checks
    checks += [
        (Offer, record.offer_id, "offerId", "offer"),
        (RequestToBook, record.request_to_book_id, "requestToBookId", "request to book"),
    ]
    return Trip, _written(Trip, record.model_dump(), replace), checks


def unresolved(checks: list[Check], prefix: str, known: Known = frozenset()) -> list[tuple[Check, str]]:
    """The checks still to look up (not absent, not among the records known to exist), with their field."""
    return [(c, prefix + c[2]) for c in checks if c[1] is not None and (c[0], c[1]) not in known]


def missing_references(missing: list[tuple[Check, str]]) -> Unprocessable:
    """422 naming each reference (its field) that points at a record we do not have."""
    errors = [{"field": field, "message": f"unknown {what} {ident}"} for (_m, ident, _f, what), field in missing]
    return Unprocessable("; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors)


def require(session: Session, lookups: list[tuple[Check, str]]) -> None:
    missing = [
        (check, field) for check, field in lookups
        if session.execute(select(check[0].id).where(check[0].id == check[1])).first() is None
    ]
    if missing:
        raise missing_references(missing)


def _upsert(session: Session, record: AnyRecord) -> bool:
    model, values, checks = row_of(record, replace=True)
    require(session, unresolved(checks, ""))
    return upsert(session, model, values, ["id"])


def upsert_user(session: Session, record: UserRecord) -> bool:
    """Create or replace a user; True when created. ``created_at`` of an existing user is kept. A user the
    platform puts back is no longer deleted."""
    forget_deletions(session, [record.id])
    return _upsert(session, record)


def forget_deletions(session: Session, user_ids: list[str]) -> None:
    session.execute(delete(DeletedUser).where(DeletedUser.user_id.in_(user_ids)))


def upsert_property(session: Session, record: PropertyRecord) -> bool:
    """Create or replace a property; its host must be a known user (422 naming ``hostId``)."""
    return _upsert(session, record)


def upsert_offer(session: Session, record: OfferRecord) -> bool:
    return _upsert(session, record)


def upsert_request_to_book(session: Session, record: RequestToBookRecord) -> bool:
    return _upsert(session, record)


def upsert_trip(session: Session, record: TripRecord) -> bool:
    return _upsert(session, record)


def _delete(session: Session, model: Any, ident: Any, what: str) -> None:
    # A bulk DELETE: the foreign keys' ON DELETE rules carry out SPEC §1's cascades.
    result = session.execute(delete(model).where(model.id == ident))
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"There is no {what} {ident!r}.")


def delete_user(session: Session, user_id: str) -> None:
    """Delete a user: their messages keep their text with ``user_id`` null, their participations,
    property conversations (as traveler), property messages and hosted properties go. Their tokens are
    refused from now on (``deleted_users``). Their concierge conversation and offer conversations stay, as
    transcripts for the admins, with no user (migration 0013).

    The deletion locks their concierge thread, read cursors, inbox entries and messages and, through its
    triggers, the inbox entries whose last message is theirs, in no order it chooses. So it first takes them in
    the order every writer does (migration 0009): their concierge thread (the bot's answer and an admin's reply
    lock it before writing there), their cursors, their messages (a read marking one read now waits before
    locking any entry), their conversations' counters (a send there now waits before locking any entry)."""
    mine = select(ConversationParticipant.conversation_id).where(ConversationParticipant.user_id == user_id)
    for lock in (
        select(ConciergeThread.conversation_id).where(ConciergeThread.user_id == user_id),
        select(ReadCursor.conversation_id)
        .where(ReadCursor.user_id == user_id, ReadCursor.conversation_id.in_(mine))
        .order_by(ReadCursor.conversation_id),
        select(Message.id).where(Message.user_id == user_id),
        select(ConversationStats.conversation_id)
        .where(ConversationStats.conversation_id.in_(mine))
        .order_by(ConversationStats.conversation_id),
    ):
        session.execute(lock.with_for_update())
    _delete(session, User, user_id, "user")
    insert_ignore(session, DeletedUser, {"user_id": user_id})
    known_users().discard(user_id)


def delete_property(session: Session, property_id: int) -> None:
    _delete(session, Property, property_id, "property")


def delete_offer(session: Session, offer_id: int) -> None:
    _delete(session, Offer, offer_id, "offer")


def delete_request_to_book(session: Session, request_to_book_id: int) -> None:
    _delete(session, RequestToBook, request_to_book_id, "request to book")


def delete_trip(session: Session, trip_id: int) -> None:
    _delete(session, Trip, trip_id, "trip")


# Each record type's table, and what a 404 calls it.
_STORED: dict[type[Any], tuple[type[Any], str]] = {
    UserRecord: (User, "user"),
    PropertyRecord: (Property, "property"),
    OfferRecord: (Offer, "offer"),
    RequestToBookRecord: (RequestToBook, "request to book"),
    TripRecord: (Trip, "trip"),
}
# The records an event's data may carry, by key, and their type.
_CARRIED: dict[str, type[Any]] = {
    "traveler": UserRecord, "host": UserRecord, "property": PropertyRecord, "offer": OfferRecord,
    "requestToBook": RequestToBookRecord, "trip": TripRecord,
}


def current_records(session: Session, data: dict[str, Any]) -> dict[str, Any]:
    """An event's ``data`` with each record it carries replaced by the record as stored now (the platform may
    have corrected it with a PUT since), so that processing it again reads the correction. A record no longer
    stored, or carried without a usable id, is left as the event carried it."""
    current = dict(data)
    for key, record_type in _CARRIED.items():
        carried = data.get(key)
        if not isinstance(carried, dict) or not isinstance(carried.get("id"), (str, int)):
            continue
        try:
            current[key] = stored_record(session, record_type, carried["id"])
        except NotFound:
            continue
    return current

