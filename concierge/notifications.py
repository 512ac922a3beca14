"""Notification rules (SPEC §5.1): who hears about each platform event, and what they are told.

``plan_notifications`` turns an event's records into one text per recipient. Every figure comes
from the records; a record that is missing or does not add up raises :class:`EventDataError`,
which ends the event as ``failed`` with that message instead of writing anything wrong. Every notice is
judged and worded at the moment it is written, never at the event's ``occurredAt``: a worker's backlog
must not make it state a past deadline as ahead.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from concierge import formatting as fmt
from concierge.records import OfferRecord, PropertyRecord, RequestToBookRecord, TripRecord, UserRecord

Target = Literal["offer", "concierge"]

OFFER_EVENTS = ("offer.created", "offer.expiring", "offer.expired", "offer.withdrawn", "offer.accepted")
REQUEST_EVENTS = (
    "request_to_book.created",
    "request_to_book.approved",
    "request_to_book.denied",
    "request_to_book.withdrawn",
    "request_to_book.expired",
)
TRIP_EVENTS = ("trip.booked", "trip.check_in_reminder", "trip.check_out_reminder", "trip.cancelled")
EVENT_TYPES = OFFER_EVENTS + REQUEST_EVENTS + TRIP_EVENTS

# Which record an event is about, by the prefix of its type.
SUBJECT_KEY = {"offer": "offer", "request_to_book": "requestToBook", "trip": "trip"}
HOST_ANSWER_WINDOW = dt.timedelta(hours=24)


class EventDataError(Exception):
    """The event's records are missing or inconsistent; the message says which, for admins."""


class EventNotApplicable(Exception):
    """The event no longer applies (a reminder for a cancelled trip…): it ends as ``skipped``."""


@dataclass(frozen=True, slots=True)
class Notification:
    recipient_id: str
    target: Target  # the offer's conversation, or the recipient's concierge conversation
    text: str
    offer_id: int | None = None


@dataclass(frozen=True, slots=True)
class EventFacts:
    """The validated records an event is about, plus names looked up for people it mentions."""

    type: str
    occurred_at: dt.datetime
    property: PropertyRecord
    traveler: UserRecord | None
    host: UserRecord | None
    offer: OfferRecord | None = None
    request: RequestToBookRecord | None = None
    trip: TripRecord | None = None


def subject_key(event_type: str) -> str:
    return SUBJECT_KEY[event_type.split(".", 1)[0]]


def parse_facts(event_type: str, occurred_at: dt.datetime, data: dict[str, Any]) -> EventFacts:
    """Validate the records strictly (dates in order, consistent ids); EventDataError otherwise."""
    key = subject_key(event_type)
    if not isinstance(data.get(key), dict):
        raise EventDataError(f"{event_type} carries no {key} record")
    if not isinstance(data.get("property"), dict):
        raise EventDataError(f"the {key} record has no property (data.property is missing)")
    try:
        prop = PropertyRecord.model_validate(data["property"])
        traveler = UserRecord.model_validate(data["traveler"]) if data.get("traveler") else None
        host = UserRecord.model_validate(data["host"]) if data.get("host") else None
        subject: OfferRecord | RequestToBookRecord | TripRecord
        if key == "offer":
            subject = OfferRecord.model_validate(data[key])
        elif key == "requestToBook":
            subject = RequestToBookRecord.model_validate(data[key])
        else:
            subject = TripRecord.model_validate(data[key])
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise EventDataError(f"invalid {key} data: {where}: {first['msg']}") from exc
    if subject.property_id != prop.id:
        raise EventDataError(f"the {key} is for property {subject.property_id} but data.property is {prop.id}")
    if traveler is not None and subject.traveler_id != traveler.id:
        raise EventDataError(f"the {key} is for traveler {subject.traveler_id} but data.traveler is {traveler.id}")
    if host is not None and host.id != prop.host_id:
        raise EventDataError(f"data.host is {host.id} but property {prop.id} is hosted by {prop.host_id}")
    return EventFacts(
        type=event_type,
        occurred_at=occurred_at,
        property=prop,
        traveler=traveler,
        host=host,
        offer=subject if isinstance(subject, OfferRecord) else None,
        request=subject if isinstance(subject, RequestToBookRecord) else None,
        trip=subject if isinstance(subject, TripRecord) else None,
    )


def _place(p: PropertyRecord) -> str:
    return f"{p.name} in {p.city}" if p.city else p.name


