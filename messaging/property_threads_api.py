"""HTTP: property threads — a traveler's inquiry about a property and the host's answers (SPEC §4)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from flask import Response
from pydantic import Field
from sqlalchemy.orm import Session

from messaging import property_threads as svc
from messaging.auth import USER_ROLES, current_principal
from messaging.db import get_session, read_session
from messaging.errors import Forbidden
from messaging.http import api_blueprint, json_response
from messaging.idempotency import idempotent
from messaging.live import publish_once_committed
from messaging.pagination import CURSOR_MAX_LENGTH, DEFAULT_LIMIT, MAX_LIMIT, PageQuery
from messaging.schemas import ApiModel

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
    message: str = Field(
        max_length=20_000, description=f"1–{svc.PROPERTY_MESSAGE_MAX_CHARS} characters after trimming"
    )


class ThreadListQuery(ApiModel):
    role: Literal["traveler", "host"] = Field("traveler", description="the caller's threads as traveler or as host")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    before: str | None = Field(None, max_length=CURSOR_MAX_LENGTH)


class PropertyMessageOut(ApiModel):
    id: str
    conversation_id: str
    author_id: str
    message: str
    read_at: dt.datetime | None
    edited_at: dt.datetime | None
    created_at: dt.datetime


class PropertyConversationOut(ApiModel):
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
    items: list[PropertyConversationOut]
    next_cursor: str | None


class PropertyMessagePageOut(ApiModel):
    items: list[PropertyMessageOut] = Field(description="oldest→newest within the page")
    next_cursor: str | None


class UnreadCountOut(ApiModel):
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
    """A traveler opens (201) or reuses (200) their one thread about a property, with a first message.

    Check-out after check-in; guests ≥ 1; the property's host cannot open one (403); linked
    offer / request to book / trip must be the caller's, on this property (422).
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
    """The caller's threads as traveler (default) or as host, latest activity first."""
    before = svc.decode_position(query.before, "before") if query.before else None
    page = svc.list_threads(read_session(), current_principal().user_id, query.role, query.limit, before)
    return json_response({"items": page.items, "nextCursor": page.next_cursor})


@bp.get("/property-conversations/<id>", responses={200: PropertyConversationOut})
def get_property_thread(path: IdPath) -> Response:
    """One thread, with its last message and the caller's unread count."""
    principal = current_principal()
    return json_response(svc.get_thread(read_session(), path.id, principal.user_id, may_read_all=principal.is_admin))


@bp.get("/property-conversations/<id>/messages", responses={200: PropertyMessagePageOut})
def list_property_messages(path: IdPath, query: PageQuery) -> Response:
    """History, keyset-paginated; items oldest→newest within the page, ``nextCursor`` pages to older
    ones (or, when paging with ``after``, to newer ones)."""
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
    """The traveler or the host replies (201 with the property message)."""
    session = get_session()
    message = svc.reply(session, path.id, _writer_id(), body.message)
    _publish(session, "property_message.created", path.id, message)
    # Committed by @idempotent, with the response it replays.
    return json_response(message, 201)


@bp.patch("/property-messages/<id>", responses={200: PropertyMessageOut})
def edit_property_message(path: IdPath, body: PropertyMessageIn) -> Response:
    """The author edits their message: sets ``editedAt``; the previous text is kept."""
    session = get_session()
    message = svc.edit_property_message(session, path.id, _writer_id(), body.message)
    _publish(session, "property_message.updated", message["conversationId"], message)
    session.commit()
    return json_response(message)


@bp.post("/property-conversations/<id>/read", responses={200: UnreadCountOut})
def mark_property_thread_read(path: IdPath) -> Response:
    """Set ``readAt`` on the other party's unread messages."""
    session = get_session()
    unread = svc.mark_read(session, path.id, _writer_id())
    session.commit()
    return json_response({"unreadCount": unread})
