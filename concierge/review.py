"""Admin review of what the concierge said (SPEC §7): transcripts with their origins and edit history,
taking a conversation over, replying as a person, and platform events with retry.

Plain functions over a Session, shared by the admin API and the admin pages.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, exists, false, func, literal, or_, select, tuple_, union_all
from sqlalchemy.orm import Session

from concierge.chat import hand_back_to_bot, hand_over_to_human
from concierge.models import OfferThread, PlatformEvent
from concierge.processing import retry_failed_event
from concierge.records import current_records
from messaging.chat.conversations import clean_message_text, post_staff_message
from messaging.chat.pagination import Position, encode_cursor, position_literal
from messaging.chat.resources import conversations_json, message_json, participants_by_conversation, select_messages
from messaging.errors import Conflict, NotFound
from messaging.live.bus import publish_after_commit
from messaging.store.models import (
    ConciergeMessageOrigin,
    ConciergeThread,
    ConversationParticipant,
    ConversationStats,
    Message,
    MessageEdit,
)

EXPORT_BATCH = 500


@dataclass(frozen=True, slots=True)
class TranscriptFilters:
    user_id: str | None = None
    event_type: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    needs_human: bool | None = None
    q: str | None = None
    reason: str | None = None  # the hand-over reason (SPEC §5.2)


# A cursor inside the urgent hand-overs, listed first, starts with this (a conversation id, a nanoid, never does).
URGENT_CURSOR = "!"


def list_transcripts(
    session: Session, filters: TranscriptFilters, limit: int, before: Position | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Concierge conversations and offer conversations, latest activity first.

    Driven by ``conversation_stats`` in ``last_activity_at`` order (its index), keeping the rows that are a
    concierge thread or an offer thread, so a page reads about ``limit`` rows whatever the table's size; the
    ``needsHuman=true`` filter starts from the partial index of taken-over threads instead, and the text
    search from the trigram index on messages. Urgent hand-overs come first (:func:`_urgent_first`).
    """
    s, ct = ConversationStats, ConciergeThread
    is_offer_thread = exists().where(OfferThread.conversation_id == s.conversation_id)
    query = (
        select(
            s.conversation_id,
            case((ct.conversation_id.is_(None), literal("offer")), else_=literal("concierge")).label("kind"),
            func.coalesce(ct.needs_human, false()).label("needs_human"),
            s.last_activity_at,
            s.message_count,
            ct.handover_reason,
            ct.handed_over_at,
        )
        .outerjoin(ct, ct.conversation_id == s.conversation_id)
        .where(or_(ct.conversation_id.is_not(None), is_offer_thread))
        .order_by(s.last_activity_at.desc(), s.conversation_id.desc())
        .limit(limit + 1)
    )
    if filters.user_id:
        query = query.where(
            exists().where(
                ConversationParticipant.conversation_id == s.conversation_id,
                ConversationParticipant.user_id == filters.user_id,
            )
        )
    if filters.event_type:
        query = query.where(
            exists()
            .where(Message.conversation_id == s.conversation_id)
            .where(ConciergeMessageOrigin.message_id == Message.id)
            .where(PlatformEvent.id == ConciergeMessageOrigin.event_id)
            .where(PlatformEvent.type == filters.event_type)
        )
    if filters.since:
        query = query.where(s.last_activity_at >= filters.since)
    if filters.until:
        query = query.where(s.last_activity_at < filters.until)
    if filters.needs_human:
        query = query.where(ct.needs_human)
    elif filters.needs_human is False:
        query = query.where(or_(ct.needs_human.is_(False), ct.conversation_id.is_(None)))
    if filters.q:
        pattern = "%" + filters.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            exists().where(Message.conversation_id == s.conversation_id, Message.message.ilike(pattern, escape="\\"))
        )
    if filters.reason:
        query = query.where(ct.handover_reason == filters.reason)
    rows = _urgent_first(session, query, limit, before)
    more = len(rows) > limit
    rows = rows[:limit]
    ids = [r.conversation_id for r in rows]
    users = participants_by_conversation(session, ids)
    last = {c["id"]: c["lastMessage"] for c in conversations_json(session, "", ids)}
    concierge_counts: dict[str, int] = {}
    if ids:
        for cid, count in session.execute(
            select(Message.conversation_id, func.count())
            .join(ConciergeMessageOrigin, ConciergeMessageOrigin.message_id == Message.id)
            .where(Message.conversation_id.in_(ids))
            .group_by(Message.conversation_id)
        ).all():
            concierge_counts[cid] = int(count)
    items = [
        {
            "conversationId": r.conversation_id,
            "kind": r.kind,
            "users": [{"userId": u["userId"], "name": u["name"]} for u in users.get(r.conversation_id, [])],
            "messageCount": r.message_count,
            "conciergeMessageCount": concierge_counts.get(r.conversation_id, 0),
            "lastMessage": last.get(r.conversation_id),
            "needsHuman": bool(r.needs_human),
            "handoverReason": r.handover_reason if r.needs_human else None,
            "waitingSince": r.handed_over_at if r.needs_human else None,
            "lastActivityAt": r.last_activity_at,
        }
        for r in rows
    ]
    next_cursor = None
    if more:
        last_row = rows[-1]
        urgent = last_row.needs_human and last_row.handover_reason == "urgent"
        next_cursor = encode_cursor(last_row.last_activity_at,
                                    (URGENT_CURSOR if urgent else "") + last_row.conversation_id)
    return items, next_cursor


