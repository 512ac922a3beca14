"""Conversations and their messages: creating, joining, leaving, posting, editing, history, inbox.

Plain functions over a Session; the caller commits. Visibility rule (SPEC §2/§3): a conversation
someone is not in does not exist for them (404), whatever the reason.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from messaging.chat.pagination import Page, Position, encode_cursor, history_page
from messaging.chat.read_state import READ_BY_EVERYONE_ELSE, advance_cursor, mark_read_by_everyone, start_cursor
from messaging.chat.resources import (
    JSON_OPTIONS,
    conversation_json,
    message_json,
    message_position,
    select_messages,
)
from messaging.errors import Forbidden, NotFound, Unprocessable
from messaging.store.db import driver_cursor, utcnow
from messaging.store.ids import new_id
from messaging.store.models import (
    ConciergeThread,
    Conversation,
    ConversationParticipant,
    ConversationStats,
    DirectConversation,
    Message,
    MessageEdit,
    Offer,
    Property,
    ReadCursor,
    User,
)
from messaging.store.upsert import insert_ignore

MESSAGE_MAX_CHARS = 1500
MAX_PARTICIPANTS = 50


def clean_message_text(text: str, field: str = "message", max_chars: int = MESSAGE_MAX_CHARS) -> str:
    """Trim; 1–``max_chars`` characters remain or it is a 422 naming ``field``."""
    cleaned = text.strip()
    if "\x00" in cleaned:
        raise Unprocessable(
            "Text must not contain NUL characters.", errors=[{"field": field, "message": "contains NUL"}]
        )
    if not cleaned:
        raise Unprocessable("The message is empty.", errors=[{"field": field, "message": "must not be blank"}])
    if len(cleaned) > max_chars:
        raise Unprocessable(
            f"The message is longer than {max_chars} characters.",
            errors=[{"field": field, "message": f"at most {max_chars} characters after trimming"}],
        )
    return cleaned


# --- membership ---------------------------------------------------------------------------------


def is_participant(session: Session, conversation_id: str, user_id: str) -> bool:
    return session.get(ConversationParticipant, (conversation_id, user_id)) is not None


def participant_ids(session: Session, conversation_id: str) -> list[str]:
    return list(
        session.scalars(
            select(ConversationParticipant.user_id).where(ConversationParticipant.conversation_id == conversation_id)
        )
    )


def require_participant(session: Session, conversation_id: str, user_id: str) -> None:
    if len(conversation_id) > 21 or not is_participant(session, conversation_id, user_id):
        raise NotFound("No such conversation.")


def _require_users_exist(session: Session, user_ids: set[str], field: str) -> None:
    known = set(session.scalars(select(User.id).where(User.id.in_(user_ids))))
    unknown = sorted(user_ids - known)
    if unknown:
        raise Unprocessable(
            f"Unknown user id(s): {', '.join(unknown[:10])}.",
            errors=[{"field": field, "message": f"unknown user {u}"} for u in unknown[:10]],
        )


def _new_conversation(
    session: Session, member_ids: list[str], name: str | None = None, offer_id: str | None = None
) -> str:
    conversation_id = new_id()
    now = utcnow()
    session.add(Conversation(id=conversation_id, name=name, offer_id=offer_id, created_at=now))
    session.flush()
    session.add(ConversationStats(conversation_id=conversation_id, message_count=0, last_activity_at=now))
    for user_id in member_ids:
        session.add(ConversationParticipant(conversation_id=conversation_id, user_id=user_id))
    session.flush()
    for user_id in member_ids:
        start_cursor(session, conversation_id, user_id)
    session.flush()
    return conversation_id


def create_conversation(
    session: Session,
    caller_id: str,
    participant_ids: list[str],
    name: str | None = None,
    offer_id: int | None = None,
) -> tuple[str, bool]:
    """Create a conversation of the caller and ``participant_ids``; returns (id, created).

    One other participant, no name and no offer make a direct message: the pair's existing DM is
    returned instead (anyone of the two who had left it is back in). An offer must be one the caller is
    party to (:func:`require_offer_party`, 422 naming ``offerId``).
    """
    others = {p for p in participant_ids if p != caller_id}
    if not others:
        raise Unprocessable(
            "Name at least one other participant.",
            errors=[{"field": "participantIds", "message": "must name someone besides the caller"}],
        )
    if len(others) + 1 > MAX_PARTICIPANTS:
        raise Unprocessable(
            f"A conversation has at most {MAX_PARTICIPANTS} participants.",
            errors=[{"field": "participantIds", "message": f"at most {MAX_PARTICIPANTS - 1} others"}],
        )
    _require_users_exist(session, others, "participantIds")
    if offer_id is not None:
        require_offer_party(session, caller_id, offer_id)
    if len(others) == 1 and name is None and offer_id is None:
        return _direct_conversation(session, caller_id, next(iter(others)))
    members = [caller_id, *sorted(others)]
    stored_offer = str(offer_id) if offer_id is not None else None  # conversations.offer_id is the seed's varchar
    if offer_id is not None and name is None:
        name = offer_conversation_name(session, offer_id)
    return _new_conversation(session, members, name=name, offer_id=stored_offer), True


def offer_conversation_name(session: Session, offer_id: int) -> str | None:
    """The name an offer's conversation gets when none is given: "Offer · Casa Azul · 10–14 Apr" (the months
    named when they differ, the years when those do); None for an offer this service does not have."""
    row = session.execute(
        select(Property.name, Offer.check_in, Offer.check_out)
        .join(Property, Property.id == Offer.property_id)
        .where(Offer.id == offer_id)
    ).first()
    if row is None:
        return None
    start, end = row.check_in, row.check_out
    if start.year != end.year:
        stay = f"{start.day} {start:%b %Y} – {end.day} {end:%b %Y}"
    elif start.month != end.month:
        stay = f"{start.day} {start:%b} – {end.day} {end:%b}"
    else:
        stay = f"{start.day}–{end.day} {end:%b}"
    return f"Offer · {row.name} · {stay}"[:255]


def require_offer_party(session: Session, caller_id: str, offer_id: int) -> None:
    """The offer exists and the caller is its traveler or its property's host; else a 422 naming ``offerId``,
    the same for an unknown offer and someone else's, so that it does not tell whether the offer exists."""
    party = session.execute(
        select(Offer.id)
        .join(Property, Property.id == Offer.property_id)
        .where(Offer.id == offer_id, or_(Offer.traveler_id == caller_id, Property.host_id == caller_id))
    ).first()
    if party is None:
        raise Unprocessable(
            "No such offer of yours.", errors=[{"field": "offerId", "message": "no such offer of yours"}]
        )


