"""Property threads: one inquiry thread per (traveler, property) between a traveler and the property's host.

Plain functions over a Session; the caller commits. Visibility (SPEC §2/§3): a thread is seen by its
traveler and by the property's host (admins read); for anyone else it does not exist (404).
Resources are built as the camelCase dicts of SPEC §4 (Property conversation, Property message).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import TIMESTAMP, Select, String, and_, func, literal, or_, select, tuple_, update
from sqlalchemy.orm import Session, aliased

from messaging.chat.pagination import Page, Position, decode_cursor, encode_cursor, history_page
from messaging.errors import Forbidden, NotFound, Unprocessable
from messaging.store.db import driver_cursor, utcnow
from messaging.store.ids import new_id
from messaging.store.models import (
    Offer,
    Property,
    PropertyConversation,
    PropertyMessage,
    PropertyMessageEdit,
    RequestToBook,
    Trip,
)
from messaging.store.upsert import insert_ignore

# property_messages.message is `text`; a cap keeps one message from being a document.
PROPERTY_MESSAGE_MAX_CHARS = 5000
INT32_MAX = 2**31 - 1  # property, offer, request-to-book and trip ids are PostgreSQL integers
ROLES = ("traveler", "host")

_ID_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,21}")

PC = PropertyConversation
PM = PropertyMessage


# --- small rules ----------------------------------------------------------------------------------


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """Every time leaves in UTC, whatever the zone of the session that read it."""
    return None if value is None else value.astimezone(dt.UTC)


def _looks_like_id(value: str) -> bool:
    # Anything that is not a nanoid cannot name a row; refusing it early also keeps bytes such as
    # NUL, which PostgreSQL text cannot hold, out of the queries.
    return _ID_SHAPE.fullmatch(value) is not None


def clean_property_message(text: str, field: str = "message") -> str:
    """Trim; 1–5000 characters remain or it is a 422 naming ``field``."""
    cleaned = text.strip()
    if not cleaned:
        raise Unprocessable("The message is empty.", errors=[{"field": field, "message": "must not be blank"}])
    if len(cleaned) > PROPERTY_MESSAGE_MAX_CHARS:
        raise Unprocessable(
            f"The message is longer than {PROPERTY_MESSAGE_MAX_CHARS} characters.",
            errors=[{"field": field, "message": f"at most {PROPERTY_MESSAGE_MAX_CHARS} characters after trimming"}],
        )
    if "\x00" in cleaned:
        raise Unprocessable(
            "The message contains a NUL character.", errors=[{"field": field, "message": "must not contain NUL"}]
        )
    return cleaned


def decode_position(cursor: str, field: str) -> Position:
    """A cursor from ``nextCursor``; anything this service did not issue is a 422 naming ``field``."""
    at, row_id = decode_cursor(cursor, field)
    if not _looks_like_id(row_id):
        raise Unprocessable(
            "The cursor is not one this service issued.", errors=[{"field": field, "message": "invalid cursor"}]
        )
    return at, row_id


def _position(position: Position) -> Any:
    """A cursor position as a SQL row value, comparable with (time, id) keys."""
    at, row_id = position
    return tuple_(literal(at, TIMESTAMP(timezone=True)), literal(row_id, String()))


def _plan_errors(
    check_in: dt.date | None, check_out: dt.date | None, num_guests: int | None
) -> list[dict[str, str]]:
    errors = []
    if check_in is not None and check_out is not None and check_out <= check_in:
        errors.append({"field": "plannedCheckOut", "message": "must be after plannedCheckIn"})
    if num_guests is not None and not 1 <= num_guests <= INT32_MAX:
        errors.append({"field": "plannedNumGuests", "message": "must be at least 1"})
    return errors


def _link_errors(
    session: Session,
    traveler_id: str,
    property_id: int,
    offer_id: int | None,
    request_to_book_id: int | None,
    trip_id: int | None,
) -> list[dict[str, str]]:
    """Each linked record must exist and be this traveler's, on this property."""
    errors = []
    links: tuple[tuple[str, type[Offer | RequestToBook | Trip], int | None, str], ...] = (
        ("offerId", Offer, offer_id, "offer"),
        ("requestToBookId", RequestToBook, request_to_book_id, "request to book"),
        ("tripId", Trip, trip_id, "trip"),
    )
    for field, model, record_id, what in links:
        if record_id is None:
            continue
        record = None
        if 0 < record_id <= INT32_MAX:
            record = session.execute(
                select(model.traveler_id, model.property_id).where(model.id == record_id)
            ).first()
        if record is None or record.traveler_id != traveler_id or record.property_id != property_id:
            errors.append({"field": field, "message": f"no such {what} of yours on this property"})
    return errors


