"""Per-participant read cursors, unread counts, and the seed's ``messages.read`` flag.

A cursor is a position (created_at, id) in the conversation's message order plus ``read_count``,
the number of messages at or before it. ``conversation_stats.message_count - read_count`` is the
unread count, so inbox pages never count rows. Posting a message moves the author's own cursor to
it: everything after anyone's cursor was written by someone else.
"""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, tuple_, update
from sqlalchemy.orm import Session

from messaging.chat.pagination import position_literal
from messaging.errors import NotFound, Unprocessable
from messaging.store.db import utcnow
from messaging.store.models import ConversationParticipant, Message, ReadCursor


@dataclass(frozen=True, slots=True)
class ReadResult:
    unread_count: int
    last_read_at: dt.datetime | None
    moved: bool


def start_cursor(session: Session, conversation_id: str, user_id: str, read_count: int = 0) -> None:
    """The cursor of someone who just joined: nothing before ``read_count`` counts as unread."""
    session.add(ReadCursor(conversation_id=conversation_id, user_id=user_id, read_count=read_count))


def advance_cursor(
    session: Session, conversation_id: str, user_id: str, posted: tuple[str, dt.datetime, int]
) -> ReadResult:
    """Move the cursor of ``user_id``, who just posted ``posted`` — (id, created_at, the conversation's message
    count with it) — to that message, in the caller's transaction; never back (a concurrent move further ahead
    wins). Someone without a cursor (not a participant) has nothing moved. Marks read what the
    cursor crossed that everyone else has read (:func:`mark_read_by_everyone`)."""
    cursor = session.execute(
        select(
            ReadCursor.read_count, ReadCursor.last_read_message_id, ReadCursor.last_read_message_created_at,
            ReadCursor.last_read_at,
        ).where(ReadCursor.conversation_id == conversation_id, ReadCursor.user_id == user_id)
    ).one_or_none()
    target_id, target_at, message_count = posted
    if cursor is None:
        return ReadResult(message_count, None, False)
    old_position = (
        (cursor.last_read_message_created_at, cursor.last_read_message_id)
        if cursor.last_read_message_id is not None
        else None
    )
    if old_position is not None and old_position >= (target_at, target_id):
        return ReadResult(max(0, message_count - cursor.read_count), cursor.last_read_at, False)
    now = utcnow()
    new_count = max(cursor.read_count, message_count)
    moved = session.execute(
        update(ReadCursor)
        .where(
            ReadCursor.conversation_id == conversation_id,
            ReadCursor.user_id == user_id,
            # a concurrent move further ahead wins: the cursor never goes back
            or_(
                ReadCursor.last_read_message_created_at.is_(None),
                tuple_(ReadCursor.last_read_message_created_at, ReadCursor.last_read_message_id)
                < position_literal(target_at, target_id),
            ),
        )
        .values(
            last_read_message_id=target_id,
            last_read_message_created_at=target_at,
            read_count=new_count,
            last_read_at=now,
        )
    ).rowcount  # type: ignore[attr-defined]
    if not moved:
        return ReadResult(max(0, message_count - cursor.read_count), cursor.last_read_at, False)
    mark_read_by_everyone(session, conversation_id, target_at, target_id, after=old_position)
    return ReadResult(max(0, message_count - new_count), now, True)


def _not_a_message_here() -> Unprocessable:
    return Unprocessable(
        "upTo is not a message of this conversation.",
        errors=[{"field": "upTo", "message": "unknown message in this conversation"}],
    )


def advance_cursor_in_one_statement(
    cursor_context: AbstractContextManager[Any], conversation_id: str, user_id: str, up_to_message_id: str | None
) -> tuple[ReadResult, list[str]]:
    """Mark read: move ``user_id``'s cursor forward to ``up_to_message_id`` (or the newest message), never back,
    and set the seed's ``read`` flag on what it crossed that everyone else has read — the one statement
    :data:`_READ_SQL`, on the cursor ``cursor_context`` yields (in autocommit: one round trip). Returns the result
    and, when the cursor moved, the conversation's participants (to tell them); NotFound for a non-participant
    and Unprocessable for an ``upTo`` that is not a message of the conversation, with nothing written in either
    case."""
    now = utcnow()
    params = {"cid": conversation_id, "uid": user_id, "upto": up_to_message_id, "now": now}
    with cursor_context as cursor:
        row = cursor.execute(_READ_SQL, params).fetchone()
    if row is None:  # no cursor: not a participant (the cursor goes with the participation)
        raise NotFound("No such conversation.")
    message_count, old_count, last_read_at, target_found, new_count, audience = row
    if not target_found:
        if up_to_message_id is not None:
            raise _not_a_message_here()
        return ReadResult(0, last_read_at, False), []  # no messages yet
    if new_count is None:  # at or past the target already, or a concurrent read went further first
        return ReadResult(max(0, message_count - old_count), last_read_at, False), []
    return ReadResult(max(0, message_count - new_count), now, True), list(audience)