def _direct_conversation(session: Session, a: str, b: str) -> tuple[str, bool]:
    low, high = sorted((a, b))
    existing = session.execute(
        select(DirectConversation.conversation_id).where(
            DirectConversation.user_low == low, DirectConversation.user_high == high
        )
    ).scalar()
    if existing is None:
        candidate = _new_conversation(session, [a, b])
        # The pair's primary key decides a race: the loser deletes its candidate and joins the winner's.
        inserted = insert_ignore(
            session, DirectConversation, {"user_low": low, "user_high": high, "conversation_id": candidate}
        )
        if inserted:
            return candidate, True
        session.execute(delete(Conversation).where(Conversation.id == candidate))
        existing = session.execute(
            select(DirectConversation.conversation_id).where(
                DirectConversation.user_low == low, DirectConversation.user_high == high
            )
        ).scalar_one()
    for user_id in (a, b):
        _join(session, existing, user_id)
    return existing, False


def _join(session: Session, conversation_id: str, user_id: str) -> bool:
    if not insert_ignore(session, ConversationParticipant, {"conversation_id": conversation_id, "user_id": user_id}):
        return False
    count = session.execute(
        select(ConversationStats.message_count).where(ConversationStats.conversation_id == conversation_id)
    ).scalar_one()
    insert_ignore(
        session, ReadCursor, {"conversation_id": conversation_id, "user_id": user_id, "read_count": count}
    )
    return True


def _require_not_concierge(session: Session, conversation_id: str) -> None:
    if session.get(ConciergeThread, conversation_id) is not None:
        raise Forbidden("A concierge conversation belongs to one person; nobody can be added or removed.")


def add_participant(session: Session, caller_id: str, conversation_id: str, user_id: str) -> bool:
    """Add ``user_id`` (the caller must be in the conversation); True when newly added."""
    require_participant(session, conversation_id, caller_id)
    _require_not_concierge(session, conversation_id)
    _require_users_exist(session, {user_id}, "userId")
    if is_participant(session, conversation_id, user_id):
        return False
    total = session.execute(
        select(func.count()).select_from(ConversationParticipant).where(
            ConversationParticipant.conversation_id == conversation_id
        )
    ).scalar_one()
    if total >= MAX_PARTICIPANTS:
        raise Unprocessable(
            f"A conversation has at most {MAX_PARTICIPANTS} participants.",
            errors=[{"field": "userId", "message": "the conversation is full"}],
        )
    return _join(session, conversation_id, user_id)