# --- resources ------------------------------------------------------------------------------------


def property_message_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "conversationId": row.conversation_id,
        "authorId": row.author_id,
        "message": row.message,
        "readAt": _utc(row.read_at),
        "editedAt": _utc(row.edited_at),
        "createdAt": _utc(row.created_at),
    }


def _select_threads(viewer_id: str) -> tuple[Select[Any], Any]:
    """Threads with their host, last message and the viewer's unread count, in one statement;
    returned with the latest-activity expression (last message, else creation) lists sort on.

    The last message and the unread count are correlated subqueries served by the
    (conversation_id, created_at, id) index, so a page costs one statement whatever its size.
    """
    last = aliased(PropertyMessage, name="last_message")
    inner = aliased(PropertyMessage, name="pm")
    last_id = (
        select(inner.id)
        .where(inner.conversation_id == PC.id)
        .order_by(inner.created_at.desc(), inner.id.desc())
        .limit(1)
        .correlate(PC)
        .scalar_subquery()
    )
    unread = (
        select(func.count())
        .select_from(inner)
        .where(inner.conversation_id == PC.id, inner.author_id != viewer_id, inner.read_at.is_(None))
        .correlate(PC)
        .scalar_subquery()
    )
    activity = func.coalesce(last.created_at, PC.created_at)
    query = (
        select(
            PC.id,
            PC.traveler_id,
            PC.property_id,
            PC.offer_id,
            PC.request_to_book_id,
            PC.trip_id,
            PC.planned_check_in,
            PC.planned_check_out,
            PC.planned_num_guests,
            PC.created_at,
            Property.host_id,
            unread.label("unread_count"),
            activity.label("activity_at"),
            last.id.label("m_id"),
            last.author_id.label("m_author_id"),
            last.message.label("m_message"),
            last.read_at.label("m_read_at"),
            last.edited_at.label("m_edited_at"),
            last.created_at.label("m_created_at"),
        )
        .join(Property, Property.id == PC.property_id)
        .outerjoin(last, last.id == last_id)
    )
    return query, activity


def _thread_json(row: Any) -> dict[str, Any]:
    last_message = None
    if row.m_id is not None:
        last_message = {
            "id": row.m_id,
            "conversationId": row.id,
            "authorId": row.m_author_id,
            "message": row.m_message,
            "readAt": _utc(row.m_read_at),
            "editedAt": _utc(row.m_edited_at),
            "createdAt": _utc(row.m_created_at),
        }
    return {
        "id": row.id,
        "travelerId": row.traveler_id,
        "propertyId": row.property_id,
        "offerId": row.offer_id,
        "requestToBookId": row.request_to_book_id,
        "tripId": row.trip_id,
        "plannedCheckIn": row.planned_check_in,
        "plannedCheckOut": row.planned_check_out,
        "plannedNumGuests": row.planned_num_guests,
        "createdAt": _utc(row.created_at),
        "lastMessage": last_message,
        "unreadCount": int(row.unread_count or 0),
    }


# --- visibility -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ThreadParties:
    id: str
    traveler_id: str
    host_id: str

    def includes(self, user_id: str) -> bool:
        return user_id in (self.traveler_id, self.host_id)


