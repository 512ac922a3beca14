"""HTTP (role admin): transcripts with origins and edits, export, takeover and handback, replying as a
person, and platform events with retry (SPEC §7)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from typing import Any, Literal

import orjson
from flask import Response, stream_with_context
from pydantic import Field
from sqlalchemy.orm import Session

from concierge import review as admin
from concierge.events import event_examples
from messaging.api.auth import current_principal
from messaging.api.conversations import CONVERSATION_EXAMPLE, MessageOut
from messaging.api.csv_cells import csv_cell
from messaging.api.http import api_blueprint, json_response
from messaging.api.idempotency import idempotent
from messaging.chat.pagination import CURSOR_MAX_LENGTH, DEFAULT_LIMIT, MAX_LIMIT, decode_cursor
from messaging.chat.resources import JSON_OPTIONS
from messaging.errors import Unprocessable
from messaging.schemas import ApiModel, documented
from messaging.store.db import get_session
from messaging.store.models import HANDOVER_REASONS

bp = api_blueprint("admin", __name__, "Admin", "Reviewing the concierge", roles=frozenset({"admin"}))


class TranscriptQuery(ApiModel):
    user_id: str | None = Field(None, min_length=1, max_length=255)
    event_type: str | None = Field(None, min_length=1, max_length=64)
    from_: dt.datetime | None = Field(None, alias="from", description="Last activity at or after (ISO 8601)")
    to: dt.datetime | None = Field(None, description="Last activity before (ISO 8601)")
    needs_human: bool | None = None
    q: str | None = Field(None, min_length=1, max_length=200, description="Text in any message")
    reason: Literal[HANDOVER_REASONS] | None = Field(  # type: ignore[valid-type]
        None, description="Why the concierge handed the conversation to a person")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    before: str | None = Field(None, max_length=CURSOR_MAX_LENGTH)


class TranscriptPath(ApiModel):
    # flask-openapi3 hands path values over by field name: named as in the URL.
    conversationId: str = Field(min_length=1, max_length=64)  # noqa: N815


class ExportQuery(ApiModel):
    format: Literal["json", "csv"] = "json"


class ReplyIn(ApiModel):
    model_config = documented({"message": "Hi Tomás, this is Marta from the team: I have asked Helena to call you."})

    message: str = Field(max_length=20_000, description="1–1500 characters after trimming")


class EventsQuery(ApiModel):
    status: Literal["pending", "processing", "processed", "failed", "skipped"] | None = None
    type: str | None = Field(None, min_length=1, max_length=64)
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    before: str | None = Field(None, max_length=CURSOR_MAX_LENGTH)


class EventPath(ApiModel):
    id: str = Field(min_length=1, max_length=255)


# The examples: the concierge conversation of the traveler of concierge.events' examples.
CONCIERGE_ID = "k8Pq2Rs_Tu4Vw6Xy8Za0b"
BOOKED = event_examples()["trip.booked"]["value"]
CONCIERGE_NOTICE = {
    "id": "V1StGXR8_Z5jdHi6B-myT", "conversationId": CONCIERGE_ID, "userId": None, "senderType": "concierge",
    "message": "Your trip to Casa Azul in Lisbon is booked: Fri 12 Mar – Mon 15 Mar (3 nights), 3 guests. "
               "Address: Rua das Flores 12, Lisboa. Check-in from 16:00 on Fri 12 Mar, check-out by 11:00 on "
               "Mon 15 Mar.",
    "read": True, "isEdit": False, "createdAt": "2027-03-01T09:30:02.498Z",
}
TRANSCRIPT_MESSAGES: list[dict[str, Any]] = [
    {**CONCIERGE_NOTICE,
     "origin": {"kind": "event", "eventId": BOOKED["id"], "eventType": BOOKED["type"], "payload": BOOKED}},
    {"id": "Rt5Yu7Io9Pa1Sd3Fg5Hj7", "conversationId": CONCIERGE_ID, "userId": "trav-1", "senderType": "user",
     "message": "What time can we check in?", "read": True, "isEdit": True, "createdAt": "2027-03-02T18:01:00Z",
     "edits": [{"message": "What time can we chek in", "editedAt": "2027-03-02T18:01:20Z"}]},
    {"id": "Zx1Cv3Bn5Mq7Wr9Ty2Ui4", "conversationId": CONCIERGE_ID, "userId": None, "senderType": "concierge",
     "message": "Check-in at Casa Azul is from 16:00 on Fri 12 Mar.", "read": True, "isEdit": False,
     "createdAt": "2027-03-02T18:01:21Z",
     "origin": {"kind": "reply", "questionMessageId": "Rt5Yu7Io9Pa1Sd3Fg5Hj7", "intent": "check_in"}},
]
CONCIERGE_CONVERSATION = {
    **CONVERSATION_EXAMPLE, "id": CONCIERGE_ID, "name": None, "offerId": None, "isConcierge": True,
    "participants": [{"userId": "trav-1", "name": "Tomás Silva", "lastReadAt": "2027-03-02T18:01:21Z"}],
    "lastMessage": {k: v for k, v in TRANSCRIPT_MESSAGES[-1].items() if k != "origin"}, "unreadCount": 0,
}
EVENT_SUMMARY_EXAMPLE = {
    "id": "evt-trip.booked-1", "type": "trip.booked", "status": "failed", "attempts": 5,
    "lastError": "the trip is for property 8 but data.property is 7", "occurredAt": "2027-03-01T09:30:00Z",
    "receivedAt": "2027-03-01T09:30:01.204Z", "processedAt": "2027-03-01T09:30:02.517Z",
}


class TranscriptPageOut(ApiModel):
    model_config = documented({
        "items": [{
            "conversationId": CONCIERGE_ID, "kind": "concierge",
            "users": [{"userId": "trav-1", "name": "Tomás Silva"}], "messageCount": 3, "conciergeMessageCount": 2,
            "lastMessage": CONCIERGE_CONVERSATION["lastMessage"], "needsHuman": False, "handoverReason": None,
            "waitingSince": None, "lastActivityAt": "2027-03-02T18:01:21Z",
        }],
        "nextCursor": None,
    })

    items: list[dict[str, Any]]
    next_cursor: str | None


class TranscriptOut(ApiModel):
    model_config = documented(
        {"conversation": CONCIERGE_CONVERSATION, "needsHuman": False, "handoverReason": None, "waitingSince": None,
         "messages": TRANSCRIPT_MESSAGES}
    )

    conversation: dict[str, Any]
    needs_human: bool
    handover_reason: str | None = Field(None, description="Why the concierge handed it to a person, while one has it")
    waiting_since: str | None = Field(None, description="When the concierge handed it over, while a person has it")
    messages: list[dict[str, Any]]


class HandlingOut(ApiModel):
    model_config = documented({"conversationId": CONCIERGE_ID, "needsHuman": True})

    conversation_id: str
    needs_human: bool


class EventPageOut(ApiModel):
    model_config = documented({"items": [EVENT_SUMMARY_EXAMPLE], "nextCursor": None})

    items: list[dict[str, Any]]
    next_cursor: str | None


class EventSummaryOut(ApiModel):
    model_config = documented({**EVENT_SUMMARY_EXAMPLE, "status": "pending", "lastError": None, "processedAt": None})

    id: str
    type: str
    status: str = Field(description="pending | processing | processed | failed | skipped")
    attempts: int
    last_error: str | None
    occurred_at: str
    received_at: str
    processed_at: str | None


class ReplyOut(MessageOut):
    """The Message the admin wrote: its author is the admin, shown as staff."""

    model_config = documented({
        "id": "Lk2Jh4Gf6Ds8Aq0Wz1Xc3", "conversationId": CONCIERGE_ID, "userId": "admin-1", "senderType": "staff",
        "message": "Hi Tomás, this is Marta from the team: I have asked Helena to call you.", "read": False,
        "isEdit": False, "createdAt": "2027-03-02T18:05:00Z",
    })


EXPORT_RESPONSE = {
    "description": "The transcript as a download (`Content-Disposition: attachment`): every message in order, "
                   "with its origin and edits; as JSON `{\"messages\": [...]}`, or as CSV, one row per message.",
    "content": {
        "application/json": {"schema": {"type": "object"}, "example": {"messages": TRANSCRIPT_MESSAGES[1:]}},
        "text/csv": {
            "schema": {"type": "string"},
            "example": "id,createdAt,senderType,userId,message,originKind,eventId,eventType,questionMessageId,"
                       "intent,edits\r\nRt5Yu7Io9Pa1Sd3Fg5Hj7,2027-03-02T18:01:00+00:00,user,trav-1,"
                       "What time can we check in?,,,,,,1\r\n",
        },
    },
}


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        raise Unprocessable("Times need an offset.", errors=[{"field": "from/to", "message": "needs an offset"}])
    return value


@bp.get("/admin/transcripts", responses={200: TranscriptPageOut})
def list_transcripts(query: TranscriptQuery) -> Response:
    """Concierge transcripts, latest activity first.

    Concierge conversations, and offer conversations the concierge wrote in, each with its user(s), message
    counts, last message and whether a person has it (`needsHuman`); while a person has it, why the concierge
    handed it over (`handoverReason`) and since when (`waitingSince`). Urgent hand-overs come first. Filters:
    `userId`, `eventType` (of the events the concierge told), `from` / `to` (last activity, ISO 8601 with an
    offset), `needsHuman`, `reason` (the hand-over reason) and `q` (text in any message). Keyset-paginated:
    `limit` 1–100 (default 50), `before` the previous page's `nextCursor`.

    **Who may call it:** `admin` tokens (any other role: 403).

    **Errors:** 422 for a filter out of range, a time without an offset, or a cursor this service did not issue.
    """
    filters = admin.TranscriptFilters(
        user_id=query.user_id, event_type=query.event_type, since=_aware(query.from_), until=_aware(query.to),
        needs_human=query.needs_human, q=query.q, reason=query.reason,
    )
    before = decode_cursor(query.before) if query.before else None
    items, next_cursor = admin.list_transcripts(get_session(), filters, query.limit, before)
    return json_response({"items": items, "nextCursor": next_cursor})


@bp.get("/admin/transcripts/<conversationId>", responses={200: TranscriptOut})
def get_transcript(path: TranscriptPath) -> Response:
    """One transcript: every message in order, with origins and edit history.

    Each concierge message carries its `origin`: the event it told (`kind` `event`, with the event's type and
    payload) or the question it answered (`kind` `reply`, with the intent understood). Each edited message
    carries its previous texts (`edits`). Messages of users the platform deleted show `senderType` `deleted`.

    **Who may call it:** `admin` tokens (any other role: 403).

    **Errors:** 404 for a conversation that is not a transcript (neither a concierge conversation nor an offer
    conversation).
    """
    return json_response(admin.transcript(get_session(), path.conversationId))


@bp.get("/admin/transcripts/<conversationId>/export", responses={200: EXPORT_RESPONSE})
def export_transcript(path: TranscriptPath, query: ExportQuery) -> Response:
    """Download a transcript, as JSON or CSV.

    `format=json` (the default) or `format=csv`; streamed in batches, so a long transcript starts at once. CSV
    cells that a spreadsheet would run as a formula are neutralised.

    **Who may call it:** `admin` tokens (any other role: 403).

    **Errors:** 404 for a conversation that is not a transcript; 422 for an unknown `format`.
    """
    content_type, headers, body = export_body(get_session(), path.conversationId, query.format)
    return Response(stream_with_context(body), content_type=content_type, headers=headers)


def export_body(session: Session, conversation_id: str, fmt: str) -> tuple[str, dict[str, str], Iterator[Any]]:
    """Content type, headers and the streamed body of a transcript export (the API's and the pages')."""
    batches = admin.transcript_batches(session, conversation_id)
    first = next(batches, [])  # a missing transcript is a 404 before the download starts
    headers = {"Content-Disposition": f'attachment; filename="transcript-{conversation_id}.{fmt}"'}
    if fmt == "csv":
        return "text/csv; charset=utf-8", headers, _csv(first, batches)
    return "application/json", headers, _json(first, batches)


def _json(first: list[dict[str, Any]], rest: Iterator[list[dict[str, Any]]]) -> Iterator[bytes]:
    yield b'{"messages":['
    sep = b""
    for batch in _chain(first, rest):
        for item in batch:
            yield sep + orjson.dumps(item, option=JSON_OPTIONS)
            sep = b","
    yield b"]}"


def _chain(first: list[dict[str, Any]], rest: Iterator[list[dict[str, Any]]]) -> Iterator[list[dict[str, Any]]]:
    yield first
    yield from rest


CSV_COLUMNS = ["id", "createdAt", "senderType", "userId", "message", "originKind", "eventId", "eventType",
               "questionMessageId", "intent", "edits"]
# What the service makes itself — its message ids (nanoids: 1 in 64 starts with "-", yet letters, digits, "_" and
# "-" call nothing), times, fixed words, counts — is written exactly; every other cell may hold text from outside.
EXACT_CSV_COLUMNS = frozenset({"id", "createdAt", "senderType", "originKind", "questionMessageId", "edits"})


def _json_time(value: Any) -> str:
    """A time written exactly as the JSON export writes it (UTC, with ``Z``)."""
    return orjson.dumps(value, option=JSON_OPTIONS).decode().strip('"')


def _csv(first: list[dict[str, Any]], rest: Iterator[list[dict[str, Any]]]) -> Iterator[str]:
    """The CSV export: every cell but those of :data:`EXACT_CSV_COLUMNS` through
    :func:`messaging.api.csv_cells.csv_cell`, so no formula runs when it is opened in a spreadsheet."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for batch in _chain(first, rest):
        for m in batch:
            origin = m.get("origin") or {}
            cells = (
                m["id"], _json_time(m["createdAt"]), m["senderType"],
                m["userId"] or "", m["message"], origin.get("kind", ""), origin.get("eventId") or "",
                origin.get("eventType") or "", origin.get("questionMessageId") or "", origin.get("intent") or "",
                len(m.get("edits", [])),
            )
            writer.writerow([cell if column in EXACT_CSV_COLUMNS else csv_cell(cell)
                             for column, cell in zip(CSV_COLUMNS, cells, strict=True)])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


