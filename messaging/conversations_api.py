"""HTTP: conversations, their participants and messages, read state, unread totals, the concierge chat."""

from __future__ import annotations

from typing import Annotated

from flask import Response
from pydantic import Field
from sqlalchemy.orm import Session

from messaging import conversations as svc
from messaging.auth import USER_ROLES, current_principal
from messaging.db import driver_cursor, get_session, read_session
from messaging.errors import NotFound
from messaging.http import api_blueprint, json_response, no_content, user_implied
from messaging.idempotency import idempotent
from messaging.live import publish_after_commit, publish_committed, publish_once_committed
from messaging.outbox import enqueue_after_commit
from messaging.pagination import CURSOR_MAX_LENGTH, PageQuery, decode_cursor
from messaging.property_threads import INT32_MAX, unread_property_messages
from messaging.read_state import advance_cursor_in_one_statement
from messaging.resources import conversations_json
from messaging.schemas import ApiModel

bp = api_blueprint(
    "conversations", __name__, "Conversations", "Direct, group and offer conversations", roles=USER_ROLES
)

# PostgreSQL text cannot hold NUL: a NUL in a body field is a 422, never a database error.
NO_NUL = r"^[^\x00]*$"
USER_ID = Field(min_length=1, max_length=255, pattern=NO_NUL)
ANSWER_QUESTION_TASK = "concierge.answer_question"


# --- models: the one description of every payload -----------------------------------------------


class ConversationPath(ApiModel):
    id: str = Field(min_length=1, max_length=64)


class ParticipantPath(ApiModel):
    # flask-openapi3 hands path values over by field name, so the field is named as in the URL.
    id: str = Field(min_length=1, max_length=64)
    userId: str = Field(min_length=1, max_length=255)  # noqa: N815


class MessagePath(ApiModel):
    id: str = Field(min_length=1, max_length=64)


class CreateConversationIn(ApiModel):
    participant_ids: list[Annotated[str, USER_ID]] = Field(min_length=1, max_length=svc.MAX_PARTICIPANTS)
    name: str | None = Field(None, min_length=1, max_length=255, pattern=NO_NUL)
    offer_id: int | None = Field(
        None, strict=True, gt=0, le=INT32_MAX, description="an offer the caller is party to (traveler or host)"
    )


class AddParticipantIn(ApiModel):
    user_id: str = USER_ID


class MessageIn(ApiModel):
    message: str = Field(max_length=20_000, pattern=NO_NUL, description="1–1500 characters after trimming")


class ReadIn(ApiModel):
    up_to: str | None = Field(None, min_length=1, max_length=64, pattern=NO_NUL)


class InboxQuery(ApiModel):
    limit: int = Field(50, ge=1, le=100)
    before: str | None = Field(None, max_length=CURSOR_MAX_LENGTH)


class MessageOut(ApiModel):
    id: str
    conversation_id: str
    user_id: str | None
    sender_type: str = Field(description="user | concierge | deleted")
    message: str
    read: bool
    is_edit: bool
    created_at: str


class ParticipantOut(ApiModel):
    user_id: str
    name: str | None
    last_read_at: str | None


class ConversationOut(ApiModel):
    id: str
    name: str | None
    offer_id: int | None
    created_at: str
    is_concierge: bool
    participants: list[ParticipantOut]
    last_message: MessageOut | None
    unread_count: int


class ConversationPageOut(ApiModel):
    items: list[ConversationOut]
    next_cursor: str | None


class MessagePageOut(ApiModel):
    items: list[MessageOut]
    next_cursor: str | None


class UnreadCountOut(ApiModel):
    unread_count: int


class UnreadTotalsOut(ApiModel):
    conversations: int
    property_conversations: int
    total: int


# --- views ----------------------------------------------------------------------------------------


def _conversation(conversation_id: str) -> dict:  # type: ignore[type-arg]
    return conversations_json(get_session(), current_principal().user_id, [conversation_id])[0]


@bp.post("/conversations", responses={201: ConversationOut, 200: ConversationOut})
@idempotent
def create_conversation(body: CreateConversationIn) -> Response:
    """Create a conversation with the caller and the named users; an existing DM is returned (200)."""
    session = get_session()
    conversation_id, created = svc.create_conversation(
        session, current_principal().user_id, body.participant_ids, body.name, body.offer_id
    )
    if created:
        _announce_conversation(session, conversation_id)
    # Committed by @idempotent, with the response it replays.
    return json_response(_conversation(conversation_id), 201 if created else 200)


def _announce_conversation(session: Session, conversation_id: str, only: list[str] | None = None) -> None:
    members = svc.participant_ids(session, conversation_id)
    for user_id in only or members:
        # Each participant gets the resource as they see it (their own unread count).
        resource = conversations_json(session, user_id, [conversation_id])[0]
        publish_after_commit(session, "conversation.created", [user_id], resource)


