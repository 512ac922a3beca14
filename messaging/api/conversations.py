"""HTTP: conversations, their participants and messages, read state, unread totals, the concierge chat."""

from __future__ import annotations

from typing import Annotated

from flask import Response
from pydantic import Field
from sqlalchemy.orm import Session

from messaging.api.auth import current_principal
from messaging.api.http import api_blueprint, json_response, no_content, user_implied
from messaging.api.idempotency import idempotent
from messaging.chat import conversations as svc
from messaging.chat.pagination import CURSOR_MAX_LENGTH, PageQuery, decode_cursor
from messaging.chat.property_threads import INT32_MAX, unread_property_messages
from messaging.chat.read_state import advance_cursor_in_one_statement
from messaging.chat.resources import conversations_json
from messaging.chat.users import USER_ROLES
from messaging.errors import NotFound
from messaging.live.bus import publish_after_commit, publish_committed, publish_once_committed
from messaging.outbox import enqueue_after_commit
from messaging.schemas import ApiModel, documented
from messaging.store.db import driver_cursor, get_session, read_session

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
    model_config = documented({"participantIds": ["host-1", "trav-2"], "name": "Casa Azul, 12–15 March"})

    participant_ids: list[Annotated[str, USER_ID]] = Field(min_length=1, max_length=svc.MAX_PARTICIPANTS)
    name: str | None = Field(None, min_length=1, max_length=255, pattern=NO_NUL)
    offer_id: int | None = Field(
        None, strict=True, gt=0, le=INT32_MAX, description="an offer the caller is party to (traveler or host)"
    )


class AddParticipantIn(ApiModel):
    model_config = documented({"userId": "trav-2"})

    user_id: str = USER_ID


class MessageIn(ApiModel):
    model_config = documented({"message": "Hi Helena, is there parking near the house?"})

    message: str = Field(max_length=20_000, pattern=NO_NUL, description="1–1500 characters after trimming")


class ReadIn(ApiModel):
    model_config = documented({"upTo": "V1StGXR8_Z5jdHi6B-myT"})

    up_to: str | None = Field(None, min_length=1, max_length=64, pattern=NO_NUL)


class InboxQuery(ApiModel):
    limit: int = Field(50, ge=1, le=100)
    before: str | None = Field(None, max_length=CURSOR_MAX_LENGTH)


MESSAGE_EXAMPLE = {
    "id": "V1StGXR8_Z5jdHi6B-myT", "conversationId": "Uakgb_J5m9g-0JDMbcJqL", "userId": "trav-1",
    "senderType": "user", "message": "Hi Helena, is there parking near the house?", "read": False, "isEdit": False,
    "createdAt": "2027-03-01T10:15:00.123Z",
}
CONVERSATION_EXAMPLE = {
    "id": "Uakgb_J5m9g-0JDMbcJqL", "name": None, "offerId": 70, "createdAt": "2027-03-01T10:14:58.002Z",
    "isConcierge": False,
    "participants": [
        {"userId": "trav-1", "name": "Tomás Silva", "lastReadAt": "2027-03-01T10:15:00.123Z"},
        {"userId": "host-1", "name": "Helena Costa", "lastReadAt": None},
    ],
    "lastMessage": MESSAGE_EXAMPLE, "unreadCount": 0,
}


class MessageOut(ApiModel):
    model_config = documented(MESSAGE_EXAMPLE)

    id: str
    conversation_id: str
    user_id: str | None
    sender_type: str = Field(description="user | concierge | staff (an admin's reply) | deleted")
    message: str
    read: bool
    is_edit: bool
    created_at: str


class ParticipantOut(ApiModel):
    user_id: str
    name: str | None
    last_read_at: str | None


class ConversationOut(ApiModel):
    model_config = documented(CONVERSATION_EXAMPLE)

    id: str
    name: str | None
    offer_id: int | None
    created_at: str
    is_concierge: bool
    participants: list[ParticipantOut]
    last_message: MessageOut | None
    unread_count: int


