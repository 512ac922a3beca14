"""HTTP: property threads — a traveler's inquiry about a property and the host's answers (SPEC §4)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from flask import Response
from pydantic import Field
from sqlalchemy.orm import Session

from messaging.api.auth import current_principal
from messaging.api.http import api_blueprint, json_response
from messaging.api.idempotency import idempotent
from messaging.chat import property_threads as svc
from messaging.chat.pagination import CURSOR_MAX_LENGTH, DEFAULT_LIMIT, MAX_LIMIT, PageQuery
from messaging.chat.users import USER_ROLES
from messaging.errors import Forbidden
from messaging.live.bus import publish_once_committed
from messaging.schemas import ApiModel, documented
from messaging.store.db import get_session, read_session

bp = api_blueprint(
    "property_threads",
    __name__,
    "Property threads",
    "One inquiry thread per traveler and property, between the traveler and the property's host",
    roles=USER_ROLES,
)

# Guest and host tokens converse; an admin may only read (SPEC §3).
WRITER_ROLES = frozenset({"guest", "host"})


# --- models: the one description of every payload -----------------------------------------------


class PropertyPath(ApiModel):
    # Named as in the URL: flask-openapi3 hands path values over by field name, not alias.
    propertyId: int = Field(gt=0, le=svc.INT32_MAX)  # noqa: N815


class IdPath(ApiModel):
    id: str = Field(min_length=1, max_length=64)


class OpenThreadIn(ApiModel):
    model_config = documented({
        "message": "Hello! Is the flat quiet at night, and can we check in a little early?",
        "plannedCheckIn": "2027-03-12", "plannedCheckOut": "2027-03-15", "plannedNumGuests": 3,
    })

    message: str = Field(
        max_length=20_000, description=f"1–{svc.PROPERTY_MESSAGE_MAX_CHARS} characters after trimming"
    )
    planned_check_in: dt.date | None = None
    planned_check_out: dt.date | None = Field(None, description="after plannedCheckIn")
    planned_num_guests: int | None = Field(None, strict=True, ge=1, le=svc.INT32_MAX)
    offer_id: int | None = Field(
        None, strict=True, gt=0, le=svc.INT32_MAX, description="an offer of the caller's on this property"
    )
    request_to_book_id: int | None = Field(
        None, strict=True, gt=0, le=svc.INT32_MAX, description="a request to book of the caller's on this property"
    )
    trip_id: int | None = Field(
        None, strict=True, gt=0, le=svc.INT32_MAX, description="a trip of the caller's on this property"
    )


class PropertyMessageIn(ApiModel):
    model_config = documented({"message": "Yes, it is very quiet. Check-in from 14:00 is fine."})

    message: str = Field(
        max_length=20_000, description=f"1–{svc.PROPERTY_MESSAGE_MAX_CHARS} characters after trimming"
    )


class ThreadListQuery(ApiModel):
    role: Literal["traveler", "host"] | None = Field(
        None, description="the caller's threads as traveler or as host; by default as host for a host token, "
        "as traveler otherwise"
    )
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    before: str | None = Field(None, max_length=CURSOR_MAX_LENGTH)


PROPERTY_MESSAGE_EXAMPLE = {
    "id": "Qm7x2K_dLp0aZr9TnYw4c", "conversationId": "h3Jk9_LmN0pQrStUvWxYz", "authorId": "trav-1",
    "message": "Hello! Is the flat quiet at night, and can we check in a little early?", "readAt": None,
    "editedAt": None, "createdAt": "2027-03-01T10:20:00.456Z",
}
PROPERTY_CONVERSATION_EXAMPLE = {
    "id": "h3Jk9_LmN0pQrStUvWxYz", "travelerId": "trav-1", "propertyId": 7, "offerId": None,
    "requestToBookId": None, "tripId": None, "plannedCheckIn": "2027-03-12", "plannedCheckOut": "2027-03-15",
    "plannedNumGuests": 3, "createdAt": "2027-03-01T10:20:00.456Z", "lastMessage": PROPERTY_MESSAGE_EXAMPLE,
    "unreadCount": 0,
}


class PropertyMessageOut(ApiModel):
    model_config = documented(PROPERTY_MESSAGE_EXAMPLE)

    id: str
    conversation_id: str
    author_id: str
    message: str
    read_at: dt.datetime | None
    edited_at: dt.datetime | None
    created_at: dt.datetime


class PropertyConversationOut(ApiModel):
    model_config = documented(PROPERTY_CONVERSATION_EXAMPLE)

    id: str
    traveler_id: str
    property_id: int
    offer_id: int | None
    request_to_book_id: int | None
    trip_id: int | None
    planned_check_in: dt.date | None
    planned_check_out: dt.date | None
    planned_num_guests: int | None
    created_at: dt.datetime
    last_message: PropertyMessageOut | None
    unread_count: int = Field(description="messages by the other party not yet read by the caller")


class PropertyConversationPageOut(ApiModel):
    model_config = documented({"items": [PROPERTY_CONVERSATION_EXAMPLE], "nextCursor": None})

    items: list[PropertyConversationOut]
    next_cursor: str | None


class PropertyMessagePageOut(ApiModel):
    model_config = documented({"items": [PROPERTY_MESSAGE_EXAMPLE], "nextCursor": None})

    items: list[PropertyMessageOut] = Field(description="oldest→newest within the page")
    next_cursor: str | None


class UnreadCountOut(ApiModel):
    model_config = documented({"unreadCount": 0})

    unread_count: int


# --- views ----------------------------------------------------------------------------------------


def _writer_id() -> str:
    principal = current_principal()
    if principal.role not in WRITER_ROLES:
        raise Forbidden("Only guest and host tokens can write in property threads; admins may read them.")
    return principal.user_id


@bp.post(
    "/properties/<propertyId>/conversations",
    responses={201: PropertyConversationOut, 200: PropertyConversationOut},
)
@idempotent
def open_property_thread(path: PropertyPath, body: OpenThreadIn) -> Response:
    """Ask a property's host: open (201) or reuse (200) the caller's thread about it, with a message.

    A traveler has one thread per property, with its host: asking again adds the message to it (200). The
    traveler and the host are told (`property_message.created` on their live updates). Send an
    `Idempotency-Key` to make a retry safe.

    **Who may call it:** `guest` and `host` tokens (a host asking about someone else's property); admins only
    read threads (403).

    **Errors:** 404 for an unknown property; 403 for the property's own host; 422 for an empty or too long
    message (1–5000 characters after trimming), a planned check-out not after check-in, fewer than 1 guest, or an
    `offerId` / `requestToBookId` / `tripId` that is not the caller's on this property.
    """
    session = get_session()
    thread, created = svc.open_property_thread(
        session,
        _writer_id(),
        path.propertyId,
        body.message,
        planned_check_in=body.planned_check_in,
        planned_check_out=body.planned_check_out,
        planned_num_guests=body.planned_num_guests,
        offer_id=body.offer_id,
        request_to_book_id=body.request_to_book_id,
        trip_id=body.trip_id,
    )
    _publish(session, "property_message.created", thread["id"], thread["lastMessage"])
    # Committed by @idempotent, with the response it replays.
    return json_response(thread, 201 if created else 200)


def _publish(session: Session, event_type: str, thread_id: str, message: dict) -> None:  # type: ignore[type-arg]
    """Tell the thread's traveler and host once the change commits (at once if it is committed already: a
    statement run in autocommit)."""
    parties = svc.require_party(session, thread_id, message["authorId"])
    publish_once_committed(session, event_type, [parties.traveler_id, parties.host_id], message)


@bp.get("/property-conversations", responses={200: PropertyConversationPageOut})
def list_property_threads(query: ThreadListQuery) -> Response:
    """The caller's property threads, as traveler or as host, latest activity first.

    `role=traveler`: the threads the caller opened; `role=host`: those about the caller's properties. Without
    `role`, a host token gets its properties' threads and any other token the threads it opened. Each comes
    with its last message and the caller's unread count. Keyset-paginated: `limit` 1–100 (default 50),
    `before` the previous page's `nextCursor`.

    **Who may call it:** `guest`, `host` and `admin` tokens, for themselves.

    **Errors:** 422 for an unknown `role`, a `limit` out of range or a cursor this service did not issue.
    """
    before = svc.decode_position(query.before, "before") if query.before else None
    principal = current_principal()
    role = query.role or ("host" if principal.role == "host" else "traveler")
    page = svc.list_threads(read_session(), principal.user_id, role, query.limit, before)
    return json_response({"items": page.items, "nextCursor": page.next_cursor})


@bp.get("/property-conversations/<id>", responses={200: PropertyConversationOut})
def get_property_thread(path: IdPath) -> Response:
    """One property thread, with its last message and the caller's unread count.

    **Who may call it:** its traveler and the property's host (`guest` and `host` tokens); `admin` tokens read
    any thread.

    **Errors:** 404 for an unknown thread or one the caller is not party to.
    """
    principal = current_principal()
    return json_response(svc.get_thread(read_session(), path.id, principal.user_id, may_read_all=principal.is_admin))


@bp.get("/property-conversations/<id>/messages", responses={200: PropertyMessagePageOut})
def list_property_messages(path: IdPath, query: PageQuery) -> Response:
    """A property thread's messages, keyset-paginated.

    Items are oldest→newest within the page; `nextCursor` pages to older ones with `before` (or, when paging
    with `after`, to newer ones). `limit` 1–100, default 50.

    **Who may call it:** its traveler and the property's host (`guest` and `host` tokens); `admin` tokens read
    any thread.

    **Errors:** 404 for an unknown thread or one the caller is not party to; 422 for a `limit` out of range or a
    cursor this service did not issue.
    """
    principal = current_principal()
    before = svc.decode_position(query.before, "before") if query.before else None
    after = svc.decode_position(query.after, "after") if query.after else None
    page = svc.history(
        read_session(), path.id, principal.user_id, query.limit, before, after, may_read_all=principal.is_admin
    )
    return json_response({"items": page.items, "nextCursor": page.next_cursor})


@bp.post("/property-conversations/<id>/messages", responses={201: PropertyMessageOut})
@idempotent
def reply_in_property_thread(path: IdPath, body: PropertyMessageIn) -> Response:
    """Reply in a property thread (201 with the property message).

    The traveler and the host are told (`property_message.created` on their live updates). Send an
    `Idempotency-Key` to make a retry safe.

    **Who may call it:** the thread's traveler and the property's host (`guest` and `host` tokens); admins only
    read (403).

    **Errors:** 404 for a thread the caller is not party to; 422 for an empty or too long message (1–5000
    characters after trimming); 409 while a request with the same `Idempotency-Key` is still being processed.
    """
    session = get_session()
    message = svc.reply(session, path.id, _writer_id(), body.message)
    _publish(session, "property_message.created", path.id, message)
    # Committed by @idempotent, with the response it replays.
    return json_response(message, 201)


@bp.patch("/property-messages/<id>", responses={200: PropertyMessageOut})
def edit_property_message(path: IdPath, body: PropertyMessageIn) -> Response:
    """Edit a property message (200 with the property message).

    Sets `editedAt`; the previous text is kept. The traveler and the host are told (`property_message.updated`
    on their live updates).

    **Who may call it:** the message's author (`guest` and `host` tokens); admins only read (403).

    **Errors:** 403 for someone else's message; 404 for a message the caller cannot see; 422 for an empty or
    too long message.
    """
    session = get_session()
    message = svc.edit_property_message(session, path.id, _writer_id(), body.message)
    _publish(session, "property_message.updated", message["conversationId"], message)
    session.commit()
    return json_response(message)


@bp.post("/property-conversations/<id>/read", responses={200: UnreadCountOut})
def mark_property_thread_read(path: IdPath) -> Response:
    """Mark a property thread read: `readAt` on the other party's unread messages.

    Answers with the caller's unread count in the thread, which is then 0.

    **Who may call it:** the thread's traveler and the property's host (`guest` and `host` tokens); admins only
    read (403).

    **Errors:** 404 for a thread the caller is not party to.
    """
    session = get_session()
    unread = svc.mark_read(session, path.id, _writer_id())
    session.commit()
    return json_response({"unreadCount": unread})