def _lock_cursor_and_unread(session: Session, conversation_id: str, user_id: str) -> None:
    """The first locks of a transaction of several statements that moves ``user_id``'s cursor or marks messages
    read, in the order every writer takes its locks (migration 0009): the cursor, then the conversation's unread
    messages (a read marking one of them read then waits before it locks any inbox entry)."""
    for lock in (
        select(ReadCursor.user_id).where(ReadCursor.conversation_id == conversation_id, ReadCursor.user_id == user_id),
        select(Message.id).where(Message.conversation_id == conversation_id, ~Message.read),
    ):
        session.execute(lock.with_for_update())


def leave_conversation(session: Session, caller_id: str, conversation_id: str, user_id: str) -> None:
    """The caller leaves; removing anyone else is refused (403)."""
    require_participant(session, conversation_id, caller_id)
    if user_id != caller_id:
        raise Forbidden("You can only remove yourself from a conversation.")
    _require_not_concierge(session, conversation_id)
    # The deletion locks the leaver's cursor and inbox entry; marking messages read then locks them and the
    # entries whose last message they are. So first the cursor and the unread messages, then the counters (a send
    # here now waits before locking any entry).
    _lock_cursor_and_unread(session, conversation_id, caller_id)
    session.execute(
        select(ConversationStats.conversation_id)
        .where(ConversationStats.conversation_id == conversation_id)
        .with_for_update()
    )
    session.execute(
        delete(ConversationParticipant).where(
            ConversationParticipant.conversation_id == conversation_id, ConversationParticipant.user_id == caller_id
        )
    )
    # Who was waiting only on the leaver has now been read by everyone else.
    last = session.execute(
        select(Message.created_at, Message.id)
        .join(ConversationStats, ConversationStats.last_message_id == Message.id)
        .where(ConversationStats.conversation_id == conversation_id)
    ).first()
    if last is not None:
        mark_read_by_everyone(session, conversation_id, last.created_at, last.id)


# --- messages -----------------------------------------------------------------------------------


