"""The concierge's answers to a host, about their own properties only (SPEC §5.2): arrivals and departures, the
requests to book waiting for their answer, and the property threads waiting for their reply.

A host is never answered as a traveler: every query here is bounded to the properties whose ``host_id`` is theirs.
Days ("today", "tomorrow") are the property's, in its time zone.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session, aliased

from concierge.answers import FACT_INTENTS, Answer, names, property_fact
from concierge.intents import Match
from concierge.locales import Language, clock, day, listing, local_time, moment, money
from concierge.notifications import HOST_ANSWER_WINDOW
from concierge.phrasebook import count, date_range, say
from messaging.store.models import Property, PropertyConversation, PropertyMessage, RequestToBook, Trip, User

LISTED = 5
# Intents a host's question may have, and what a host is told for each.
ARRIVALS = frozenset({"check_in", "guests", "next_trip", "trips_list", "days_until", "nights"})
DEPARTURES = frozenset({"check_out"})


def is_host(session: Session, user: User) -> bool:
    """Whether the concierge speaks to ``user`` as a host: their role says so, or they have a property."""
    if user.role == "host":
        return True
    return session.execute(select(Property.id).where(Property.host_id == user.id).limit(1)).first() is not None


def answer_host(session: Session, user: User, match: Match, lang: Language, now: dt.datetime) -> Answer:
    """The answer to a host's understood question (``match``), in ``lang``, about their own properties."""
    intent = match.intent
    if intent == "greeting":
        name = f" {user.name}" if user.name else ""
        return Answer(say(lang, "greeting", name=name) + say(lang, "help_host"), intent)
    if intent == "thanks":
        return Answer(say(lang, "thanks_host"), intent)
    if intent == "requests":
        return _pending_requests(session, user.id, lang, now)
    if intent == "waiting_threads":
        return _waiting_threads(session, user.id, lang, now)
    if intent in ARRIVALS:
        return _arrivals(session, user.id, lang, now, match.references.day)
    if intent in DEPARTURES:
        return _departures(session, user.id, lang, now, match.references.day)
    if intent in FACT_INTENTS or intent == "address" or intent == "check_in_info":
        properties = list(session.execute(
            select(Property).where(Property.host_id == user.id).order_by(Property.id).limit(50)
        ).scalars())
        if not properties:
            return Answer(say(lang, "host_no_property"), intent)
        if intent == "check_in_info":
            return Answer(say(lang, "check_in_info_host"), intent)
        chosen = next((p for p in properties if names(match.references.words, p.city, p.name)), properties[0])
        if intent == "address":
            text = say(lang, "address", place=chosen.name, address=chosen.address or say(lang, "address_unlisted"))
        else:
            text = property_fact(lang, intent, chosen, match.topic)
        return Answer(text, intent, {"properties": [chosen.id]})
    return Answer(say(lang, "help_host"), intent)


def _when(lang: Language, which: str | None) -> str:
    return f" {say(lang, which)}" if which else ""


def _local_day(now: dt.datetime, p: Property, which: str | None) -> dt.date:
    today = local_time(now, p.timezone).date()
    return today + dt.timedelta(days=1) if which == "tomorrow" else today


def _bookings(session: Session, host_id: str, now: dt.datetime, column: Any) -> list[Any]:
    """The host's booked trips whose ``column`` (check-in or check-out) is today or later, soonest first, with
    the property and the traveler's name."""
    earliest = now.date() - dt.timedelta(days=1)  # a day's margin for time zones: the property's day decides
    return list(session.execute(
        select(Trip, Property, User.name.label("guest"))
        .join(Property, Property.id == Trip.property_id)
        .outerjoin(User, User.id == Trip.traveler_id)
        .where(Property.host_id == host_id, Trip.status == "Booked", column >= earliest)
        .order_by(column, Trip.id)
        .limit(50)
    ).all())


def _arrivals(session: Session, host_id: str, lang: Language, now: dt.datetime, which: str | None) -> Answer:
    return _stays(session, host_id, lang, now, which, arriving=True)


def _departures(session: Session, host_id: str, lang: Language, now: dt.datetime, which: str | None) -> Answer:
    return _stays(session, host_id, lang, now, which, arriving=False)


