"""The concierge's answers to a traveler, from their own records only (SPEC §5.2): their trips, the properties they
stay at, their requests to book and offers.

Every query here is bounded to the asking user (``Trip.traveler_id``, ``RequestToBook.traveler_id``,
``Offer.traveler_id``), so no question — naming another's trip, city or dates — reaches anyone else's data. The
trip a question is about: the one it names (by city, property name, month or date) among the user's own, else the
trip of the conversation's previous answer (a follow-up), else the next one, saying which. A fact the records do
not hold is said to be not listed, never guessed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from rapidfuzz.distance import OSA
from sqlalchemy import select
from sqlalchemy.orm import Session

from concierge import lexicon
from concierge.intents import Match, References, fold
from concierge.locales import Language, clock, day, listing, local_time, moment, money, number
from concierge.phrasebook import AMENITY_NAMES, STATUSES, count, date_range, duration, say
from messaging.store.models import ConciergeMessageOrigin, Message, Offer, Property, RequestToBook, Trip, User

# How long an answer's trip stays the subject of the conversation for a question that names none.
FOLLOW_UP_WINDOW = dt.timedelta(hours=12)
# Check-in instructions are told from this long before check-in until check-out (SPEC §5.2).
CHECK_IN_INFO_LEAD = dt.timedelta(hours=72)
TRIPS_LISTED = 10
LISTED = 5
# The intents about one trip or its property: they need a trip.
TRIP_INTENTS = frozenset({
    "check_in", "check_out", "address", "guests", "nights", "days_until", "price", "next_trip", "check_in_info",
    "amenity", "amenities", "pets", "smoking", "bedrooms", "bathrooms", "max_guests", "house_rules",
    "cancellation_policy", "about",
})
FACT_INTENTS = frozenset({
    "amenity", "amenities", "pets", "smoking", "bedrooms", "bathrooms", "max_guests", "house_rules",
    "cancellation_policy", "about",
})


@dataclass(frozen=True, slots=True)
class Answer:
    """What to reply, the intent it answers, and the records it was made from (``{"trips": [7], "properties":
    [3]}``; None when none)."""

    text: str
    intent: str
    records: dict[str, list[Any]] | None = None


@dataclass(frozen=True, slots=True)
class Previous:
    """The conversation's last answer: its intent, the records it was made from, its language and when."""

    intent: str | None = None
    records: dict[str, list[Any]] | None = None
    language: str | None = None
    at: dt.datetime | None = None

    def trip_id(self, now: dt.datetime) -> int | None:
        """The trip the last answer was about, while a follow-up may still refer to it."""
        if not self.records or self.at is None or now - self.at > FOLLOW_UP_WINDOW:
            return None
        trips = self.records.get("trips") or []
        return trips[0] if len(trips) == 1 and isinstance(trips[0], int) else None


def previous_answer(session: Session, conversation_id: str) -> Previous:
    """The concierge's last answer to a question in the conversation (not an event's notice), or an empty one."""
    row = session.execute(
        select(ConciergeMessageOrigin.intent, ConciergeMessageOrigin.records, ConciergeMessageOrigin.language,
               Message.created_at)
        .join(Message, Message.id == ConciergeMessageOrigin.message_id)
        .where(Message.conversation_id == conversation_id, ConciergeMessageOrigin.kind == "reply")
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(1)
    ).first()
    return Previous(row.intent, row.records, row.language, row.created_at) if row else Previous()


# --- choosing the trip ----------------------------------------------------------------------------

Stay = tuple[Trip, Property]


def _stays(session: Session, user_id: str, today: dt.date) -> list[Stay]:
    """The user's own trips that are not cancelled and not over, soonest first."""
    rows = session.execute(
        select(Trip, Property)
        .join(Property, Property.id == Trip.property_id)
        .where(Trip.traveler_id == user_id, Trip.status != "Cancelled", Trip.check_out >= today)
        .order_by(Trip.check_in, Trip.id)
        .limit(50)
    ).all()
    return [(row[0], row[1]) for row in rows]


def _similar_word(a: str, b: str) -> bool:
    return a == b or (min(len(a), len(b)) >= 5 and OSA.distance(a, b) <= 1)