def post_message(
    session: Session,
    conversation_id: str,
    author_id: str | None,
    text: str,
    *,
    origin: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Append a message and return it (SPEC §4 Message), in the caller's transaction. ``author_id`` None is the
    concierge, which must then pass ``origin`` (the event or question behind it): one statement
    (:data:`_POST_CONCIERGE_SQL`). A person's message is written in several statements, for the cases the one
    statement send (:func:`send_user_message`) leaves to it: a concierge conversation. An admin's reply as staff is
    :func:`post_staff_message`."""
    body = clean_message_text(text)
    message_id = new_id()
    now = utcnow()
    if author_id is None:
        if origin is None:
            raise ValueError("a concierge message needs its origin")
        _post_concierge_message(session, conversation_id, message_id, body, now, origin)
        return _message(message_id, conversation_id, None, body, now)
    if origin is not None:
        raise ValueError("only a concierge message has an origin")
    # Locks in the order every writer takes them: the author's cursor and the unread messages (moving the cursor
    # marks some read), the counters, and the inbox entries last, with the counters' UPDATE.
    _lock_cursor_and_unread(session, conversation_id, author_id)
    message_count = 1 + session.execute(
        select(ConversationStats.message_count)
        .where(ConversationStats.conversation_id == conversation_id)
        .with_for_update()
    ).scalar_one()
    session.add(
        Message(
            id=message_id,
            conversation_id=conversation_id,
            user_id=author_id,
            message=body,
            read=False,
            is_edit=False,
            created_at=now,
        )
    )
    session.flush()  # no relationship() orders these inserts: the message must exist first
    advance_cursor(session, conversation_id, author_id, (message_id, now, message_count))
    session.execute(
        update(ConversationStats)
        .where(ConversationStats.conversation_id == conversation_id)
        .values(message_count=message_count, last_message_id=message_id, last_activity_at=now)
    )
    return _message(message_id, conversation_id, author_id, body, now)


def post_concierge_message(
    session: Session, conversation_id: str, text: str, *, origin: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """A concierge message (SPEC §4 Message) and who is in its conversation (for the live update), in the
    caller's transaction."""
    body = clean_message_text(text)
    message_id = new_id()
    now = utcnow()
    audience = _post_concierge_message(session, conversation_id, message_id, body, now, origin)
    return _message(message_id, conversation_id, None, body, now), audience


# A concierge message (no author, so no read cursor moves), its origin and the counters in one
# statement, in the caller's transaction, returning the conversation's participants. A second message for the
# same (event, recipient) breaks the origin's unique key and the whole statement is undone, as the ORM's three
# statements were.
_POST_CONCIERGE_SQL = """
WITH msg AS (
    INSERT INTO messages (id, conversation_id, user_id, message, read, is_edit, created_at)
    VALUES (%(mid)s, %(cid)s, NULL, %(body)s, false, false, %(now)s)
    RETURNING id
), origin AS (
    INSERT INTO concierge_message_origins (message_id, kind, event_id, recipient_id, question_message_id, intent,
                                           records, language)
    SELECT id, %(kind)s, %(event_id)s, %(recipient_id)s, %(question_message_id)s, %(intent)s,
           CAST(%(records)s AS jsonb), %(language)s FROM msg
    RETURNING message_id
)
UPDATE conversation_stats
   SET message_count = message_count + 1, last_message_id = %(mid)s, last_activity_at = %(now)s
 WHERE conversation_id = %(cid)s AND EXISTS (SELECT 1 FROM origin)
RETURNING ARRAY(SELECT user_id FROM conversation_participants WHERE conversation_id = %(cid)s)
"""
# ``records`` (an answer's: the records it was made from, a JSON object) and ``language`` are optional.
ORIGIN_FIELDS = ("kind", "event_id", "recipient_id", "question_message_id", "intent", "records", "language")


def _post_concierge_message(
    session: Session, conversation_id: str, message_id: str, body: str, now: Any, origin: dict[str, Any]
) -> list[str]:
    unknown = set(origin) - set(ORIGIN_FIELDS)
    if unknown:
        raise ValueError(f"unknown origin fields: {sorted(unknown)}")
    session.flush()  # what the caller added (a new conversation, say) must exist first
    session.connection()  # in the caller's transaction, not in autocommit
    params = {"mid": message_id, "cid": conversation_id, "body": body, "now": now}
    params.update({field: origin.get(field) for field in ORIGIN_FIELDS})
    if params["records"] is not None:
        params["records"] = orjson.dumps(params["records"]).decode()
    with driver_cursor(session) as cursor:
        cursor.execute(_POST_CONCIERGE_SQL, params)
        row = cursor.fetchone()
    return list(row[0]) if row else []


def post_staff_message(
    session: Session, conversation_id: str, staff_id: str, text: str
) -> tuple[dict[str, Any], list[str]]:
    """An admin's reply as staff (SPEC §7): a Message whose author is ``staff_id`` and whose ``senderType`` is
    ``staff``, and who is in its conversation (for the live update), in the caller's transaction
    (:data:`_POST_STAFF_SQL`). The admin does not join: no participation, cursor or inbox entry of theirs, and the
    reply counts as unread for every participant."""
    body = clean_message_text(text)
    message_id = new_id()
    now = utcnow()
    session.flush()  # what the caller changed (the thread taken over, say) is written first
    session.connection()  # in the caller's transaction, not in autocommit
    params = {"mid": message_id, "cid": conversation_id, "uid": staff_id, "body": body, "now": now}
    with driver_cursor(session) as cursor:
        cursor.execute(_POST_STAFF_SQL, params)
        row = cursor.fetchone()
    if row is None:
        raise NotFound("No such conversation.")
    return _message(message_id, conversation_id, staff_id, body, now, staff=True), list(row[0])


# A staff reply and the counters in one statement, in the caller's transaction, returning the conversation's
# participants: no cursor moves (the author has none), so it locks what a concierge message does, in the same
# order (the new row, the counters, then the inbox entries through the counters' trigger).
_POST_STAFF_SQL = """
WITH msg AS (
    INSERT INTO messages (id, conversation_id, user_id, message, read, is_edit, created_at, from_staff)
    VALUES (%(mid)s, %(cid)s, %(uid)s, %(body)s, false, false, %(now)s, true)
    RETURNING id
)
UPDATE conversation_stats
   SET message_count = message_count + 1, last_message_id = %(mid)s, last_activity_at = %(now)s
 WHERE conversation_id = %(cid)s AND EXISTS (SELECT 1 FROM msg)
RETURNING ARRAY(SELECT user_id FROM conversation_participants WHERE conversation_id = %(cid)s)
"""


def _message(
    message_id: str, conversation_id: str, author_id: str | None, body: str, now: Any, *, staff: bool = False
) -> dict[str, Any]:
    return {
        "id": message_id,
        "conversationId": conversation_id,
        "userId": author_id,
        "senderType": "concierge" if author_id is None else "staff" if staff else "user",
        "message": body,
        "read": False,
        "isEdit": False,
        "createdAt": now,
    }


@dataclass(frozen=True, slots=True)
class Sent:
    message: dict[str, Any]
    audience: list[str]  # every participant, for the live update
    concierge_should_answer: bool  # posted by the owner of a concierge chat: the bot reads it


# The whole send is this one statement, run in autocommit — no BEGIN or COMMIT round trips, and a
# single statement is atomic by itself. Every part sees the same snapshot (taken before the statement), so
# ``old`` is the author's cursor before this message. The parts:
#   member    the author is a participant (else nothing is written: 404), and whether this is a concierge
#             conversation (then nothing is written here either: the general path posts it, in a transaction
#             with the outbox row that asks the bot to answer);
#   old       the author's cursor before this message, locked before any message row (``msg`` reads it): a
#             mark-read locks the reader's cursor, then message rows; taking the cursor after message rows
#             deadlocked a send against the same user's mark-read from another device;
#   msg       the message; ``read`` from the start when nobody else is in the conversation (SPEC §4: read once
#             every other participant has read it);
#   stats     the counters, and so the author's new read_count (a trigger copies the new activity time to
#             every participant's inbox entry: migration 0006);
#   moved     the author's cursor, to this message: everything before it counts as read by the author;
#   marked    the seed's ``read`` flag on the messages the author's cursor just crossed that every other
#             participant had already read (the author is now past all of them); only unread rows are visited
#             (partial index), from the author's old position on.
_SEND_SQL = f"""
WITH member AS (
    SELECT EXISTS (SELECT 1 FROM conversation_participants
                    WHERE conversation_id = %(cid)s AND user_id = %(uid)s) AS ok,
           EXISTS (SELECT 1 FROM concierge_threads WHERE conversation_id = %(cid)s) AS concierge
), old AS (
    SELECT last_read_message_created_at AS at, last_read_message_id AS id
      FROM read_cursors WHERE conversation_id = %(cid)s AND user_id = %(uid)s
       FOR UPDATE
), msg AS (
    INSERT INTO messages (id, conversation_id, user_id, message, read, is_edit, created_at)
    SELECT %(mid)s, %(cid)s, %(uid)s, %(body)s,
           NOT EXISTS (SELECT 1 FROM conversation_participants WHERE conversation_id = %(cid)s AND user_id <> %(uid)s),
           false, %(now)s
      FROM member LEFT JOIN old ON true WHERE ok AND NOT concierge
    RETURNING id
), stats AS (
    UPDATE conversation_stats
       SET message_count = message_count + 1, last_message_id = %(mid)s, last_activity_at = %(now)s
     WHERE conversation_id = %(cid)s AND EXISTS (SELECT 1 FROM msg)
    RETURNING message_count
), moved AS (
    UPDATE read_cursors
       SET read_count = stats.message_count, last_read_message_id = %(mid)s,
           last_read_message_created_at = %(now)s, last_read_at = %(now)s
      FROM stats
     WHERE read_cursors.conversation_id = %(cid)s AND read_cursors.user_id = %(uid)s
), marked AS (
    UPDATE messages m SET read = true
     WHERE m.conversation_id = %(cid)s AND NOT m.read AND EXISTS (SELECT 1 FROM msg)
       -- from the old position on (the very start for a cursor that has none): a range of the partial index
       AND (m.created_at, m.id) > ((SELECT coalesce(max(at), '-infinity') FROM old),
                                   (SELECT coalesce(max(id), '') FROM old))
       AND {READ_BY_EVERYONE_ELSE}
)
SELECT member.ok, member.concierge,
       ARRAY(SELECT user_id FROM conversation_participants WHERE conversation_id = %(cid)s)
  FROM member
"""


def send_user_message(session: Session, conversation_id: str, author_id: str, text: str) -> Sent:
    """A participant posts a message (404 for anyone else): the hot path of the API."""
    if len(conversation_id) > 21:
        raise NotFound("No such conversation.")
    body = clean_message_text(text)
    sent = _send_in_one_statement(session, conversation_id, author_id, body)
    if sent is not None:
        return sent
    # A concierge conversation: posted in the caller's transaction, with the outbox row that asks the bot to answer.
    require_participant(session, conversation_id, author_id)
    message = post_message(session, conversation_id, author_id, body)
    return Sent(
        message,
        participant_ids(session, conversation_id),
        concierge_should_answer(session, conversation_id, author_id),
    )


def _send_in_one_statement(session: Session, conversation_id: str, author_id: str, body: str) -> Sent | None:
    """:data:`_SEND_SQL` on the driver, in autocommit (or in the session's transaction if one is open); None for
    a concierge conversation (nothing written: the caller posts it the general way)."""
    return run_send_statement(driver_cursor(session), conversation_id, author_id, body)


def run_send_statement(
    cursor_context: AbstractContextManager[Any], conversation_id: str, author_id: str, body: str
) -> Sent | None:
    """:data:`_SEND_SQL` on the cursor ``cursor_context`` yields: NotFound for a non-participant and None for a
    concierge conversation, with nothing written in either case."""
    message_id, now = new_id(), utcnow()
    params = {"cid": conversation_id, "uid": author_id, "mid": message_id, "body": body, "now": now}
    with cursor_context as cursor:
        # (moved and marked run whether or not the result mentions them: PostgreSQL runs every data-modifying CTE)
        member, concierge, audience = cursor.execute(_SEND_SQL, params).fetchone()
    if not member:
        raise NotFound("No such conversation.")
    if concierge:
        return None
    return Sent(_message(message_id, conversation_id, author_id, body, now), list(audience), False)


def edit_message(session: Session, caller_id: str, message_id: str, text: str) -> dict[str, Any]:
    """The author edits their message; the previous text goes to the edit history."""
    body = clean_message_text(text)
    row = session.execute(
        select(Message.id, Message.conversation_id, Message.user_id, Message.message).where(Message.id == message_id)
    ).first()
    if row is None or not is_participant(session, row.conversation_id, caller_id):
        raise NotFound("No such message.")
    if row.user_id != caller_id:
        raise Forbidden("Only the author can edit a message.")
    if body != row.message:
        session.add(MessageEdit(id=new_id(), message_id=message_id, previous_message=row.message, edited_at=utcnow()))
        session.execute(update(Message).where(Message.id == message_id).values(message=body, is_edit=True))
    session.flush()
    message = session.execute(select_messages().where(Message.id == message_id)).one()
    return message_json(message)


# --- history and inbox pages: one fixed statement each ------------------------------------------
#
# Run on a binary psycopg cursor (:func:`messaging.store.db.driver_cursor`), prepared by psycopg after a few runs, read
# as plain tuples with the columns of the SQLAlchemy reads in :mod:`messaging.chat.resources` in their order, so the
# same builders shape both (decision 0008). JSON is built here, not by PostgreSQL.


def _history_sql(direction: str) -> str:
    """The page's rows in paging order, one more than asked for (there are more when it comes back). Only a
    message without an author looks for a concierge origin, by primary key, to tell the concierge from a
    deleted user; a staff reply says so in its own row (``from_staff``). ``direction``: ``newest``, ``before`` or
    ``after``."""
    bound = {
        "newest": "",
        "before": "AND (m.created_at, m.id) < (%(at)s, %(pid)s)",
        "after": "AND (m.created_at, m.id) > (%(at)s, %(pid)s)",
    }[direction]
    order = "ASC" if direction == "after" else "DESC"
    return f"""
SELECT m.id, m.conversation_id, m.user_id, m.message, m.read, m.is_edit, m.created_at,
       CASE WHEN m.user_id IS NULL
            THEN (SELECT true FROM concierge_message_origins o WHERE o.message_id = m.id LIMIT 1) END
            AS from_concierge,
       m.from_staff
  FROM messages m
 WHERE m.conversation_id = %(cid)s {bound}
   AND EXISTS (SELECT 1 FROM conversation_participants WHERE conversation_id = %(cid)s AND user_id = %(uid)s)
 ORDER BY m.created_at {order}, m.id {order}
 LIMIT %(limit)s"""


HISTORY_SQL = {d: _history_sql(d) for d in ("newest", "before", "after")}


def history_rows(
    cursor: Any,
    caller_id: str,
    conversation_id: str,
    count: int,
    before: Position | None = None,
    after: Position | None = None,
) -> list[Any]:
    """Up to ``count`` messages in paging order (none when the caller is not a participant), as plain tuples of
    the columns of :data:`messaging.chat.resources.MESSAGE_COLUMNS` in their order, read on ``cursor`` (a binary psycopg
    cursor: :func:`messaging.store.db.driver_cursor`)."""
    params: dict[str, Any] = {"cid": conversation_id, "uid": caller_id, "limit": count}
    direction = "newest"
    if after is not None:
        direction, (params["at"], params["pid"]) = "after", after
    elif before is not None:
        direction, (params["at"], params["pid"]) = "before", before
    return cursor.execute(HISTORY_SQL[direction], params).fetchall()  # type: ignore[no-any-return]


def _inbox_sql(paged: bool) -> str:
    """A page of the caller's conversations by latest activity, each with what the Conversation resource needs
    (SPEC §4): its row, counters, the caller's cursor, its last message and its participants (as three arrays
    in user id order). The page is a backward range of ``ix_inbox_entries_user_activity`` (one entry per
    participation, kept by triggers: :class:`messaging.store.models.InboxEntry`), whose rows also carry the
    conversation's name, offer, creation time, counters, concierge flag and last message, so its cost is the 50
    conversations on it, not all of the caller's, and no lookup in ``conversations``, ``conversation_stats``,
    ``messages`` or ``concierge_threads``. The rest is looked up by key: the participants from their read cursors
    (every participation has its cursor, made and deleted with it, and each cursor carries its participant's
    name: migration 0008), with the caller's read count among them; the cursors come in primary-key order, so the
    arrays need no sort. Only a last message without an author asks ``concierge_message_origins`` whether the
    concierge wrote it (else its author was deleted)."""
    bound = "AND (e.last_activity_at, e.conversation_id) < (%(at)s, %(pid)s)" if paged else ""
    return f"""
WITH page AS (
    SELECT e.conversation_id AS id, e.last_activity_at AS at, e.name, e.offer_id, e.conversation_created_at,
           e.message_count, e.is_concierge, e.last_message_id, e.last_message_user_id, e.last_message_text,
           e.last_message_read, e.last_message_is_edit, e.last_message_created_at, e.last_message_from_staff
      FROM inbox_entries e
     WHERE e.user_id = %(uid)s {bound}
     ORDER BY e.last_activity_at DESC, e.conversation_id DESC
     LIMIT %(limit)s
)
SELECT page.id, page.name, page.offer_id, page.conversation_created_at AS created_at, page.message_count,
       pp.read_count, page.is_concierge,
       page.last_message_id AS m_id, page.last_message_user_id AS m_user_id, page.last_message_text AS m_message,
       page.last_message_read AS m_read, page.last_message_is_edit AS m_is_edit,
       page.last_message_created_at AS m_created_at,
       CASE WHEN page.last_message_id IS NOT NULL AND page.last_message_user_id IS NULL
            THEN (SELECT true FROM concierge_message_origins o WHERE o.message_id = page.last_message_id LIMIT 1)
       END AS m_from_concierge,
       page.last_message_from_staff AS m_from_staff,
       page.at AS last_activity_at, pp.user_ids, pp.names, pp.read_ats
  FROM page
 CROSS JOIN LATERAL (
        SELECT array_agg(p.user_id) AS user_ids, array_agg(p.name) AS names, array_agg(p.last_read_at) AS read_ats,
               max(p.read_count) FILTER (WHERE p.user_id = %(uid)s) AS read_count
          FROM (SELECT rc.user_id, rc.user_name AS name, rc.last_read_at, rc.read_count
                  FROM read_cursors rc
                 WHERE rc.conversation_id = page.id
                 ORDER BY rc.user_id) AS p) AS pp
 ORDER BY page.at DESC, page.id DESC"""


INBOX_SQL = {paged: _inbox_sql(paged) for paged in (False, True)}
# Positions in an inbox row after the 15 columns of messaging.chat.resources.conversation_json.
INBOX_LAST_ACTIVITY = 15
INBOX_PARTICIPANTS = slice(16, 19)  # user ids, names, read times


def inbox_rows(cursor: Any, user_id: str, count: int, before: Position | None = None) -> list[tuple[Any, ...]]:
    """Up to ``count`` of the caller's conversations, latest activity first, read on ``cursor`` as plain tuples
    (positions, not names): the columns of
    :func:`messaging.chat.resources.conversation_json` in its order, then ``last_activity_at`` and the participants'
    user ids, names and read times."""
    params: dict[str, Any] = {"uid": user_id, "limit": count}
    if before is not None:
        params["at"], params["pid"] = before
    return cursor.execute(INBOX_SQL[before is not None], params).fetchall()  # type: ignore[no-any-return]


def history(
    session: Session,
    caller_id: str,
    conversation_id: str,
    limit: int,
    before: Position | None = None,
    after: Position | None = None,
) -> Page:
    """A page of messages, oldest→newest within the page.

    Without ``after`` the page is the newest messages (before ``before``) and ``nextCursor``
    pages to older ones; with ``after`` it is the oldest messages after that position and
    ``nextCursor`` (passed again as ``after``) pages to newer ones. The rows are read with one prepared
    statement straight from psycopg (:data:`HISTORY_SQL`).
    """
    if len(conversation_id) > 21:
        raise NotFound("No such conversation.")
    with driver_cursor(session) as cursor:
        rows = history_rows(cursor, caller_id, conversation_id, limit + 1, before, after)
    if not rows:  # the membership check rode along with the page; only an empty page needs asking why
        require_participant(session, conversation_id, caller_id)
    return history_page(rows, limit, after, message_json, message_position)


def inbox_json(session: Session, user_id: str, limit: int, before: Position | None) -> bytes:
    """The inbox response body: the caller's conversations by latest activity (last message, else creation),
    newest first, read in one statement straight from psycopg (:data:`INBOX_SQL`)."""
    with driver_cursor(session) as cursor:
        return inbox_body(inbox_rows(cursor, user_id, limit + 1, before), limit)


def inbox_body(rows: list[tuple[Any, ...]], limit: int) -> bytes:
    """The inbox response body from up to ``limit + 1`` :func:`inbox_rows`."""
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1][INBOX_LAST_ACTIVITY], rows[-1][0]) if more else None
    items = [conversation_json(r, _inbox_participants(r)) for r in rows]
    return orjson.dumps({"items": items, "nextCursor": next_cursor}, option=JSON_OPTIONS)


