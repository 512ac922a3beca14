"""The JSON shapes of SPEC §4 (Message, Conversation), built from plain rows in bulk."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Select, and_, select
from sqlalchemy.orm import Session

from messaging.chat.property_threads import INT32_MAX
from messaging.store.models import (
    ConciergeMessageOrigin,
    ConciergeThread,
    Conversation,
    ConversationParticipant,
    ConversationStats,
    Message,
    ReadCursor,
    User,
)

# How a resource is written as JSON (orjson): datetimes as UTC with a ``Z``, naive ones taken as UTC.
JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC

MESSAGE_COLUMNS = (
    Message.id,
    Message.conversation_id,
    Message.user_id,
    Message.message,
    Message.read,
    Message.is_edit,
    Message.created_at,
    (ConciergeMessageOrigin.message_id.is_not(None)).label("from_concierge"),
    Message.from_staff,
)


def select_messages() -> Select[Any]:
    """Message rows with what tells a concierge message from a deleted user's (its origin row) and a staff reply
    from a user's (its ``from_staff``)."""
    return select(*MESSAGE_COLUMNS).outerjoin(
        ConciergeMessageOrigin, ConciergeMessageOrigin.message_id == Message.id
    )


def sender_type(user_id: str | None, from_concierge: bool, from_staff: bool) -> str:
    """SPEC §4's ``senderType``. A staff reply whose admin was later deleted is ``deleted``, like every message
    of a deleted user (decision 0016)."""
    if user_id is not None:
        return "staff" if from_staff else "user"
    return "concierge" if from_concierge else "deleted"


def message_json(row: Any) -> dict[str, Any]:
    """A Message from a row of exactly :data:`MESSAGE_COLUMNS` in their order: a SQLAlchemy row of
    :func:`select_messages`, or a plain tuple of :func:`messaging.pg_reads.history_rows` (unpacked by position:
    a history page shapes 50 of them, and plain tuples cost psycopg less than named ones)."""
    message_id, conversation_id, user_id, text, read, is_edit, created_at, from_concierge, from_staff = row
    return {
        "id": message_id,
        "conversationId": conversation_id,
        "userId": user_id,
        "senderType": sender_type(user_id, bool(from_concierge), bool(from_staff)),
        "message": text,
        "read": bool(read),
        "isEdit": bool(is_edit),
        "createdAt": created_at,
    }


# The paging position, (created_at, id), of a MESSAGE_COLUMNS row (messaging.chat.pagination.history_page).
message_position = itemgetter(6, 0)


def load_message(session: Session, message_id: str) -> dict[str, Any] | None:
    row = session.execute(select_messages().where(Message.id == message_id)).first()
    return message_json(row) if row else None


def conversations_json(session: Session, viewer_id: str, conversation_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Conversation resources for ``conversation_ids`` (in that order), seen by ``viewer_id``.

    Two statements whatever the number of conversations: one for the conversations with their
    last message, counters and the viewer's cursor; one for every participant of all of them.
    """
    if not conversation_ids:
        return []
    last = Message.__table__.alias("last_message")
    origin = ConciergeMessageOrigin.__table__.alias("last_origin")
    rows = session.execute(
        select(
            Conversation.id,
            Conversation.name,
            Conversation.offer_id,
            Conversation.created_at,
            ConversationStats.message_count,
            ReadCursor.read_count,
            ConciergeThread.conversation_id.is_not(None).label("is_concierge"),
            last.c.id.label("m_id"),
            last.c.user_id.label("m_user_id"),
            last.c.message.label("m_message"),
            last.c.read.label("m_read"),
            last.c.is_edit.label("m_is_edit"),
            last.c.created_at.label("m_created_at"),
            origin.c.message_id.is_not(None).label("m_from_concierge"),
            last.c.from_staff.label("m_from_staff"),
        )
        .join(ConversationStats, ConversationStats.conversation_id == Conversation.id)
        .outerjoin(
            ReadCursor, and_(ReadCursor.conversation_id == Conversation.id, ReadCursor.user_id == viewer_id)
        )
        .outerjoin(ConciergeThread, ConciergeThread.conversation_id == Conversation.id)
        .outerjoin(last, last.c.id == ConversationStats.last_message_id)
        .outerjoin(origin, origin.c.message_id == last.c.id)
        .where(Conversation.id.in_(conversation_ids))
    ).all()
    participants = participants_by_conversation(session, conversation_ids)
    by_id = {r.id: conversation_json(r, participants.get(r.id, [])) for r in rows}
    return [by_id[cid] for cid in conversation_ids if cid in by_id]


def conversation_json(r: Any, participants: list[dict[str, Any]]) -> dict[str, Any]:
    """A Conversation, seen by the viewer whose ``read_count`` the row carries, from a row whose first 15 columns
    are those :func:`conversations_json` selects, in its order (its SQLAlchemy rows, and the plain tuples of
    :func:`messaging.pg_reads.inbox_rows`)."""
    (cid, name, offer_id, created_at, message_count, read_count, is_concierge,
     m_id, m_user_id, m_message, m_read, m_is_edit, m_created_at, m_from_concierge, m_from_staff) = r[:15]
    last_message = None
    if m_id is not None:
        last_message = {
            "id": m_id,
            "conversationId": cid,
            "userId": m_user_id,
            "senderType": sender_type(m_user_id, bool(m_from_concierge), bool(m_from_staff)),
            "message": m_message,
            "read": bool(m_read),
            "isEdit": bool(m_is_edit),
            "createdAt": m_created_at,
        }
    return {
        "id": cid,
        "name": name,
        "offerId": offer_id_json(offer_id),
        "createdAt": created_at,
        "isConcierge": bool(is_concierge),
        "participants": participants,
        "lastMessage": last_message,
        "unreadCount": max(0, message_count - (read_count or 0)),
    }


def offer_id_json(stored: str | None) -> int | None:
    """A conversation's ``offerId``: its ``conversations.offer_id`` (the seed's varchar) as the integer key of
    ``offers``, or None when it holds none (null, or a value that is not an offer id, stored before offers
    were checked)."""
    if stored is None or not (stored.isascii() and stored.isdigit()):
        return None
    value = int(stored)
    return value if 0 < value <= INT32_MAX else None


def participants_by_conversation(
    session: Session, conversation_ids: Iterable[str]
) -> dict[str, list[dict[str, Any]]]:
    p = ConversationParticipant
    rows = session.execute(
        select(p.conversation_id, p.user_id, User.name, ReadCursor.last_read_at)
        .join(User, User.id == p.user_id)
        .outerjoin(ReadCursor, and_(ReadCursor.conversation_id == p.conversation_id, ReadCursor.user_id == p.user_id))
        .where(p.conversation_id.in_(list(conversation_ids)))
        .order_by(p.conversation_id, p.user_id)
    ).all()
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r.conversation_id, []).append(
            {"userId": r.user_id, "name": r.name, "lastReadAt": r.last_read_at}
        )
    return out