@bp.get("/conversations", responses={200: ConversationPageOut})
def list_conversations(query: InboxQuery) -> Response:
    """The caller's inbox, latest activity first, each with its last message and unread count."""
    session = get_session()
    user_id = current_principal().user_id
    before = decode_cursor(query.before) if query.before else None
    return Response(svc.inbox_json(session, user_id, query.limit, before), content_type="application/json")


@bp.get("/conversations/<id>", responses={200: ConversationOut})
@user_implied
def get_conversation(path: ConversationPath) -> Response:
    """One conversation with its participants."""
    svc.require_participant(read_session(), path.id, current_principal().user_id)
    return json_response(_conversation(path.id))


@bp.post("/conversations/<id>/participants", responses={201: ConversationOut, 200: ConversationOut})
@idempotent
def add_participant(path: ConversationPath, body: AddParticipantIn) -> Response:
    """Add someone (participants only): 201, or 200 if they were already in."""
    session = get_session()
    added = svc.add_participant(session, current_principal().user_id, path.id, body.user_id)
    if added:
        _announce_conversation(session, path.id, only=[body.user_id])
    # Committed by @idempotent, with the response it replays.
    return json_response(_conversation(path.id), 201 if added else 200)


@bp.delete("/conversations/<id>/participants/<userId>", responses={204: None})
def leave_conversation(path: ParticipantPath) -> Response:
    """Leave the conversation (yourself only; removing someone else is 403)."""
    session = get_session()
    svc.leave_conversation(session, current_principal().user_id, path.id, path.userId)
    session.commit()
    return no_content()


@bp.get("/conversations/<id>/messages", responses={200: MessagePageOut})
@user_implied
def list_messages(path: ConversationPath, query: PageQuery) -> Response:
    """History, keyset-paginated; items oldest→newest within the page."""
    before = decode_cursor(query.before, "before") if query.before else None
    after = decode_cursor(query.after, "after") if query.after else None
    page = svc.history(get_session(), current_principal().user_id, path.id, query.limit, before, after)
    return json_response({"items": page.items, "nextCursor": page.next_cursor})


@bp.post("/conversations/<id>/messages", responses={201: MessageOut})
@user_implied
@idempotent
def post_message(path: ConversationPath, body: MessageIn) -> Response:
    """Post a message (1–1500 characters after trimming)."""
    session = get_session()
    sent = svc.send_user_message(session, path.id, current_principal().user_id, body.message)
    if not session.in_transaction():  # PostgreSQL's one statement, in autocommit: committed already
        publish_committed("message.created", sent.audience, sent.message)
        return json_response(sent.message, 201)
    publish_after_commit(session, "message.created", sent.audience, sent.message)
    if sent.concierge_should_answer:
        enqueue_after_commit(session, ANSWER_QUESTION_TASK, sent.message["id"])
    # Committed by @idempotent, with the response it replays.
    return json_response(sent.message, 201)


@bp.patch("/messages/<id>", responses={200: MessageOut})
def edit_message(path: MessagePath, body: MessageIn) -> Response:
    """The author edits their message; the previous text is kept in the edit history."""
    session = get_session()
    message = svc.edit_message(session, current_principal().user_id, path.id, body.message)
    publish_after_commit(session, "message.updated", svc.participant_ids(session, message["conversationId"]), message)
    session.commit()
    return json_response(message)


@bp.post("/conversations/<id>/read", responses={200: UnreadCountOut})
@user_implied
def mark_read(path: ConversationPath, body: ReadIn) -> Response:
    """Move the caller's read cursor forward to ``upTo`` or the newest message."""
    session = get_session()
    user_id = current_principal().user_id
    if len(path.id) > 21:
        raise NotFound("No such conversation.")
    # One statement; in autocommit (no transaction open) it is committed when it returns.
    result, audience = advance_cursor_in_one_statement(driver_cursor(session), path.id, user_id, body.up_to)
    if result.moved:
        read = {"conversationId": path.id, "userId": user_id, "lastReadAt": result.last_read_at}
        publish_once_committed(session, "conversation.read", audience, read)
    session.commit()
    return json_response({"unreadCount": result.unread_count})


@bp.get("/me/unread", responses={200: UnreadTotalsOut})
def unread_totals() -> Response:
    """How many messages the caller has not read, in conversations and in property threads."""
    session = get_session()
    user_id = current_principal().user_id
    conversations = svc.unread_conversation_messages(session, user_id)
    property_conversations = unread_property_messages(session, user_id)
    return json_response(
        {
            "conversations": conversations,
            "propertyConversations": property_conversations,
            "total": conversations + property_conversations,
        }
    )


@bp.get("/concierge", responses={200: ConversationOut})
def concierge_conversation() -> Response:
    """The caller's concierge conversation, created on first use."""
    session = get_session()
    conversation_id = svc.concierge_conversation_id(session, current_principal().user_id)
    session.commit()
    return json_response(_conversation(conversation_id))
