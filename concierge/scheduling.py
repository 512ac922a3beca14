"""Scheduled work (SPEC §5.3): what the concierge finds by itself, run by Celery beat.

Each job takes ``now`` (so tests control time), handles a bounded batch per run and is exactly-once
however often it runs: reminders become events with deterministic ids (stored once, by primary key),
a host nudge is a concierge message whose origin is unique per waiting message. A reminder or expiry the
platform reports as well is still told once: processing claims the fact (concierge.facts), and the later
report ends ``skipped`` naming the first.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from concierge import locales, records
from concierge.answers import previous_answer
from concierge.events import record_internal_event
from concierge.phrasebook import say
from messaging.chat.conversations import concierge_conversation_id, post_concierge_message
from messaging.live.bus import publish_after_commit
from messaging.store.models import (
    ConciergeMessageOrigin,
    ConciergeThread,
    Message,
    Offer,
    Property,
    PropertyConversation,
    PropertyMessage,
    RequestToBook,
    Trip,
    User,
)

BATCH = 500
OFFER_EXPIRY_NOTICE = dt.timedelta(hours=24)
REQUEST_ANSWER_WINDOW = dt.timedelta(hours=24)
HOST_REPLY_WINDOW = dt.timedelta(hours=24)
NUDGE_LOOKBACK = dt.timedelta(days=7)  # older unanswered inquiries are not nudged any more
HANDOVER_ALERT_AFTER = dt.timedelta(minutes=30)  # a hand-over nobody answered: the user is told the team knows
SOURCE = "scheduler"


def _clock(value: dt.time) -> str:
    return f"{value:%H:%M}"


def _user(user: User | None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.id, "name": user.name, "email": user.email, "phoneNumber": user.phone_number,
            "role": user.role}


def _property(p: Property) -> dict[str, Any]:
    return records.PropertyRecord(
        id=p.id, host_id=p.host_id, name=p.name, city=p.city, address=p.address, timezone=p.timezone,
        check_in_time=_clock(p.check_in_time), check_out_time=_clock(p.check_out_time),
    ).model_dump(by_alias=True, mode="json")


def _data(session: Session, prop: Property, traveler_id: str, key: str, record: dict[str, Any]) -> dict[str, Any]:
    traveler = session.get(User, traveler_id)
    host = session.get(User, prop.host_id)
    data: dict[str, Any] = {"property": _property(prop), key: record}
    if traveler is not None:
        data["traveler"] = _user(traveler)
    if host is not None:
        data["host"] = _user(host)
    return data


def _trip_record(t: Trip) -> dict[str, Any]:
    return {"id": t.id, "propertyId": t.property_id, "travelerId": t.traveler_id, "checkIn": t.check_in.isoformat(),
            "checkOut": t.check_out.isoformat(), "numGuests": t.num_guests, "status": t.status,
            "offerId": t.offer_id, "requestToBookId": t.request_to_book_id}


def _offer_record(o: Offer) -> dict[str, Any]:
    return {"id": o.id, "propertyId": o.property_id, "travelerId": o.traveler_id, "checkIn": o.check_in.isoformat(),
            "checkOut": o.check_out.isoformat(), "totalPriceCents": o.total_price_cents, "currency": o.currency,
            "status": o.status, "expiresAt": o.expires_at.isoformat() if o.expires_at else None}


def _request_record(r: RequestToBook) -> dict[str, Any]:
    return {"id": r.id, "propertyId": r.property_id, "travelerId": r.traveler_id,
            "checkIn": r.check_in.isoformat(), "checkOut": r.check_out.isoformat(), "numGuests": r.num_guests,
            "totalPriceCents": r.total_price_cents, "currency": r.currency, "status": r.status,
            "createdAt": r.created_at.isoformat(),
            "resolvedAt": r.resolved_at.isoformat() if r.resolved_at else None}


def schedule_check_in_reminders(session: Session, now: dt.datetime) -> int:
    """Booked trips whose check-in is tomorrow in the property's time zone get a reminder event."""
    today = now.date()
    rows = session.execute(
        select(Trip, Property)
        .join(Property, Property.id == Trip.property_id)
        # Index range on check_in wide enough for every time zone; the zone decides below.
        .where(Trip.check_in >= today, Trip.check_in <= today + dt.timedelta(days=2), Trip.status == "Booked")
        .order_by(Trip.check_in, Trip.id)
        .limit(BATCH)
    ).all()
    created = 0
    for trip, prop in rows:
        local_today = now.astimezone(ZoneInfo(prop.timezone)).date()
        if trip.check_in != local_today + dt.timedelta(days=1):
            continue
        event_id = f"scheduler:trip.check_in_reminder:{trip.id}:{trip.check_in.isoformat()}"
        data = _data(session, prop, trip.traveler_id, "trip", _trip_record(trip))
        created += record_internal_event(session, event_id, "trip.check_in_reminder", now, data, SOURCE)
    return created