def _parties(session: Session, thread_id: str) -> ThreadParties | None:
    if not _looks_like_id(thread_id):
        return None
    # A request asks more than once (the check, then who to tell): remember it for the session.
    known: dict[str, ThreadParties] = session.info.setdefault("thread_parties", {})
    if thread_id in known:
        return known[thread_id]
    row = session.execute(
        select(PC.id, PC.traveler_id, Property.host_id)
        .join(Property, Property.id == PC.property_id)
        .where(PC.id == thread_id)
    ).first()
    if row is None:
        return None
    known[thread_id] = ThreadParties(row.id, row.traveler_id, row.host_id)
    return known[thread_id]


def require_party(session: Session, thread_id: str, user_id: str, *, may_read_all: bool = False) -> ThreadParties:
    """The thread if ``user_id`` is its traveler or the property's host (or ``may_read_all``); else 404."""
    parties = _parties(session, thread_id)
    if parties is None or not (may_read_all or parties.includes(user_id)):
        raise NotFound("No such property conversation.")
    return parties


# --- opening a thread ----------------------------------------------------------------------------


def open_property_thread(
    session: Session,
    traveler_id: str,
    property_id: int,
    message: str,
    *,
    planned_check_in: dt.date | None = None,
    planned_check_out: dt.date | None = None,
    planned_num_guests: int | None = None,
    offer_id: int | None = None,
    request_to_book_id: int | None = None,
    trip_id: int | None = None,
) -> tuple[dict[str, Any], bool]:
    """Open the traveler's one thread about a property, or reuse it, with a first message.

    Returns (the thread as the traveler sees it, created). On reuse the message is appended, and
    the planned dates, guests and links that were given replace the stored ones (those omitted stay).
    Concurrent opens make one thread: the (traveler, property) unique index decides, and the loser
    of the race reuses the winner's thread.
    """
    errors: list[Mapping[str, str]] = []
    try:
        body = clean_property_message(message)
    except Unprocessable as exc:
        errors.extend(exc.errors or [])
        body = ""
    errors.extend(_plan_errors(planned_check_in, planned_check_out, planned_num_guests))
    if errors:
        raise Unprocessable("; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors)

    prop = session.get(Property, property_id) if 0 < property_id <= INT32_MAX else None
    if prop is None:
        raise NotFound("No such property.")
    if prop.host_id == traveler_id:
        raise Forbidden("A host cannot open an inquiry thread on their own property.")
    link_errors = _link_errors(session, traveler_id, property_id, offer_id, request_to_book_id, trip_id)
    if link_errors:
        raise Unprocessable(
            "; ".join(f"{e['field']}: {e['message']}" for e in link_errors), errors=link_errors
        )

    now = utcnow()
    given = {
        "offer_id": offer_id,
        "request_to_book_id": request_to_book_id,
        "trip_id": trip_id,
        "planned_check_in": planned_check_in,
        "planned_check_out": planned_check_out,
        "planned_num_guests": planned_num_guests,
    }
    existing = _thread_of(session, traveler_id, property_id)
    created = False
    if existing is None:
        candidate = new_id()
        insert_ignore(
            session,
            PropertyConversation,
            {"id": candidate, "traveler_id": traveler_id, "property_id": property_id, "created_at": now, **given},
        )
        # Whose row stands decides, not the insert's rowcount (not reliable for INSERT on psycopg):
        # a loser of the race waited on the unique index and now sees the winner's committed row.
        existing = _thread_of(session, traveler_id, property_id)
        if existing is None:  # pragma: no cover - the unique index guarantees a row
            raise NotFound("No such property conversation.")
        created = existing.id == candidate
        thread_id = candidate
    if not created:
        thread_id = existing.id
        changes = {k: v for k, v in given.items() if v is not None}
        merged_in = changes.get("planned_check_in", existing.planned_check_in)
        merged_out = changes.get("planned_check_out", existing.planned_check_out)
        plan_errors = _plan_errors(merged_in, merged_out, None)
        if plan_errors:
            raise Unprocessable(
                "The planned check-out would not be after the thread's planned check-in.", errors=plan_errors
            )
        if changes:
            session.execute(update(PC).where(PC.id == thread_id).values(**changes))

    session.add(PropertyMessage(id=new_id(), conversation_id=thread_id, author_id=traveler_id, message=body,
                                created_at=now))
    session.flush()
    return get_thread(session, thread_id, traveler_id), created


def _thread_of(session: Session, traveler_id: str, property_id: int) -> Any:
    return session.execute(
        select(PC.id, PC.planned_check_in, PC.planned_check_out).where(
            PC.traveler_id == traveler_id, PC.property_id == property_id
        )
    ).first()


# --- reading --------------------------------------------------------------------------------------


def get_thread(session: Session, thread_id: str, viewer_id: str, *, may_read_all: bool = False) -> dict[str, Any]:
    """One thread as ``viewer_id`` sees it (their unread count); 404 unless they are a party."""
    if not _looks_like_id(thread_id):
        raise NotFound("No such property conversation.")
    query, _ = _select_threads(viewer_id)
    row = session.execute(query.where(PC.id == thread_id)).first()
    if row is None or not (may_read_all or viewer_id in (row.traveler_id, row.host_id)):
        raise NotFound("No such property conversation.")
    return _thread_json(row)


def list_threads(
    session: Session, user_id: str, role: str = "traveler", limit: int = 50, before: Position | None = None
) -> Page:
    """The user's threads as traveler or as host, latest activity (last message, else creation) first.

    One statement per page whatever the number of threads or messages.
    """
    if role not in ROLES:
        raise Unprocessable("role is traveler or host.", errors=[{"field": "role", "message": "traveler or host"}])
    query, activity = _select_threads(user_id)
    query = query.where(PC.traveler_id == user_id) if role == "traveler" else query.where(Property.host_id == user_id)
    if before is not None:
        query = query.where(tuple_(activity, PC.id) < _position(before))
    rows = session.execute(query.order_by(activity.desc(), PC.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].activity_at, rows[-1].id) if more and rows else None
    return Page([_thread_json(r) for r in rows], next_cursor)


def history(
    session: Session,
    thread_id: str,
    viewer_id: str,
    limit: int = 50,
    before: Position | None = None,
    after: Position | None = None,
    *,
    may_read_all: bool = False,
) -> Page:
    """A page of messages, oldest→newest within the page.

    Without ``after``: the newest messages (older than ``before``), and ``nextCursor`` pages to older
    ones. With ``after``: the oldest messages newer than it, and ``nextCursor`` (passed again as
    ``after``) pages to newer ones.
    """
    require_party(session, thread_id, viewer_id, may_read_all=may_read_all)
    key = tuple_(PM.created_at, PM.id)
    query = select(
        PM.id, PM.conversation_id, PM.author_id, PM.message, PM.read_at, PM.edited_at, PM.created_at
    ).where(PM.conversation_id == thread_id)
    if after is not None:
        query = query.where(key > _position(after)).order_by(PM.created_at, PM.id)
    else:
        if before is not None:
            query = query.where(key < _position(before))
        query = query.order_by(PM.created_at.desc(), PM.id.desc())
    return history_page(session.execute(query.limit(limit + 1)).all(), limit, after, property_message_json)


def unread_property_messages(session: Session, user_id: str) -> int:
    """Messages written to ``user_id`` in their threads (as traveler or host) that they have not read."""
    total = session.execute(
        select(func.count())
        .select_from(PM)
        .join(PC, PC.id == PM.conversation_id)
        .join(Property, Property.id == PC.property_id)
        .where(
            or_(PC.traveler_id == user_id, Property.host_id == user_id),
            PM.author_id != user_id,
            PM.read_at.is_(None),
        )
    ).scalar_one()
    return int(total)


# --- writing --------------------------------------------------------------------------------------


def reply(session: Session, thread_id: str, author_id: str, text: str) -> dict[str, Any]:
    """The traveler or the host posts in the thread; anyone else gets 404. One statement (:data:`_REPLY_SQL`: in
    autocommit unless the session has a transaction open)."""
    body = clean_property_message(text)
    if not _looks_like_id(thread_id):
        raise NotFound("No such property conversation.")
    return _reply_in_one_statement(session, thread_id, author_id, body)


def _reply_in_one_statement(session: Session, thread_id: str, author_id: str, body: str) -> dict[str, Any]:
    """:func:`run_reply_statement` on the session's driver cursor; the parties are remembered for the session, as
    :func:`require_party` remembers them, for the caller to tell them."""
    message, parties = run_reply_statement(driver_cursor(session), thread_id, author_id, body)
    session.info.setdefault("thread_parties", {})[thread_id] = parties
    return message


def run_reply_statement(
    cursor_context: AbstractContextManager[Any], thread_id: str, author_id: str, body: str
) -> tuple[dict[str, Any], ThreadParties]:
    """The thread's parties looked up and the message (``body``, already cleaned) inserted only if the author is
    one of them, in one round trip, on the cursor ``cursor_context`` yields (in autocommit unless it is a
    transaction's). The message as the API shows it and the parties to tell; NotFound, with nothing written, for
    anyone else or an unknown thread."""
    message = {"id": new_id(), "conversationId": thread_id, "authorId": author_id, "message": body,
               "readAt": None, "editedAt": None, "createdAt": utcnow()}
    with cursor_context as cursor:
        row = cursor.execute(_REPLY_SQL, message).fetchone()
    parties = ThreadParties(thread_id, *row) if row is not None else None
    if parties is None or not parties.includes(author_id):  # nothing was written
        raise NotFound("No such property conversation.")
    return message, parties


# (The INSERT runs whether or not the result mentions it: PostgreSQL runs every data-modifying CTE.)
_REPLY_SQL = """
WITH parties AS (
    SELECT pc.traveler_id, p.host_id
      FROM property_conversations pc JOIN properties p ON p.id = pc.property_id
     WHERE pc.id = %(conversationId)s
), message AS (
    INSERT INTO property_messages (id, conversation_id, author_id, message, created_at)
    SELECT %(id)s, %(conversationId)s, %(authorId)s, %(message)s, %(createdAt)s
      FROM parties WHERE %(authorId)s IN (traveler_id, host_id)
)
SELECT traveler_id, host_id FROM parties
"""


def edit_property_message(session: Session, message_id: str, editor_id: str, text: str) -> dict[str, Any]:
    """The author edits their message: ``editedAt`` is set and the previous text kept in the history.

    Sending the same text again changes nothing. A party who is not the author gets 403; anyone
    else 404.
    """
    body = clean_property_message(text)
    row = None
    if _looks_like_id(message_id):
        row = session.execute(
            select(PM.id, PM.author_id, PM.message, PC.traveler_id, Property.host_id)
            .join(PC, PC.id == PM.conversation_id)
            .join(Property, Property.id == PC.property_id)
            .where(PM.id == message_id)
        ).first()
    if row is None or editor_id not in (row.traveler_id, row.host_id):
        raise NotFound("No such property message.")
    if row.author_id != editor_id:
        raise Forbidden("Only the author can edit a message.")
    if body != row.message:
        now = utcnow()
        session.add(PropertyMessageEdit(id=new_id(), property_message_id=message_id, previous_message=row.message,
                                        edited_at=now))
        session.execute(update(PM).where(PM.id == message_id).values(message=body, edited_at=now))
        session.flush()
    updated = session.execute(
        select(PM.id, PM.conversation_id, PM.author_id, PM.message, PM.read_at, PM.edited_at, PM.created_at)
        .where(PM.id == message_id)
        .execution_options(populate_existing=True)
    ).one()
    return property_message_json(updated)


def mark_read(session: Session, thread_id: str, reader_id: str) -> int:
    """Set ``readAt`` on the other party's unread messages; returns the reader's unread count (0)."""
    require_party(session, thread_id, reader_id)
    session.execute(
        update(PM)
        .where(and_(PM.conversation_id == thread_id, PM.author_id != reader_id, PM.read_at.is_(None)))
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return 0