def names(words: tuple[str, ...], *texts: str | None) -> bool:
    """Whether ``words`` (folded) name one of ``texts`` (a city, a property's name): every word of it of three
    letters or more, allowing a typo in long words ("Lisboa" names "Lisbon")."""
    for text in texts:
        wanted = [w for w in fold(text or "").replace("-", " ").split() if len(w) >= 3]
        if wanted and all(any(_similar_word(w, said) for said in words) for w in wanted):
            return True
    return False


def _on(stay: Stay, references: References) -> bool:
    trip = stay[0]
    for year, month, day_of_month in references.dates:
        years = [year] if year else sorted({trip.check_in.year, trip.check_out.year})
        for y in years:
            try:
                date = dt.date(y, month, day_of_month)
            except ValueError:
                continue
            if trip.check_in <= date <= trip.check_out:
                return True
    return False


def _in_month(stay: Stay, references: References) -> bool:
    trip = stay[0]
    return any(trip.check_in.month <= m <= trip.check_out.month or m in (trip.check_in.month, trip.check_out.month)
               for m in references.months)


def names_a_trip(session: Session, user_id: str, references: References, today: dt.date) -> bool:
    """Whether a question names one of the user's own trips (by city, property name, date or month)."""
    stays = _stays(session, user_id, today)
    return choose_trip(stays, references, None)[1] == "named"


def choose_trip(stays: list[Stay], references: References, earlier: int | None) -> tuple[Stay | None, str]:
    """The trip a question is about, and how it was chosen: ``named`` (the question names it by city, property,
    date or month), ``missing`` (it names a date or month none of the trips matches: None), ``follow-up`` (the
    previous answer's, ``earlier``), ``next`` (the next one) or ``none`` (no trips)."""
    if not stays:
        return None, "none"
    for matches in (
        lambda s: names(references.words, s[1].city, s[1].name),
        lambda s: _on(s, references),
        lambda s: _in_month(s, references),
    ):
        found = [s for s in stays if matches(s)]
        if found:
            return found[0], "named"
    if references.dates or references.months:
        return None, "missing"
    if earlier is not None:
        for stay in stays:
            if stay[0].id == earlier:
                return stay, "follow-up"
    return stays[0], "next"


# --- answering ------------------------------------------------------------------------------------


def _place(p: Property) -> str:
    return f"{p.name}, {p.city}" if p.city else p.name


def _records(stay: Stay) -> dict[str, list[Any]]:
    return {"trips": [stay[0].id], "properties": [stay[1].id]}


def _trip_line(lang: Language, stay: Stay, today: dt.date) -> str:
    return f"{_place(stay[1])}, {date_range(lang, stay[0].check_in, stay[0].check_out, today)}"


def answer_traveler(
    session: Session, user: User, match: Match, lang: Language, previous: Previous, now: dt.datetime
) -> Answer:
    """The answer to a traveler's understood question (``match``), in ``lang``, from their own records."""
    intent, today = match.intent, now.date()
    if intent == "greeting":
        name = f" {user.name}" if user.name else ""
        return Answer(say(lang, "greeting", name=name) + say(lang, "help_traveler"), intent)
    if intent == "thanks":
        return Answer(say(lang, "thanks"), intent)
    if intent == "help" or intent == "waiting_threads":
        return Answer(say(lang, "help_traveler"), intent)
    if intent == "requests":
        return _requests(session, user.id, lang, today)
    if intent == "offers":
        return _offers(session, user.id, lang, now)
    stays = _stays(session, user.id, today)
    if intent == "trips_list":
        if not stays:
            return Answer(say(lang, "no_trip"), intent)
        lines = [_trip_line(lang, s, today) for s in stays[:TRIPS_LISTED]]
        return Answer(say(lang, "trips_list", trips="; ".join(lines)), intent,
                      {"trips": [s[0].id for s in stays[:TRIPS_LISTED]]})
    stay, how = choose_trip(stays, match.references, previous.trip_id(now))
    if stay is None:
        if how == "missing":
            lines = [_trip_line(lang, s, today) for s in stays[:TRIPS_LISTED]]
            return Answer(say(lang, "no_trip_named", trips="; ".join(lines)), intent)
        return Answer(say(lang, "no_trip"), intent)
    text = trip_answer(lang, intent, stay, match, now)
    if how == "next" and len(stays) > 1:
        text = say(lang, "which_next", place=_place(stay[1]), dates=date_range(
            lang, stay[0].check_in, stay[0].check_out, today)) + text
    return Answer(text, intent, _records(stay))