@bp.post("/admin/transcripts/<conversationId>/takeover", responses={200: HandlingOut})
def take_over(path: TranscriptPath) -> Response:
    """Take a concierge conversation over from the bot.

    A person has it from now on (`needsHuman` true): the concierge stops answering there until it is handed back.

    **Who may call it:** `admin` tokens (any other role: 403).

    **Errors:** 404 for a conversation that is not a concierge conversation.
    """
    session = get_session()
    needs_human = admin.take_over(session, path.conversationId)
    session.commit()
    return json_response({"conversationId": path.conversationId, "needsHuman": needs_human})


@bp.post("/admin/transcripts/<conversationId>/handback", responses={200: HandlingOut})
def hand_back(path: TranscriptPath) -> Response:
    """Hand a concierge conversation back to the bot.

    The concierge answers there again (`needsHuman` false).

    **Who may call it:** `admin` tokens (any other role: 403).

    **Errors:** 404 for a conversation that is not a concierge conversation.
    """
    session = get_session()
    needs_human = admin.hand_back(session, path.conversationId)
    session.commit()
    return json_response({"conversationId": path.conversationId, "needsHuman": needs_human})


@bp.post("/admin/transcripts/<conversationId>/messages", responses={201: ReplyOut})
@idempotent
def reply(path: TranscriptPath, body: ReplyIn) -> Response:
    """Reply in a transcript as a person (201 with the Message).

    The admin is the message's author and it shows as staff (`senderType` `staff`); the conversation's
    participants are told (`message.created` on their live updates) and it counts as unread for them. Replying
    takes a concierge conversation over if the bot had it. The admin does not become a participant: no inbox
    entry or unread count of theirs. 1–1500 characters after trimming. Send an `Idempotency-Key` to make a retry
    safe.

    **Who may call it:** `admin` tokens (any other role: 403).

    **Errors:** 404 for a conversation that is not a transcript; 422 for an empty or too long message; 409
    while a request with the same `Idempotency-Key` is still being processed.
    """
    session = get_session()
    message = admin.reply_as_human(session, path.conversationId, current_principal().user_id, body.message)
    # Committed by @idempotent, with the response it replays.
    return json_response(message, 201)