def _who(user: UserRecord | None, fallback: str) -> str:
    return user.name if user is not None and user.name else fallback


def plan_notifications(facts: EventFacts, now: dt.datetime) -> list[Notification]:
    """The notes for ``facts`` as written at ``now`` (aware; the moment of writing, not ``occurred_at``): times
    left are counted from it, and every day or deadline is said from the property's date at it — "today",
    "tomorrow", "in 3 days", else its date (:func:`concierge.formatting.days_away`, the one place that words
    it). EventNotApplicable when the notice no longer applies, its moment having passed among the reasons
    (:func:`_moment_passed`)."""
    _require_applicable(facts, now)
    p = facts.property
    handler = _RULES.get(facts.type)
    if handler is None:
        raise EventDataError(f"no notification rule for {facts.type}")
    return handler(facts, p, now, now.astimezone(ZoneInfo(p.timezone)).date())


def _require_applicable(f: EventFacts, now: dt.datetime) -> None:
    if f.type == "offer.expiring" and f.offer is not None and f.offer.status != "Pending":
        raise EventNotApplicable(f"offer {f.offer.id} is {f.offer.status}, no longer pending")
    if f.type in ("trip.check_in_reminder", "trip.check_out_reminder") and f.trip is not None:
        if f.trip.status == "Cancelled":
            raise EventNotApplicable(f"trip {f.trip.id} is cancelled")
    passed = _moment_passed(f, now)
    if passed is not None:
        raise EventNotApplicable(passed)


def _moment_passed(f: EventFacts, now: dt.datetime) -> str | None:
    """Why the notice of ``f`` is too late at ``now``, or None while it is timely: a deadline it would state as
    ahead is past (an offer's expiry, the host's time to answer a request), or what it reminds of has begun
    (check-in, check-out: the property's time on that day, in its time zone)."""
    p = f.property
    if f.type in ("offer.created", "offer.expiring") and f.offer is not None and now >= f.offer.expires_at:
        return (f"the offer expired before the notice could be written "
                f"(offer {f.offer.id} expired {fmt.local_moment(f.offer.expires_at, p.timezone)})")
    if f.type == "request_to_book.created" and f.request is not None:
        deadline = f.request.created_at + HOST_ANSWER_WINDOW
        if now >= deadline:
            return (f"the host's time to answer ended before the notice could be written "
                    f"(request {f.request.id}: {fmt.local_moment(deadline, p.timezone)})")
    if f.type == "trip.check_in_reminder" and f.trip is not None:
        begins = _local_instant(f.trip.check_in, p.check_in_time, p.timezone)
        if now >= begins:
            return (f"check-in had begun before the reminder could be written "
                    f"(trip {f.trip.id}: {fmt.local_moment(begins, p.timezone)})")
    if f.type == "trip.check_out_reminder" and f.trip is not None:
        ends = _local_instant(f.trip.check_out, p.check_out_time, p.timezone)
        if now >= ends:
            return (f"check-out had passed before the reminder could be written "
                    f"(trip {f.trip.id}: {fmt.local_moment(ends, p.timezone)})")
    return None


def _local_instant(day: dt.date, clock: str, timezone: str) -> dt.datetime:
    """``clock`` ("HH:MM") on ``day`` in the zone ``timezone``, as an aware instant."""
    return dt.datetime.combine(day, dt.time.fromisoformat(clock), tzinfo=ZoneInfo(timezone))


def _offer_rules(f: EventFacts, p: PropertyRecord, now: dt.datetime, today: dt.date) -> list[Notification]:
    o = f.offer
    assert o is not None
    dates = fmt.date_range(o.check_in, o.check_out, today)
    price = fmt.money(o.total_price_cents, o.currency)
    expires = fmt.relative_moment(o.expires_at, p.timezone, today)
    if f.type == "offer.created":
        text = (
            f"You have a new offer for {_place(p)}: {dates}, {price} in total. "
            f"It expires {expires}."
        )
    elif f.type == "offer.expiring":
        left = o.expires_at - now  # positive: _moment_passed skipped an offer expired by now
        text = (
            f"Your offer for {_place(p)} ({dates}, {price}) expires {expires}: {fmt.duration(left)} left. "
            "Accept it before then to keep these dates."
        )
    elif f.type == "offer.expired":
        text = f"The offer for {_place(p)} ({dates}, {price}) has expired and is no longer available."
    elif f.type == "offer.withdrawn":
        text = f"The host withdrew the offer for {_place(p)} ({dates}); it is no longer available."
    else:  # offer.accepted
        text = (
            f"You accepted the offer for {_place(p)}: {dates}, {price}. "
            "What happens next: your booking is being confirmed, and you will get the confirmation here "
            f"with the address and check-in details (check-in from {fmt.clock(p.check_in_time)})."
        )
    return [Notification(o.traveler_id, "offer", text, offer_id=o.id)]