class ConversationPageOut(ApiModel):
    model_config = documented({"items": [CONVERSATION_EXAMPLE], "nextCursor": "MjAyNy0wMy0wMVQxMDoxNTowMC4xMjNa"})

    items: list[ConversationOut]
    next_cursor: str | None


class MessagePageOut(ApiModel):
    model_config = documented({"items": [MESSAGE_EXAMPLE], "nextCursor": None})

    items: list[MessageOut]
    next_cursor: str | None


class UnreadCountOut(ApiModel):
    model_config = documented({"unreadCount": 0})

    unread_count: int


class UnreadTotalsOut(ApiModel):
    model_config = documented({"conversations": 3, "propertyConversations": 1, "total": 4})

    conversations: int
    property_conversations: int
    total: int


# --- views ----------------------------------------------------------------------------------------


def _conversation(conversation_id: str) -> dict:  # type: ignore[type-arg]
    return conversations_json(get_session(), current_principal().user_id, [conversation_id])[0]


@bp.post("/conversations", responses={201: ConversationOut, 200: ConversationOut})
@idempotent
def create_conversation(body: CreateConversationIn) -> Response:
    """Create a conversation with the caller and the named users.

    With exactly one other participant and no name it is a direct message: an existing one between the two is
    returned (200) rather than a second created (201). `offerId` links it to an offer the caller is party to
    (traveler or host). The other participants are told (`conversation.created` on their live updates). Send an
    `Idempotency-Key` to make a retry safe: the same key returns the first response and creates nothing.

    **Who may call it:** `guest`, `host` and `admin` tokens.

    **Errors:** 422 for unknown user ids, no other participant or more than 50, or an offer that is not the
    caller's; 409 while a request with the same `Idempotency-Key` is still being processed.
    """
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
    """The caller's inbox, latest activity first.

    Each conversation comes with its participants, its last message and the caller's unread count; activity is
    the last message, else the creation. Keyset-paginated: `limit` 1–100 (default 50), and `before` the previous
    page's `nextCursor` (null on the last page).

    **Who may call it:** `guest`, `host` and `admin` tokens; each sees only the conversations they are in.

    **Errors:** 422 for a `limit` out of range or a cursor this service did not issue.
    """
    session = get_session()
    user_id = current_principal().user_id
    before = decode_cursor(query.before) if query.before else None
    return Response(svc.inbox_json(session, user_id, query.limit, before), content_type="application/json")


@bp.get("/conversations/<id>", responses={200: ConversationOut})
@user_implied
def get_conversation(path: ConversationPath) -> Response:
    """One conversation with its participants.

    With each participant's `lastReadAt`, the last message and the caller's unread count.

    **Who may call it:** its participants (`guest`, `host` and `admin` tokens).

    **Errors:** 404 for an unknown conversation or one the caller is not in (never revealing it exists).
    """
    svc.require_participant(read_session(), path.id, current_principal().user_id)
    return json_response(_conversation(path.id))


@bp.post("/conversations/<id>/participants", responses={201: ConversationOut, 200: ConversationOut})
@idempotent
def add_participant(path: ConversationPath, body: AddParticipantIn) -> Response:
    """Add someone to a conversation.

    201 with the conversation, or 200 if they were already in. The person added is told
    (`conversation.created` on their live updates). Send an `Idempotency-Key` to make a retry safe.

    **Who may call it:** the conversation's participants (`guest`, `host` and `admin` tokens).

    **Errors:** 404 for a conversation the caller is not in; 403 for a concierge conversation (it belongs to one
    person); 422 for an unknown user or a conversation that already has 50 participants.
    """
    session = get_session()
    added = svc.add_participant(session, current_principal().user_id, path.id, body.user_id)
    if added:
        _announce_conversation(session, path.id, only=[body.user_id])
    # Committed by @idempotent, with the response it replays.
    return json_response(_conversation(path.id), 201 if added else 200)


