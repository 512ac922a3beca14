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
from messaging.api.auth import current_principal
from messaging.api.csv_cells import csv_cell
from messaging.api.http import api_blueprint, json_response
from messaging.api.idempotency import idempotent
from messaging.chat.pagination import CURSOR_MAX_LENGTH, DEFAULT_LIMIT, MAX_LIMIT, decode_cursor
from messaging.chat.resources import JSON_OPTIONS
from messaging.errors import Unprocessable
from messaging.schemas import ApiModel
from messaging.store.db import get_session

bp = api_blueprint("admin", __name__, "Admin", "Reviewing the concierge", roles=frozenset({"admin"}))


class TranscriptQuery(ApiModel):
    user_id: str | None = Field(None, min_length=1, max_length=255)
    event_type: str | None = Field(None, min_length=1, max_length=64)
    from_: dt.datetime | None = Field(None, alias="from", description="Last activity at or after (ISO 8601)")
    to: dt.datetime | None = Field(None, description="Last activity before (ISO 8601)")
    needs_human: bool | None = None
    q: str | None = Field(None, min_length=1, max_length=200, description="Text in any message")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    before: str | None = Field(None, max_length=CURSOR_MAX_LENGTH)


class TranscriptPath(ApiModel):
    # flask-openapi3 hands path values over by field name: named as in the URL.
    conversationId: str = Field(min_length=1, max_length=64)  # noqa: N815


class ExportQuery(ApiModel):
    format: Literal["json", "csv"] = "json"


class ReplyIn(ApiModel):
    message: str = Field(max_length=20_000, description="1–1500 characters after trimming")


class EventsQuery(ApiModel):
    status: Literal["pending", "processing", "processed", "failed", "skipped"] | None = None
    type: str | None = Field(None, min_length=1, max_length=64)
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    before: str | None = Field(None, max_length=CURSOR_MAX_LENGTH)


class EventPath(ApiModel):
    id: str = Field(min_length=1, max_length=255)


class TranscriptPageOut(ApiModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


class TranscriptOut(ApiModel):
    conversation: dict[str, Any]
    needs_human: bool
    messages: list[dict[str, Any]]


class HandlingOut(ApiModel):
    conversation_id: str
    needs_human: bool


class EventPageOut(ApiModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        raise Unprocessable("Times need an offset.", errors=[{"field": "from/to", "message": "needs an offset"}])
    return value


@bp.get("/admin/transcripts", responses={200: TranscriptPageOut})
def list_transcripts(query: TranscriptQuery) -> Response:
    """Concierge conversations (and offer conversations the concierge wrote in), latest activity first."""
    filters = admin.TranscriptFilters(
        user_id=query.user_id, event_type=query.event_type, since=_aware(query.from_), until=_aware(query.to),
        needs_human=query.needs_human, q=query.q,
    )
    before = decode_cursor(query.before) if query.before else None
    items, next_cursor = admin.list_transcripts(get_session(), filters, query.limit, before)
    return json_response({"items": items, "nextCursor": next_cursor})


@bp.get("/admin/transcripts/<conversationId>", responses={200: TranscriptOut})
def get_transcript(path: TranscriptPath) -> Response:
    """Every message in order, each concierge message with its origin, edited ones with their history."""
    return json_response(admin.transcript(get_session(), path.conversationId))


@bp.get("/admin/transcripts/<conversationId>/export", responses={200: None})
def export_transcript(path: TranscriptPath, query: ExportQuery) -> Response:
    """A download of the transcript (JSON or CSV), streamed in batches."""
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


def _csv(first: list[dict[str, Any]], rest: Iterator[list[dict[str, Any]]]) -> Iterator[str]:
    """The CSV export: every cell but those of :data:`EXACT_CSV_COLUMNS` through
    :func:`messaging.api.csv_cells.csv_cell`, so no formula runs when it is opened in a spreadsheet."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for batch in _chain(first, rest):
        for m in batch:
            origin = m.get("origin") or {}
            created = m["createdAt"]
            cells = (
                m["id"], created.isoformat() if hasattr(created, "isoformat") else created, m["senderType"],
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
    """A person takes the conversation from the bot, which stops answering there."""
    session = get_session()
    needs_human = admin.take_over(session, path.conversationId)
    session.commit()
    return json_response({"conversationId": path.conversationId, "needsHuman": needs_human})


@bp.post("/admin/transcripts/<conversationId>/handback", responses={200: HandlingOut})
def hand_back(path: TranscriptPath) -> Response:
    """The bot answers again."""
    session = get_session()
    needs_human = admin.hand_back(session, path.conversationId)
    session.commit()
    return json_response({"conversationId": path.conversationId, "needsHuman": needs_human})


@bp.post("/admin/transcripts/<conversationId>/messages", responses={201: None})
@idempotent
def reply(path: TranscriptPath, body: ReplyIn) -> Response:
    """An admin replies as a person (the admin is the message's author)."""
    session = get_session()
    message = admin.reply_as_human(session, path.conversationId, current_principal().user_id, body.message)
    # Committed by @idempotent, with the response it replays.
    return json_response(message, 201)


@bp.get("/admin/events", responses={200: EventPageOut})
def list_events(query: EventsQuery) -> Response:
    """Platform events, newest first, with their processing state and error."""
    before = decode_cursor(query.before) if query.before else None
    items, next_cursor = admin.list_events(get_session(), query.status, query.type, query.limit, before)
    return json_response({"items": items, "nextCursor": next_cursor})


@bp.post("/admin/events/<id>/retry", responses={200: None})
def retry_event(path: EventPath) -> Response:
    """A failed event goes back to the worker (409 for an event that has not failed)."""
    session = get_session()
    event = admin.retry_event(session, path.id)
    session.commit()
    return json_response(event)
