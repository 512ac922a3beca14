"""The concierge answering a person in their concierge conversation (SPEC §5.2).

Answers come only from the asking user's own records: a traveler's trips, properties, requests to book and offers
(concierge.answers), a host's properties, bookings, requests and threads (concierge.host_answers). They are written
in the question's language, else the user's ``locale`` when the platform sent one, else the conversation's.
What the bot cannot do itself (cancel, change dates or guests, refund, accept or pay), a request for a person, an
urgent problem, or two misunderstandings in a row hand the conversation to a human with that reason
(:data:`HANDOVERS`): the thread records the reason and the time, and the bot stays quiet there until an admin hands
it back — except that an urgent problem raised meanwhile is escalated, once, with its reply. Nobody is left
unanswered: concierge.scheduling tells the user once when no person has replied within 30 minutes.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from concierge import locales
from concierge.answers import Answer, answer_traveler, names_a_trip, previous_answer
from concierge.host_answers import answer_host, is_host
from concierge.intents import UNKNOWN, Match, understand
from concierge.phrasebook import say
from messaging.chat.conversations import post_concierge_message
from messaging.live.bus import publish_after_commit
from messaging.store.db import utcnow
from messaging.store.models import ConciergeMessageOrigin, ConciergeThread, Message, User

log = logging.getLogger(__name__)

MISUNDERSTANDINGS_BEFORE_HANDOVER = 2
# The intents the bot hands to a person, with the reason it records (SPEC §5.2's reasons: accepting an offer or
# paying is ``other``).
HANDOVERS = {
    "urgent": "urgent", "human": "asked", "cancellation": "cancellation", "change": "change", "refund": "refund",
    "payment": "other",
}


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
    match = understand(question.message)
    if thread.needs_human and not (match.intent == "urgent" and thread.handover_reason != "urgent"):
        return "skipped: a person has this conversation"
    user = session.get(User, thread.user_id)
    if user is None:
        return "skipped: not a question to the concierge"
    previous = previous_answer(session, thread.conversation_id)
    lang = locales.choose(user.locale, match.language, previous.language)
    now = utcnow()
    reason = HANDOVERS.get(match.intent)
    if reason is not None:
        said = "urgent" if reason == "urgent" else "handover_asked" if reason == "asked" else f"handover_{match.intent}"
        answer = Answer(say(lang, said), match.intent)
        return _reply(session, thread, message_id, answer, lang, hand_over=reason)
    hosting = is_host(session, user)
    if (match.intent == UNKNOWN and previous.intent in _FOLLOWS and not hosting
            and names_a_trip(session, user.id, match.references, now.date())):
        # "and the one in Porto?": the previous question, about the trip this one names.
        match = Match(str(previous.intent), match.confidence, match.language, None, match.references)
    if match.intent == UNKNOWN:
        thread.misunderstandings += 1
        if thread.misunderstandings >= MISUNDERSTANDINGS_BEFORE_HANDOVER:
            answer = Answer(say(lang, "handover_not_understood"), UNKNOWN)
            return _reply(session, thread, message_id, answer, lang, hand_over="not_understood")
        help_text = say(lang, "help_host" if hosting else "help_traveler")
        return _reply(session, thread, message_id, Answer(say(lang, "not_understood") + help_text, UNKNOWN), lang)
    thread.misunderstandings = 0
    if hosting:
        answer = answer_host(session, user, match, lang, now)
    else:
        answer = answer_traveler(session, user, match, lang, previous, now)
    return _reply(session, thread, message_id, answer, lang)


# The intents a question naming only a trip ("and in March?") asks again about that trip.
_FOLLOWS = frozenset({
    "check_in", "check_out", "address", "guests", "nights", "days_until", "price", "next_trip", "check_in_info",
    "amenity", "amenities", "pets", "smoking", "bedrooms", "bathrooms", "max_guests", "house_rules",
    "cancellation_policy", "about",
})


def _answered(session: Session, question_id: str) -> bool:
    found = session.execute(
        select(ConciergeMessageOrigin.message_id).where(ConciergeMessageOrigin.question_message_id == question_id)
    ).first()
    return found is not None


def _reply(
    session: Session, thread: ConciergeThread, question_id: str, answer: Answer, lang: locales.Language, *,
    hand_over: str | None = None,
) -> str:
    """Post ``answer`` once for the question, its origin recording the intent, records and language; with
    ``hand_over`` (a reason), the conversation goes to a person."""
    origin = {"kind": "reply", "question_message_id": question_id, "intent": answer.intent,
              "records": answer.records, "language": lang.code}
    try:
        with session.begin_nested():
            message, audience = post_concierge_message(session, thread.conversation_id, answer.text, origin=origin)
    except IntegrityError:
        if _answered(session, question_id):  # a concurrent run answered first
            return "skipped: already answered"
        raise
    if hand_over is not None:
        _mark_handed_over(thread, hand_over, utcnow())
    thread.updated_at = utcnow()
    publish_after_commit(session, "message.created", audience, message)
    return f"handed over: {hand_over}" if hand_over else f"answered: {answer.intent}"


def _mark_handed_over(thread: ConciergeThread, reason: str, now: dt.datetime) -> None:
    """The bot hands the thread to a person for ``reason``. An urgent problem raised while a person already has it
    only changes the reason (it is listed first), keeping how long the user has waited."""
    if not thread.needs_human or thread.handed_over_at is None:
        thread.handed_over_at = now
        thread.team_alerted_at = None
    thread.needs_human = True
    thread.handover_reason = reason
    thread.misunderstandings = 0


def hand_over_to_human(session: Session, conversation_id: str) -> ConciergeThread | None:
    """A person (an admin) takes the conversation: the bot stays quiet there. A reason and time the bot recorded
    when it handed over stay as they are."""
    thread = session.get(ConciergeThread, conversation_id)
    if thread is not None:
        thread.needs_human = True
        thread.updated_at = utcnow()
    return thread


def hand_back_to_bot(session: Session, conversation_id: str) -> ConciergeThread | None:
    """The bot answers again, starting afresh: no reason, no waiting, no misunderstanding counted."""
    thread = session.get(ConciergeThread, conversation_id)
    if thread is not None:
        thread.needs_human = False
        thread.misunderstandings = 0
        thread.handover_reason = None
        thread.handed_over_at = None
        thread.team_alerted_at = None
        thread.updated_at = utcnow()
    return thread