@bp.delete("/conversations/<id>/participants/<userId>", responses={204: None})
def leave_conversation(path: ParticipantPath) -> Response:
    """Leave a conversation (204).

    `userId` is the caller's own id: nobody can remove someone else.

    **Who may call it:** the conversation's participants (`guest`, `host` and `admin` tokens), for themselves.

    **Errors:** 403 for removing someone else, or for a concierge conversation; 404 for a conversation the
    caller is not in.
    """
    session = get_session()
    svc.leave_conversation(session, current_principal().user_id, path.id, path.userId)
    session.commit()
    return no_content()


@bp.get("/conversations/<id>/messages", responses={200: MessagePageOut})
@user_implied
def list_messages(path: ConversationPath, query: PageQuery) -> Response:
    """A conversation's messages, keyset-paginated.

    Items are oldest→newest within the page. The first page is the newest messages; `before` (the previous
    page's `nextCursor`) pages to older ones, `after` to newer ones. `limit` 1–100, default 50.

    **Who may call it:** the conversation's participants (`guest`, `host` and `admin` tokens).

    **Errors:** 404 for a conversation the caller is not in; 422 for a `limit` out of range or a cursor this
    service did not issue.
    """
    before = decode_cursor(query.before, "before") if query.before else None
    after = decode_cursor(query.after, "after") if query.after else None
    page = svc.history(get_session(), current_principal().user_id, path.id, query.limit, before, after)
    return json_response({"items": page.items, "nextCursor": page.next_cursor})


@bp.post("/conversations/<id>/messages", responses={201: MessageOut})
@user_implied
@idempotent
def post_message(path: ConversationPath, body: MessageIn) -> Response:
    """Post a message (201 with the Message).

    1–1500 characters after trimming. The participants are told (`message.created` on their live updates). In
    the caller's concierge conversation the concierge answers. Send an `Idempotency-Key` to make a retry safe.

    **Who may call it:** the conversation's participants (`guest`, `host` and `admin` tokens).

    **Errors:** 404 for a conversation the caller is not in; 422 for an empty or too long message; 409 while
    a request with the same `Idempotency-Key` is still being processed.
    """
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
    """Edit a message (200 with the Message).

    Sets `isEdit`; the previous text is kept in the edit history (admins see it in transcripts). The
    participants are told (`message.updated` on their live updates).

    **Who may call it:** the message's author (`guest`, `host` and `admin` tokens); never a concierge message.

    **Errors:** 403 for someone else's message or a concierge message; 404 for a message in a conversation the
    caller is not in; 422 for an empty or too long message.
    """
    session = get_session()
    message = svc.edit_message(session, current_principal().user_id, path.id, body.message)
    publish_after_commit(session, "message.updated", svc.participant_ids(session, message["conversationId"]), message)
    session.commit()
    return json_response(message)


@bp.post("/conversations/<id>/read", responses={200: UnreadCountOut})
@user_implied
def mark_read(path: ConversationPath, body: ReadIn) -> Response:
    """Mark a conversation read, up to `upTo` or the newest message.

    The caller's read cursor only moves forward, never back; the answer is how many messages remain unread.
    When it moves, the participants are told (`conversation.read` on their live updates).

    **Who may call it:** the conversation's participants (`guest`, `host` and `admin` tokens).

    **Errors:** 404 for a conversation the caller is not in; 422 for an `upTo` that is not a message of the
    conversation.
    """
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
    """How many messages the caller has not read.

    In conversations (messages by others after the caller's read cursor) and in property threads (the other
    party's messages without `readAt`), and their total.

    **Who may call it:** `guest`, `host` and `admin` tokens, for themselves.

    **Errors:** only those of authentication (401, 403 for a `service` token).
    """
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
    """The caller's concierge conversation, created on first use.

    The concierge writes its event notifications here (offer events go to the offer's conversation instead) and
    answers the messages posted here from the caller's own records (`isConcierge` is true).

    **Who may call it:** `guest`, `host` and `admin` tokens, for themselves.

    **Errors:** only those of authentication (401, 403 for a `service` token).
    """
    session = get_session()
    conversation_id = svc.concierge_conversation_id(session, current_principal().user_id)
    session.commit()
    return json_response(_conversation(conversation_id))