def _urgent_first(session: Session, query: Any, limit: int, before: Position | None) -> list[Any]:
    """Up to ``limit + 1`` rows of ``query`` from ``before``, in one statement: the urgent hand-overs (latest
    activity first), then the rest (likewise). Each part is the query's own keyset range, so paging stays cheap;
    a cursor inside the urgent part carries :data:`URGENT_CURSOR`."""
    s, ct = ConversationStats, ConciergeThread
    urgent = func.coalesce(and_(ct.needs_human, ct.handover_reason == "urgent"), false())

    def part(selected: Any, position: Position | None, rank: int) -> Any:
        if position is not None:
            selected = selected.where(tuple_(s.last_activity_at, s.conversation_id) < position_literal(*position))
        return selected.add_columns(literal(rank).label("urgent_rank"))

    if before is not None and not before[1].startswith(URGENT_CURSOR):
        return list(session.execute(part(query.where(~urgent), before, 0)).all())
    position = (before[0], before[1][len(URGENT_CURSOR):]) if before else None
    both = union_all(part(query.where(urgent), position, 1), part(query.where(~urgent), None, 0)).subquery()
    return list(session.execute(
        select(both)
        .order_by(both.c.urgent_rank.desc(), both.c.last_activity_at.desc(), both.c.conversation_id.desc())
        .limit(limit + 1)
    ).all())


def _require_transcript(session: Session, conversation_id: str) -> tuple[str, bool]:
    if len(conversation_id) > 21:
        raise NotFound("No such transcript.")
    thread = session.get(ConciergeThread, conversation_id)
    if thread is not None:
        return "concierge", thread.needs_human
    if session.execute(select(OfferThread.offer_id).where(OfferThread.conversation_id == conversation_id)).first():
        return "offer", False
    raise NotFound("No such transcript.")


def _annotated(session: Session, rows: list[Any]) -> list[dict[str, Any]]:
    """Messages with their origin (event with type and payload, or the question and intent) and edits."""
    ids = [r.id for r in rows]
    origins = {
        o.message_id: o
        for o in session.execute(
            select(
                ConciergeMessageOrigin.message_id, ConciergeMessageOrigin.kind, ConciergeMessageOrigin.event_id,
                ConciergeMessageOrigin.question_message_id, ConciergeMessageOrigin.intent,
                PlatformEvent.type.label("event_type"), PlatformEvent.payload,
            )
            .outerjoin(PlatformEvent, PlatformEvent.id == ConciergeMessageOrigin.event_id)
            .where(ConciergeMessageOrigin.message_id.in_(ids))
        ).all()
    } if ids else {}
    edits: dict[str, list[dict[str, Any]]] = {}
    if ids:
        for e in session.execute(
            select(MessageEdit.message_id, MessageEdit.previous_message, MessageEdit.edited_at)
            .where(MessageEdit.message_id.in_(ids))
            .order_by(MessageEdit.message_id, MessageEdit.edited_at)
        ).all():
            edits.setdefault(e.message_id, []).append({"message": e.previous_message, "editedAt": e.edited_at})
    out = []
    for r in rows:
        item = message_json(r)
        origin = origins.get(r.id)
        if origin is not None:
            if origin.kind == "reply":
                item["origin"] = {"kind": "reply", "questionMessageId": origin.question_message_id,
                                  "intent": origin.intent}
            elif origin.event_type is not None:
                item["origin"] = {"kind": "event", "eventId": origin.event_id, "eventType": origin.event_type,
                                  "payload": origin.payload}
            else:
                item["origin"] = {"kind": origin.kind, "eventId": origin.event_id}
        if r.id in edits:
            item["edits"] = edits[r.id]
        out.append(item)
    return out