def _request_rules(f: EventFacts, p: PropertyRecord, _now: dt.datetime, today: dt.date) -> list[Notification]:
    r = f.request
    assert r is not None
    dates = fmt.date_range(r.check_in, r.check_out, today)
    price = fmt.money(r.total_price_cents, r.currency)
    if f.type == "request_to_book.created":
        deadline = fmt.relative_moment(r.created_at + HOST_ANSWER_WINDOW, p.timezone, today)
        traveler = _who(f.traveler, "A traveler")
        return [
            Notification(
                p.host_id,
                "concierge",
                f"{traveler} asked to book {_place(p)} for {dates}, {fmt.guests(r.num_guests)}, {price} in total. "
                f"Please approve or decline it: unanswered, the request expires {deadline}.",
            ),
            Notification(
                r.traveler_id,
                "concierge",
                f"Your request to book {_place(p)} for {dates} ({fmt.guests(r.num_guests)}, {price}) was sent "
                f"to the host. They have to answer before the request expires {deadline}.",
            ),
        ]
    outcome = {
        "request_to_book.approved": f"Good news: the host approved your request to book {_place(p)} for {dates}. "
        "Your trip confirmation follows here.",
        "request_to_book.denied": f"Sorry, the host declined your request to book {_place(p)} for {dates}. "
        "You have not been charged.",
        "request_to_book.withdrawn": f"Your request to book {_place(p)} for {dates} was withdrawn.",
        "request_to_book.expired": f"Your request to book {_place(p)} for {dates} expired because the host "
        "did not answer within 24 hours. You have not been charged.",
    }[f.type]
    return [Notification(r.traveler_id, "concierge", outcome)]


def _trip_rules(f: EventFacts, p: PropertyRecord, _now: dt.datetime, today: dt.date) -> list[Notification]:
    t = f.trip
    assert t is not None
    dates = fmt.date_range(t.check_in, t.check_out, today)
    check_in, check_out = fmt.clock(p.check_in_time), fmt.clock(p.check_out_time)
    address = p.address or "the address in your booking"
    if f.type == "trip.booked":
        traveler = _who(f.traveler, "A traveler")
        return [
            Notification(
                t.traveler_id,
                "concierge",
                f"Your trip to {_place(p)} is booked: {dates}, {fmt.guests(t.num_guests)}. "
                f"Address: {address}. Check-in from {check_in} {fmt.relative_day(t.check_in, today)}, "
                f"check-out by {check_out} {fmt.relative_day(t.check_out, today)}.",
            ),
            Notification(
                p.host_id,
                "concierge",
                f"{traveler} booked {_place(p)} for {dates}, {fmt.guests(t.num_guests)}. "
                f"Check-in from {check_in}, check-out by {check_out}.",
            ),
        ]
    if f.type == "trip.check_in_reminder":
        return [
            Notification(
                t.traveler_id,
                "concierge",
                f"Check-in is {fmt.relative_day(t.check_in, today)}, from {check_in} at {address} "
                f"({p.name}). Have a great trip!",
            )
        ]
    if f.type == "trip.check_out_reminder":
        return [
            Notification(
                t.traveler_id,
                "concierge",
                f"A reminder that check-out from {p.name} is {fmt.relative_day(t.check_out, today)}, "
                f"by {check_out}.",
            )
        ]
    traveler = _who(f.traveler, "The traveler")
    return [
        Notification(
            t.traveler_id, "concierge", f"Your trip to {_place(p)} for {dates} has been cancelled."
        ),
        Notification(
            p.host_id, "concierge", f"{traveler}'s trip to {_place(p)} for {dates} has been cancelled."
        ),
    ]


_RULES = {
    **dict.fromkeys(OFFER_EVENTS, _offer_rules),
    **dict.fromkeys(REQUEST_EVENTS, _request_rules),
    **dict.fromkeys(TRIP_EVENTS, _trip_rules),
}