# The seed's ``read`` rule in SQL, for a message ``m`` that %(uid)s has just read: no other participant (the
# author aside) has a cursor before it. A statement's snapshot still shows %(uid)s's old cursor, so the reader is
# left out by id (the one-statement send and mark read; mark_read_by_everyone is the same rule in SQLAlchemy).
READ_BY_EVERYONE_ELSE = """NOT EXISTS (
           SELECT 1 FROM conversation_participants p
             LEFT JOIN read_cursors rc ON rc.conversation_id = p.conversation_id AND rc.user_id = p.user_id
            WHERE p.conversation_id = m.conversation_id AND p.user_id <> %(uid)s
              AND p.user_id <> coalesce(m.user_id, '')
              AND (rc.last_read_message_created_at IS NULL
                   OR (rc.last_read_message_created_at, rc.last_read_message_id) < (m.created_at, m.id)))"""


# Marking read in one statement. ``cur``: the caller's cursor with the conversation's counters (no
# row: not a participant). ``target``: the message read up to (no row: ``upTo`` is not a message of this
# conversation, or there are no messages), with how many messages are at or before it — counted only for a target
# that is not the newest, over the index range after it. ``moved``: the cursor, only forward; a concurrent read
# that went further first wins (the row is checked again once its lock is had). ``marked``: the seed's ``read``
# flag on the messages the cursor just crossed that every other participant has read too
# (READ_BY_EVERYONE_ELSE), as mark_read_by_everyone does. The participants to tell come back only when the
# cursor moved.
_READ_SQL = f"""
WITH cur AS (
    SELECT rc.read_count, rc.last_read_at, rc.last_read_message_created_at AS old_at,
           rc.last_read_message_id AS old_id, s.message_count, s.last_message_id
      FROM read_cursors rc
      JOIN conversation_stats s ON s.conversation_id = rc.conversation_id
     WHERE rc.conversation_id = %(cid)s AND rc.user_id = %(uid)s
), target AS (
    SELECT m.id, m.created_at,
           CASE WHEN m.id = cur.last_message_id THEN cur.message_count
                ELSE cur.message_count - (SELECT count(*) FROM messages a
                                           WHERE a.conversation_id = %(cid)s
                                             AND (a.created_at, a.id) > (m.created_at, m.id)) END AS read_count
      FROM cur
      JOIN messages m ON m.id = coalesce(%(upto)s, cur.last_message_id) AND m.conversation_id = %(cid)s
), moved AS (
    UPDATE read_cursors rc
       SET last_read_message_id = target.id, last_read_message_created_at = target.created_at,
           read_count = greatest(rc.read_count, target.read_count), last_read_at = %(now)s
      FROM target
     WHERE rc.conversation_id = %(cid)s AND rc.user_id = %(uid)s
       AND (rc.last_read_message_created_at IS NULL
            OR (rc.last_read_message_created_at, rc.last_read_message_id) < (target.created_at, target.id))
    RETURNING rc.read_count
), marked AS (
    UPDATE messages m SET read = true
      FROM cur, target
     WHERE m.conversation_id = %(cid)s AND NOT m.read AND EXISTS (SELECT 1 FROM moved)
       AND (m.created_at, m.id) <= (target.created_at, target.id)
       AND (m.created_at, m.id) > (coalesce(cur.old_at, '-infinity'), coalesce(cur.old_id, ''))
       AND {READ_BY_EVERYONE_ELSE}
)
SELECT cur.message_count, cur.read_count, cur.last_read_at, target.id IS NOT NULL, moved.read_count,
       CASE WHEN moved.read_count IS NOT NULL
            THEN ARRAY(SELECT user_id FROM conversation_participants WHERE conversation_id = %(cid)s) END
  FROM cur
  LEFT JOIN target ON true
  LEFT JOIN moved ON true
"""


def mark_read_by_everyone(
    session: Session,
    conversation_id: str,
    upto_at: dt.datetime,
    upto_id: str,
    *,
    after: tuple[dt.datetime, str] | None = None,
) -> int:
    """Set the seed's ``read`` on messages up to a position that every other participant has read.

    Only messages in (``after``, upto] can change — the range the reader's cursor just crossed —
    and only those still unread are visited (partial index), so the cost follows that range.
    """
    rc = ReadCursor
    p = ConversationParticipant
    someone_behind = (
        select(p.user_id)
        .outerjoin(rc, and_(rc.conversation_id == p.conversation_id, rc.user_id == p.user_id))
        .where(
            p.conversation_id == Message.conversation_id,
            p.user_id != func.coalesce(Message.user_id, ""),
            or_(
                rc.last_read_message_created_at.is_(None),
                tuple_(rc.last_read_message_created_at, rc.last_read_message_id)
                < tuple_(Message.created_at, Message.id),
            ),
        )
        .correlate(Message)
    )
    result = session.execute(
        update(Message)
        .where(
            Message.conversation_id == conversation_id,
            ~Message.read,
            tuple_(Message.created_at, Message.id) <= position_literal(upto_at, upto_id),
            *([tuple_(Message.created_at, Message.id) > position_literal(*after)] if after is not None else []),
            ~exists(someone_behind),
        )
        .values(read=True)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