def _inbox_participants(row: tuple[Any, ...]) -> list[dict[str, Any]]:
    """The participants of a :func:`inbox_rows` row, from its three arrays."""
    user_ids, names, read_ats = row[INBOX_PARTICIPANTS]
    return [
        {"userId": u, "name": n, "lastReadAt": at}
        for u, n, at in zip(user_ids or (), names or (), read_ats or (), strict=True)
    ]


def unread_conversation_messages(session: Session, user_id: str) -> int:
    p, s, rc = ConversationParticipant, ConversationStats, ReadCursor
    # From the user's participations (indexed), each counter and cursor by primary key.
    unread = (
        select(s.message_count).where(s.conversation_id == p.conversation_id).scalar_subquery()
        - select(rc.read_count)
        .where(rc.conversation_id == p.conversation_id, rc.user_id == p.user_id)
        .scalar_subquery()
    )
    total = session.execute(
        select(func.coalesce(func.sum(unread), 0)).select_from(p).where(p.user_id == user_id)
    ).scalar_one()
    return max(0, int(total))


# --- the concierge conversation -----------------------------------------------------------------


def concierge_should_answer(session: Session, conversation_id: str, author_id: str) -> bool:
    """A message from the owner of a concierge conversation: the bot reads every one, and decides (while a person
    has the conversation it answers only an urgent problem)."""
    thread = session.get(ConciergeThread, conversation_id)
    return thread is not None and thread.user_id == author_id