@bp.get("/admin/events", responses={200: EventPageOut})
def list_events(query: EventsQuery) -> Response:
    """Platform events, newest first, with their processing state and error.

    Filters: `status` (`pending`, `processing`, `processed`, `failed`, `skipped`) and `type`. Keyset-paginated:
    `limit` 1–100 (default 50), `before` the previous page's `nextCursor`.

    **Who may call it:** `admin` tokens (any other role: 403).

    **Errors:** 422 for an unknown `status`, a `limit` out of range or a cursor this service did not issue.
    """
    before = decode_cursor(query.before) if query.before else None
    items, next_cursor = admin.list_events(get_session(), query.status, query.type, query.limit, before)
    return json_response({"items": items, "nextCursor": next_cursor})


@bp.post("/admin/events/<id>/retry", responses={200: EventSummaryOut})
def retry_event(path: EventPath) -> Response:
    """Retry a failed event: it goes back to the worker.

    The event is `pending` again, its error cleared; the worker processes it as if it had just arrived (its
    messages are still written at most once per recipient), with the records it carries as stored now: an event
    that failed on a bad record is fixed by correcting the record (`PUT /v1/trips/{id}`, …), then retrying.

    **Who may call it:** `admin` tokens (any other role: 403).

    **Errors:** 404 for an unknown event; 409 for an event that has not failed.
    """
    session = get_session()
    event = admin.retry_event(session, path.id)
    session.commit()
    return json_response(event)