def _stays(
    session: Session, host_id: str, lang: Language, now: dt.datetime, which: str | None, *, arriving: bool
) -> Answer:
    """The host's next arrivals (or departures), from today in each property's time zone; with ``which``
    (today, tomorrow…), only that day's."""
    today = now.date()
    column, intent, kind = (Trip.check_in, "check_in", "arrivals") if arriving else \
        (Trip.check_out, "check_out", "departures")

    def on(r: Any) -> dt.date:
        return r.Trip.check_in if arriving else r.Trip.check_out

    rows = [r for r in _bookings(session, host_id, now, column) if on(r) >= local_time(now, r.Property.timezone).date()]
    if which:
        rows = [r for r in rows if on(r) == _local_day(now, r.Property, which)]
    rows = rows[:LISTED]
    if not rows:
        return Answer(say(lang, f"host_no_{kind}", when=_when(lang, which)), intent)
    if arriving:
        lines = [say(lang, "arrival_line", guest=r.guest or say(lang, "a_guest"), name=r.Property.name,
                     day=day(lang, r.Trip.check_in, today), time=clock(r.Property.check_in_time),
                     nights=count(lang, "nights", (r.Trip.check_out - r.Trip.check_in).days),
                     guests=count(lang, "guests", r.Trip.num_guests)) for r in rows]
    else:
        lines = [say(lang, "departure_line", guest=r.guest or say(lang, "a_guest"), name=r.Property.name,
                     day=day(lang, r.Trip.check_out, today), time=clock(r.Property.check_out_time)) for r in rows]
    key = f"host_{kind}" if which else f"host_next_{kind}"
    return Answer(say(lang, key, when=say(lang, which) if which else "", list="; ".join(lines)), intent,
                  {"trips": [r.Trip.id for r in rows]})


def _pending_requests(session: Session, host_id: str, lang: Language, now: dt.datetime) -> Answer:
    today = now.date()
    rows = session.execute(
        select(RequestToBook, Property, User.name.label("guest"))
        .join(Property, Property.id == RequestToBook.property_id)
        .outerjoin(User, User.id == RequestToBook.traveler_id)
        .where(Property.host_id == host_id, RequestToBook.status == "Pending")
        .order_by(RequestToBook.created_at, RequestToBook.id)
        .limit(LISTED)
    ).all()
    if not rows:
        return Answer(say(lang, "host_requests_none"), "requests")
    lines = [say(lang, "host_request_line", guest=r.guest or say(lang, "a_guest"), name=r.Property.name,
                 dates=date_range(lang, r.RequestToBook.check_in, r.RequestToBook.check_out, today),
                 guests=count(lang, "guests", r.RequestToBook.num_guests),
                 price=money(lang, r.RequestToBook.total_price_cents, r.RequestToBook.currency),
                 deadline=moment(lang, r.RequestToBook.created_at + HOST_ANSWER_WINDOW, r.Property.timezone, today))
             for r in rows]
    return Answer(say(lang, "host_requests", list="; ".join(lines)), "requests",
                  {"requestsToBook": [r.RequestToBook.id for r in rows]})


def _waiting_threads(session: Session, host_id: str, lang: Language, now: dt.datetime) -> Answer:
    """Property threads whose last message is the traveler's: they wait for the host's reply, longest first."""
    later = aliased(PropertyMessage)
    rows = session.execute(
        select(PropertyMessage.created_at, PropertyConversation.id, Property.name, Property.timezone,
               User.name.label("guest"))
        .join(PropertyConversation, PropertyConversation.id == PropertyMessage.conversation_id)
        .join(Property, Property.id == PropertyConversation.property_id)
        .outerjoin(User, User.id == PropertyConversation.traveler_id)
        .where(
            Property.host_id == host_id,
            PropertyMessage.author_id == PropertyConversation.traveler_id,
            ~select(later.id).where(and_(later.conversation_id == PropertyMessage.conversation_id,
                                         later.created_at > PropertyMessage.created_at)).exists(),
        )
        .order_by(PropertyMessage.created_at)
        .limit(LISTED)
    ).all()
    if not rows:
        return Answer(say(lang, "host_threads_none"), "waiting_threads")
    today = now.date()
    lines = [say(lang, "thread_line", guest=r.guest or say(lang, "a_guest"), name=r.name,
                 moment=moment(lang, r.created_at, r.timezone, today)) for r in rows]
    return Answer(say(lang, "host_threads", list=listing(lang, lines) if len(lines) < 3 else "; ".join(lines)),
                  "waiting_threads", {"propertyConversations": [r.id for r in rows]})