def concierge_conversation_id(session: Session, user_id: str, *, known_missing: bool = False) -> str:
    """The caller's concierge conversation, created on first use (once, even under a race). ``known_missing``:
    the caller has just read, in this transaction, that the user has none (the concierge's event processing
    does), so creating it is tried at once; one made meanwhile by a concurrent call is still found and returned."""
    if not known_missing:
        existing = session.execute(
            select(ConciergeThread.conversation_id).where(ConciergeThread.user_id == user_id)
        ).scalar()
        if existing is not None:
            return str(existing)
    created = _new_concierge_conversation(session, user_id)
    if created is not None:
        return created
    return str(  # a concurrent call made it first
        session.execute(select(ConciergeThread.conversation_id).where(ConciergeThread.user_id == user_id))
        .scalar_one()
    )


# A user's concierge conversation in one statement, in the caller's transaction — the thread row
# first (its unique user_id decides a race: the loser writes nothing and gets nothing back), then the
# conversation, its counters, the participation and the read cursor, each only if the thread row went in (the
# foreign keys are checked at the end of the statement; the inbox entry comes from the participation's trigger).
_NEW_CONCIERGE_SQL = """
WITH thread AS (
    INSERT INTO concierge_threads (conversation_id, user_id, needs_human, misunderstandings, updated_at)
    VALUES (%(cid)s, %(uid)s, false, 0, %(now)s)
    ON CONFLICT (user_id) DO NOTHING
    RETURNING conversation_id
), conversation AS (
    INSERT INTO conversations (id, name, offer_id, created_at) SELECT %(cid)s, 'Concierge', NULL, %(now)s FROM thread
), stats AS (
    INSERT INTO conversation_stats (conversation_id, message_count, last_activity_at)
    SELECT %(cid)s, 0, %(now)s FROM thread
), member AS (
    INSERT INTO conversation_participants (conversation_id, user_id) SELECT %(cid)s, %(uid)s FROM thread
), cursor AS (
    INSERT INTO read_cursors (conversation_id, user_id, read_count) SELECT %(cid)s, %(uid)s, 0 FROM thread
)
SELECT conversation_id FROM thread
"""


def _new_concierge_conversation(session: Session, user_id: str) -> str | None:
    session.flush()
    session.connection()  # in the caller's transaction
    with driver_cursor(session) as cursor:
        cursor.execute(_NEW_CONCIERGE_SQL, {"cid": new_id(), "uid": user_id, "now": utcnow()})
        row = cursor.fetchone()
    return str(row[0]) if row else None