def transcript(session: Session, conversation_id: str) -> dict[str, Any]:
    _kind, needs_human = _require_transcript(session, conversation_id)
    rows = session.execute(
        select_messages().where(Message.conversation_id == conversation_id).order_by(Message.created_at, Message.id)
    ).all()
    thread = session.get(ConciergeThread, conversation_id) if needs_human else None
    return {
        "conversation": conversations_json(session, "", [conversation_id])[0],
        "needsHuman": needs_human,
        "handoverReason": thread.handover_reason if thread else None,
        "waitingSince": thread.handed_over_at if thread else None,
        "messages": _annotated(session, list(rows)),
    }


def transcript_batches(session: Session, conversation_id: str) -> Iterator[list[dict[str, Any]]]:
    """The transcript's messages in keyset batches, for streaming exports."""
    _require_transcript(session, conversation_id)
    after: Position | None = None
    while True:
        query = select_messages().where(Message.conversation_id == conversation_id)
        if after is not None:
            query = query.where(tuple_(Message.created_at, Message.id) > position_literal(*after))
        rows = list(session.execute(query.order_by(Message.created_at, Message.id).limit(EXPORT_BATCH)).all())
        if not rows:
            return
        yield _annotated(session, rows)
        after = (rows[-1].created_at, rows[-1].id)


def take_over(session: Session, conversation_id: str) -> bool:
    if hand_over_to_human(session, conversation_id) is None:
        raise NotFound("No such concierge conversation.")
    return True


def hand_back(session: Session, conversation_id: str) -> bool:
    if hand_back_to_bot(session, conversation_id) is None:
        raise NotFound("No such concierge conversation.")
    return False


def reply_as_human(session: Session, conversation_id: str, admin_id: str, text: str) -> dict[str, Any]:
    """An admin replies in a transcript as staff (SPEC §7): the Message, whose author is the admin and whose
    ``senderType`` is ``staff``, told live to the conversation's participants. A concierge conversation the bot
    still had is taken over first (the bot stays quiet until handed back). The admin does not join: no inbox
    entry, unread count or read cursor of theirs. 404 for a conversation that is not a transcript, 422 for an
    empty or too long text."""
    kind, needs_human = _require_transcript(session, conversation_id)
    text = clean_message_text(text)
    if kind == "concierge" and not needs_human:
        # The thread's row first, then the message, the counters and the inbox entries: the bot's answer's order.
        hand_over_to_human(session, conversation_id)
    message, audience = post_staff_message(session, conversation_id, admin_id, text)
    publish_after_commit(session, "message.created", audience, message)
    return message


def list_events(
    session: Session, status: str | None, event_type: str | None, limit: int, before: Position | None
) -> tuple[list[dict[str, Any]], str | None]:
    query = select(PlatformEvent).order_by(PlatformEvent.received_at.desc(), PlatformEvent.id.desc()).limit(limit + 1)
    if status:
        query = query.where(PlatformEvent.status == status)
    if event_type:
        query = query.where(PlatformEvent.type == event_type)
    if before is not None:
        query = query.where(tuple_(PlatformEvent.received_at, PlatformEvent.id) < position_literal(*before))
    rows = list(session.execute(query).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].received_at, rows[-1].id) if more else None
    return [event_summary(e) for e in rows], next_cursor


def event_summary(e: PlatformEvent) -> dict[str, Any]:
    return {"id": e.id, "type": e.type, "status": e.status, "attempts": e.attempts, "lastError": e.last_error,
            "occurredAt": e.occurred_at, "receivedAt": e.received_at, "processedAt": e.processed_at}


def retry_event(session: Session, event_id: str) -> dict[str, Any]:
    """Send a failed event to the worker again (404 unknown, 409 not failed), carrying its records as stored now
    (:func:`concierge.records.current_records`); the rest of what the platform posted is kept as posted, and so
    is its digest, so a re-delivery of the original body is still recognised as a repeat."""
    event = session.get(PlatformEvent, event_id) if len(event_id) <= 255 else None
    if event is None:
        raise NotFound("No such event.")
    if event.status != "failed":
        raise Conflict(f"Only a failed event can be retried; this one is {event.status}.")
    # The platform fixes what made an event fail by correcting the record (PUT); the retry reads it.
    payload = dict(event.payload)
    payload["data"] = current_records(session, payload.get("data") or {})
    event.payload = payload
    retried = retry_failed_event(session, event_id)
    assert retried is not None
    return event_summary(retried)