def trip_answer(lang: Language, intent: str, stay: Stay, match: Match, now: dt.datetime) -> str:
    """One trip's answer to ``intent``: its dates, times, address, guests, nights, price, check-in instructions,
    or a fact of its property."""
    t, p = stay
    today = now.date()
    address = p.address or say(lang, "address_unlisted")
    dates = date_range(lang, t.check_in, t.check_out, today)
    if intent in FACT_INTENTS:
        return property_fact(lang, intent, p, match.topic)
    if intent == "check_in":
        return say(lang, "check_in", name=p.name, day=day(lang, t.check_in, today), time=clock(p.check_in_time),
                   tz=p.timezone, address=address)
    if intent == "check_out":
        return say(lang, "check_out", name=p.name, day=day(lang, t.check_out, today), time=clock(p.check_out_time))
    if intent == "address":
        return say(lang, "address", place=_place(p), address=address)
    if intent == "guests":
        return say(lang, "guests", name=p.name, dates=dates, guests=count(lang, "guests", t.num_guests))
    nights = (t.check_out - t.check_in).days
    if intent == "nights":
        return say(lang, "nights", name=p.name, nights=count(lang, "nights", nights), dates=dates)
    if intent == "days_until":
        local_today = local_time(now, p.timezone).date()
        if t.check_in > local_today:
            return say(lang, "days_until", days=count(lang, "days", (t.check_in - local_today).days), name=p.name,
                       day=day(lang, t.check_in, today))
        if t.check_in == local_today:
            return say(lang, "days_until_today", name=p.name, time=clock(p.check_in_time))
        return say(lang, "staying_now", name=p.name, day=day(lang, t.check_out, today), time=clock(p.check_out_time))
    if intent == "price":
        if t.total_price_cents is None or not t.currency:
            return say(lang, "price_unlisted", name=p.name, dates=dates, nights=count(lang, "nights", nights))
        per_night = round(t.total_price_cents / nights) if nights else t.total_price_cents
        return say(lang, "price", total=money(lang, t.total_price_cents, t.currency),
                   nights=count(lang, "nights", nights), name=p.name, dates=dates,
                   per_night=money(lang, per_night, t.currency))
    if intent == "check_in_info":
        return _check_in_info(lang, t, p, now)
    return say(lang, "trip_summary", place=_place(p), dates=dates, guests=count(lang, "guests", t.num_guests),
               check_in=clock(p.check_in_time), check_in_day=day(lang, t.check_in, today),
               check_out=clock(p.check_out_time), check_out_day=day(lang, t.check_out, today), address=address)


def check_in_window(t: Trip, p: Property) -> tuple[dt.datetime, dt.datetime]:
    """When a trip's check-in instructions may be told: from 72 hours before check-in until check-out, both at
    the property's times in its time zone."""
    zone = ZoneInfo(p.timezone)
    begins = dt.datetime.combine(t.check_in, p.check_in_time, zone)
    ends = dt.datetime.combine(t.check_out, p.check_out_time, zone)
    return begins - CHECK_IN_INFO_LEAD, ends


def _check_in_info(lang: Language, t: Trip, p: Property, now: dt.datetime) -> str:
    opens, closes = check_in_window(t, p)
    if now < opens:
        return say(lang, "check_in_info_later", name=p.name, moment=moment(lang, opens, p.timezone, now.date()))
    if now > closes:
        return say(lang, "check_in_info_over", name=p.name)
    if t.status != "Booked" or not p.check_in_info:
        return say(lang, "check_in_info_unlisted", name=p.name)
    return say(lang, "check_in_info", name=p.name, info=p.check_in_info)


# --- the property's facts -------------------------------------------------------------------------


def _listed(amenities: list[str], concept_or_words: str) -> str | None:
    """The listing's amenity that names what was asked (a concept of lexicon.AMENITIES, or ``words:`` …)."""
    if concept_or_words.startswith("words:"):
        asked = concept_or_words[len("words:"):].split()
        for amenity in amenities:
            listed = fold(amenity).replace("-", " ").split()
            if any(_similar_word(a, w) or _similar_word(a, w.rstrip("s")) for a in asked for w in listed):
                return amenity
        return None
    names_of = lexicon.AMENITIES[concept_or_words][1]
    for amenity in amenities:
        padded = f" {fold(amenity).replace('-', ' ')} "
        if any(f" {name} " in padded or f" {name}s " in padded for name in names_of):
            return amenity
    return None


