"""The concierge answering a person in their concierge conversation (SPEC §5.2).

Answers come only from the asking user's own records (their trips, requests to book and offers).
Two misunderstandings in a row, or a request for a person, hand the conversation to a human: it is
marked as needing one and the bot stays quiet there until an admin hands it back.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from concierge import formatting as fmt
from concierge.intents import UNKNOWN, understand
from messaging.chat.conversations import post_concierge_message
from messaging.live.bus import publish_after_commit
from messaging.store.db import utcnow
from messaging.store.models import (
    ConciergeMessageOrigin,
    ConciergeThread,
    Message,
    Offer,
    Property,
    RequestToBook,
    Trip,
    User,
)

log = logging.getLogger(__name__)

MISUNDERSTANDINGS_BEFORE_HANDOVER = 2
HELP_TEXT = (
    "I can tell you about your next trip (dates, check-in and check-out times, the address, guests), "
    "the status of your requests to book, and your open offers and when they expire. "
    "Ask for a person at any time and someone from the team will take over."
)
HANDOVER_TEXT = (
    "I've asked a person from our team to help you here; they will reply in this conversation shortly."
)


def answer_question(session: Session, message_id: str) -> str:
    """Answer one message in a concierge conversation, at most once; returns what happened."""
    question = session.execute(
        select(Message.id, Message.conversation_id, Message.user_id, Message.message).where(Message.id == message_id)
    ).first()
    if question is None:
        return "skipped: no such message"
    thread = session.execute(
        select(ConciergeThread)
        .where(ConciergeThread.conversation_id == question.conversation_id)
        .with_for_update()  # one answer at a time per thread: the counter stays right
    ).scalar_one_or_none()
    if thread is None or question.user_id is None or question.user_id != thread.user_id:
        return "skipped: not a question to the concierge"
    if _answered(session, message_id):
        return "skipped: already answered"
    if thread.needs_human:
        return "skipped: a person has this conversation"
    match = understand(question.message)
    if match.intent == "human":
        return _reply(session, thread, message_id, HANDOVER_TEXT, "handover", hand_over=True)
    if match.intent == UNKNOWN:
        thread.misunderstandings += 1
        if thread.misunderstandings >= MISUNDERSTANDINGS_BEFORE_HANDOVER:
            return _reply(session, thread, message_id, HANDOVER_TEXT, "handover", hand_over=True)
        text = "Sorry, I didn't catch that. " + HELP_TEXT
        return _reply(session, thread, message_id, text, UNKNOWN)
    thread.misunderstandings = 0
    text = compose_reply(session, thread.user_id, match.intent, utcnow())
    return _reply(session, thread, message_id, text, match.intent)


def _answered(session: Session, question_id: str) -> bool:
    found = session.execute(
        select(ConciergeMessageOrigin.message_id).where(ConciergeMessageOrigin.question_message_id == question_id)
    ).first()
    return found is not None


def _reply(
    session: Session, thread: ConciergeThread, question_id: str, text: str, intent: str, *, hand_over: bool = False
) -> str:
    try:
        with session.begin_nested():
            message, audience = post_concierge_message(
                session,
                thread.conversation_id,
                text,
                origin={"kind": "reply", "question_message_id": question_id, "intent": intent},
            )
    except IntegrityError:
        if _answered(session, question_id):  # a concurrent run answered first
            return "skipped: already answered"
        raise
    if hand_over:
        thread.needs_human = True
    thread.updated_at = utcnow()
    publish_after_commit(session, "message.created", audience, message)
    return f"answered: {intent}"


def hand_over_to_human(session: Session, conversation_id: str) -> ConciergeThread | None:
    """A person takes the conversation: the bot stays quiet there."""
    thread = session.get(ConciergeThread, conversation_id)
    if thread is not None:
        thread.needs_human = True
        thread.updated_at = utcnow()
    return thread


def hand_back_to_bot(session: Session, conversation_id: str) -> ConciergeThread | None:
    """The bot answers again, starting afresh."""
    thread = session.get(ConciergeThread, conversation_id)
    if thread is not None:
        thread.needs_human = False
        thread.misunderstandings = 0
        thread.updated_at = utcnow()
    return thread


# --- replies from the user's own records ----------------------------------------------------------


def compose_reply(session: Session, user_id: str, intent: str, now: dt.datetime) -> str:
    name = session.execute(select(User.name).where(User.id == user_id)).scalar()
    if intent == "greeting":
        return f"Hi{' ' + name if name else ''}! " + HELP_TEXT
    if intent == "thanks":
        return "You're welcome! Anything else about your trip, just ask."
    if intent == "help":
        return HELP_TEXT
    if intent == "requests":
        return _requests_reply(session, user_id, now)
    if intent == "offers":
        return _offers_reply(session, user_id, now)
    trip = _next_trip(session, user_id, now.date())
    if trip is None:
        return (
            "I don't see an upcoming trip booked for you. If you've just booked, the confirmation will "
            "appear here shortly."
        )
    t, p = trip
    today = now.date()
    place = f"{p.name}, {p.city}" if p.city else p.name
    address = p.address or "the address in your booking"
    if intent == "check_in":
        return (
            f"Check-in at {p.name} is on {fmt.day(t.check_in, today)} from {fmt.clock(p.check_in_time)} "
            f"(local time, {p.timezone}). The address is {address}."
        )
    if intent == "check_out":
        return f"Check-out from {p.name} is on {fmt.day(t.check_out, today)} by {fmt.clock(p.check_out_time)}."
    if intent == "address":
        return f"Your stay is at {place}: {address}."
    if intent == "guests":
        dates = fmt.date_range(t.check_in, t.check_out, today)
        return f"Your booking at {p.name} ({dates}) is for {fmt.guests(t.num_guests)}."
    return (
        f"Your next trip is to {place}: {fmt.date_range(t.check_in, t.check_out, today)}, "
        f"{fmt.guests(t.num_guests)}. Check-in from {fmt.clock(p.check_in_time)}, check-out by "
        f"{fmt.clock(p.check_out_time)}. Address: {address}."
    )


def _next_trip(session: Session, user_id: str, today: dt.date) -> tuple[Any, Any] | None:
    row = session.execute(
        select(Trip, Property)
        .join(Property, Property.id == Trip.property_id)
        .where(Trip.traveler_id == user_id, Trip.status == "Booked", Trip.check_out >= today)
        .order_by(Trip.check_in, Trip.id)
        .limit(1)
    ).first()
    return (row[0], row[1]) if row else None


def _requests_reply(session: Session, user_id: str, now: dt.datetime) -> str:
    rows = session.execute(
        select(RequestToBook, Property)
        .join(Property, Property.id == RequestToBook.property_id)
        .where(RequestToBook.traveler_id == user_id)
        .order_by(RequestToBook.created_at.desc())
        .limit(5)
    ).all()
    if not rows:
        return "You have no requests to book."
    today = now.date()
    lines = []
    for r, p in rows:
        status = {"Pending": "waiting for the host's answer", "Accepted": "approved"}.get(r.status, r.status.lower())
        lines.append(f"{p.name} ({fmt.date_range(r.check_in, r.check_out, today)}): {status}")
    return "Your requests to book: " + "; ".join(lines) + "."


def _offers_reply(session: Session, user_id: str, now: dt.datetime) -> str:
    rows = session.execute(
        select(Offer, Property)
        .join(Property, Property.id == Offer.property_id)
        .where(Offer.traveler_id == user_id, Offer.status == "Pending", Offer.expires_at > now)
        .order_by(Offer.expires_at)
        .limit(5)
    ).all()
    if not rows:
        return "You have no open offers right now."
    today = now.date()
    lines = []
    for o, p in rows:
        expires = o.expires_at if o.expires_at.tzinfo else o.expires_at.replace(tzinfo=dt.UTC)
        dates, price = fmt.date_range(o.check_in, o.check_out, today), fmt.money(o.total_price_cents, o.currency)
        lines.append(
            f"{p.name} ({dates}, {price}) expires {fmt.local_moment(expires, p.timezone, today)}, "
            f"in {fmt.duration(expires - now)}"
        )
    return "Your open offers: " + "; ".join(lines) + "."