def schedule_offer_expiry_reminders(
    session: Session, now: dt.datetime, notice: dt.timedelta = OFFER_EXPIRY_NOTICE
) -> int:
    """Pending offers expiring within ``notice`` get one reminder (per expiry time)."""
    rows = session.execute(
        select(Offer, Property)
        .join(Property, Property.id == Offer.property_id)
        .where(Offer.status == "Pending", Offer.expires_at > now, Offer.expires_at <= now + notice)
        .order_by(Offer.expires_at)
        .limit(BATCH)
    ).all()
    created = 0
    for offer, prop in rows:
        event_id = f"scheduler:offer.expiring:{offer.id}:{offer.expires_at.isoformat()}"
        data = _data(session, prop, offer.traveler_id, "offer", _offer_record(offer))
        created += record_internal_event(session, event_id, "offer.expiring", now, data, SOURCE)
    return created


def expire_requests_to_book(session: Session, now: dt.datetime) -> int:
    """Requests to book left Pending for 24 h become Expired, and the traveler is told."""
    query = (
        select(RequestToBook)
        .where(RequestToBook.status == "Pending", RequestToBook.created_at <= now - REQUEST_ANSWER_WINDOW)
        .order_by(RequestToBook.created_at)
        .limit(BATCH)
    )
    expired = 0
    for request in session.execute(query.with_for_update(skip_locked=True)).scalars().all():
        request.status = "Expired"
        request.resolved_at = now
        prop = session.get(Property, request.property_id)
        assert prop is not None  # the foreign key holds
        data = _data(session, prop, request.traveler_id, "requestToBook", _request_record(request))
        expired += record_internal_event(
            session, f"scheduler:request_to_book.expired:{request.id}", "request_to_book.expired", now, data, SOURCE
        )
    return expired


def nudge_waiting_hosts(session: Session, now: dt.datetime) -> int:
    """A traveler's inquiry left unanswered for 24 h: tell the host once, in their concierge chat."""
    later = aliased(PropertyMessage)
    rows = session.execute(
        select(PropertyMessage.id, PropertyConversation.traveler_id, Property.host_id, Property.name,
               User.name.label("traveler_name"))
        .join(PropertyConversation, PropertyConversation.id == PropertyMessage.conversation_id)
        .join(Property, Property.id == PropertyConversation.property_id)
        .join(User, User.id == PropertyConversation.traveler_id)
        .where(
            PropertyMessage.created_at <= now - HOST_REPLY_WINDOW,
            PropertyMessage.created_at > now - NUDGE_LOOKBACK,
            PropertyMessage.author_id == PropertyConversation.traveler_id,
            # the traveler's message is still the last word in the thread
            ~exists().where(
                and_(
                    later.conversation_id == PropertyMessage.conversation_id,
                    later.created_at > PropertyMessage.created_at,
                )
            ),
        )
        .order_by(PropertyMessage.created_at)
        .limit(BATCH)
    ).all()
    nudged = 0
    for row in rows:
        event_id = f"scheduler:host_nudge:{row.id}"
        already = session.execute(
            select(ConciergeMessageOrigin.message_id).where(
                ConciergeMessageOrigin.event_id == event_id, ConciergeMessageOrigin.recipient_id == row.host_id
            )
        ).first()
        if already is not None:
            continue
        conversation_id = concierge_conversation_id(session, row.host_id)
        who = row.traveler_name or "A traveler"
        text = (
            f"{who} has been waiting 24 hours for your answer about {row.name}. "
            "A quick reply in the property thread keeps their interest."
        )
        try:
            with session.begin_nested():
                message, audience = post_concierge_message(
                    session, conversation_id, text,
                    origin={"kind": "system", "event_id": event_id, "recipient_id": row.host_id},
                )
        except IntegrityError:
            continue  # another run nudged first
        publish_after_commit(session, "message.created", audience, message)
        nudged += 1
    return nudged


def alert_unanswered_handovers(session: Session, now: dt.datetime, after: dt.timedelta = HANDOVER_ALERT_AFTER) -> int:
    """A conversation the bot handed to a person in which no person has written for ``after`` since: its user is
    told, once per hand-over, that the team has been alerted and will reply there (SPEC §5.2), in the language of
    the bot's last answer there (their ``locale`` first). A person's message is any by someone other than the
    conversation's owner (a staff reply). Returns how many were told."""
    t = ConciergeThread
    someone_replied = exists().where(
        Message.conversation_id == t.conversation_id, Message.created_at >= t.handed_over_at,
        Message.user_id.is_not(None), Message.user_id != t.user_id,
    )
    threads = session.execute(
        select(t)
        .where(t.needs_human, t.team_alerted_at.is_(None), t.handed_over_at <= now - after, t.user_id.is_not(None),
               ~someone_replied)
        .order_by(t.handed_over_at)
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    ).scalars().all()
    alerted = 0
    for thread in threads:
        assert thread.handed_over_at is not None and thread.user_id is not None  # the query's conditions
        thread.team_alerted_at = now
        user = session.get(User, thread.user_id)
        lang = locales.choose(user.locale if user else None, None,
                              previous_answer(session, thread.conversation_id).language)
        event_id = f"handover:{thread.conversation_id}:{thread.handed_over_at.isoformat()}"
        origin = {"kind": "system", "event_id": event_id, "recipient_id": thread.user_id, "language": lang.code}
        try:
            with session.begin_nested():
                message, audience = post_concierge_message(
                    session, thread.conversation_id, say(lang, "team_alerted"), origin=origin
                )
        except IntegrityError:
            continue  # told already for this hand-over
        publish_after_commit(session, "message.created", audience, message)
        alerted += 1
    return alerted