def property_fact(lang: Language, intent: str, p: Property, topic: str | None = None) -> str:
    """A fact of the property's listing (SPEC §4), or that it is not listed; never a guess."""
    name = p.name
    if intent == "amenities" or (intent == "amenity" and topic is None):
        if not p.amenities:
            return say(lang, "amenities_unknown", name=name)
        return say(lang, "amenities", name=name, list=listing(lang, list(p.amenities)))
    if intent == "amenity":
        assert topic is not None
        if p.amenities is None:
            return say(lang, "amenities_unknown", name=name)
        found = _listed(list(p.amenities), topic)
        if found is not None:
            return say(lang, "amenity_yes", name=name, amenity=found)
        if topic.startswith("words:"):
            thing = topic[len("words:"):]
            thing = f'"{thing}"' if lang.code == "en" else thing
        else:
            thing = AMENITY_NAMES[topic][lang.code]
        return say(lang, "amenity_unlisted", thing=thing, name=name)
    if intent in ("pets", "smoking"):
        allowed = p.pets_allowed if intent == "pets" else p.smoking_allowed
        state = "unlisted" if allowed is None else "yes" if allowed else "no"
        return say(lang, f"{intent}_{state}", name=name)
    if intent in ("bedrooms", "bathrooms", "max_guests"):
        value = {"bedrooms": p.bedrooms, "bathrooms": p.bathrooms, "max_guests": p.max_guests}[intent]
        if value is None:
            return say(lang, f"{intent}_unlisted", name=name)
        if intent == "bathrooms" and value != int(value):
            counted = f"{number(lang, value)} {say_unit(lang, 'bathrooms')}"
        else:
            counted = count(lang, "guests" if intent == "max_guests" else intent, int(value))
        return say(lang, intent, name=name, count=counted)
    text = {"house_rules": p.house_rules, "cancellation_policy": p.cancellation_policy, "about": p.about}[intent]
    if not text:
        return say(lang, f"{intent}_unlisted", name=name)
    return say(lang, intent, name=name, text=text)


def say_unit(lang: Language, key: str) -> str:
    """The plural name of a counted thing without its number ("bathrooms"), for a fractional count."""
    return count(lang, key, 2).split(" ", 1)[1]


# --- requests to book and offers ------------------------------------------------------------------


def _requests(session: Session, user_id: str, lang: Language, today: dt.date) -> Answer:
    rows = session.execute(
        select(RequestToBook, Property)
        .join(Property, Property.id == RequestToBook.property_id)
        .where(RequestToBook.traveler_id == user_id)
        .order_by(RequestToBook.created_at.desc())
        .limit(LISTED)
    ).all()
    if not rows:
        return Answer(say(lang, "requests_none"), "requests")
    lines = [f"{p.name} ({date_range(lang, r.check_in, r.check_out, today)}): "
             f"{STATUSES.get(r.status, {}).get(lang.code, r.status)}" for r, p in rows]
    return Answer(say(lang, "requests", list="; ".join(lines)), "requests",
                  {"requestsToBook": [r.id for r, _p in rows]})


def _offers(session: Session, user_id: str, lang: Language, now: dt.datetime) -> Answer:
    rows = session.execute(
        select(Offer, Property)
        .join(Property, Property.id == Offer.property_id)
        .where(Offer.traveler_id == user_id, Offer.status == "Pending", Offer.expires_at > now)
        .order_by(Offer.expires_at)
        .limit(LISTED)
    ).all()
    if not rows:
        return Answer(say(lang, "offers_none"), "offers")
    today = now.date()
    lines = []
    for o, p in rows:
        expires = o.expires_at if o.expires_at.tzinfo else o.expires_at.replace(tzinfo=dt.UTC)
        lines.append(say(lang, "offer_line", name=p.name, dates=date_range(lang, o.check_in, o.check_out, today),
                         price=money(lang, o.total_price_cents, o.currency),
                         moment=moment(lang, expires, p.timezone, today), left=duration(lang, expires - now)))
    return Answer(say(lang, "offers", list="; ".join(lines)), "offers", {"offers": [o.id for o, _p in rows]})
