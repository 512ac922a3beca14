"""HTTP: the caller's live updates as a Server-Sent Events stream (SPEC §6), resumable with Last-Event-ID."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import jwt
from flask import Response, current_app, g
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ConfigDict, Field

from messaging.auth import authenticate, bearer_token
from messaging.errors import Forbidden, ServiceUnavailable
from messaging.http import BEARER
from messaging.live import RESET_EVENT, LiveBus, LiveBusUnavailable, LiveEntry, StreamStart, encode_event
from messaging.schemas import ApiModel

log = logging.getLogger(__name__)

bp = APIBlueprint(
    "stream",
    __name__,
    url_prefix="/v1",
    abp_tags=[Tag(name="Live updates", description="Server-Sent Events for the caller's conversations")],
    abp_security=BEARER,
)

STREAM_HEADERS = {
    "Cache-Control": "no-cache",
    # nginx and similar proxies would otherwise hold events back to fill a buffer.
    "X-Accel-Buffering": "no",
}
# Browsers' EventSource waits this long before reconnecting (with Last-Event-ID).
RECONNECT_MS = 3000

STREAM_RESPONSE = {
    "description": (
        "A `text/event-stream` that stays open. Each event is `event: <type>`, `id: <opaque>` and "
        "`data: <one line of JSON>`: `message.created` / `message.updated` carry a Message, "
        "`conversation.created` a Conversation (as the recipient sees it), `conversation.read` "
        '`{"conversationId", "userId", "lastReadAt"}`, `property_message.created` / `.updated` a property '
        "message. `reset` (`{\"reason\": \"gap\"}`) means events after the client's Last-Event-ID are no longer "
        "held: refetch, then carry on with the stream. Comments (`: keepalive`) are sent every "
        "LIVE_HEARTBEAT_SECONDS. The stream ends when the token expires."
    ),
    "content": {
        "text/event-stream": {
            "schema": {"type": "string"},
            "example": (
                "event: message.created\nid: 1764000000000-0\n"
                'data: {"id":"V1StGXR8_Z5jdHi6B-myT","conversationId":"…","userId":"u2","senderType":"user",'
                '"message":"Hi!","read":false,"isEdit":false,"createdAt":"2026-12-01T09:30:00Z"}\n\n'
            ),
        }
    },
}


class StreamQuery(ApiModel):
    access_token: str | None = Field(
        None,
        alias="access_token",
        max_length=2048,
        description="The bearer token, for browsers' EventSource, which cannot send headers",
    )
    last_event_id: str | None = Field(
        None, max_length=64, description="Resume after this event id (the Last-Event-ID header wins)"
    )


class StreamHeaders(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    last_event_id: str | None = Field(
        None,
        alias="Last-Event-ID",
        max_length=64,
        description="Sent by EventSource on reconnection: replay the events after it",
    )


@bp.get("/stream", responses={200: STREAM_RESPONSE}, doc_ui=True)
def stream(query: StreamQuery, header: StreamHeaders) -> Response:
    """The caller's live updates (Server-Sent Events), for the conversations and property threads they are in."""
    token = bearer_token() or query.access_token
    principal = authenticate(token)
    if principal.is_service:
        raise Forbidden("Live updates are for users; the service role has no stream.")
    _release_database_session()
    bus: LiveBus = current_app.extensions["live"]
    try:
        start = bus.start(principal.user_id, header.last_event_id or query.last_event_id)
    except LiveBusUnavailable as exc:
        log.warning("live updates: cannot start a stream for %s: %s", principal.user_id, exc)
        raise ServiceUnavailable(
            "Live updates are unavailable; try again shortly.", headers={"Retry-After": "5"}
        ) from exc
    body = _event_stream(
        bus,
        principal.user_id,
        start,
        float(current_app.config["LIVE_HEARTBEAT_SECONDS"]),
        _expires_at(token or ""),
    )
    return Response(body, status=200, mimetype="text/event-stream", headers=STREAM_HEADERS)


def _release_database_session() -> None:
    """A stream may stay open for hours: it must not keep a pooled database connection."""
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def _expires_at(token: str) -> float | None:
    # The signature was verified by authenticate(); only the expiry is read here.
    exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    return float(exp) if isinstance(exp, int | float) else None


def _frame(entry: LiveEntry) -> bytes:
    return b"".join(
        (b"event: ", entry.type.encode(), b"\nid: ", entry.id.encode(), b"\ndata: ", entry.data, b"\n\n")
    )


def _event_stream(
    bus: LiveBus, user_id: str, start: StreamStart, heartbeat: float, expires_at: float | None
) -> Iterator[bytes]:
    """Replay, then follow the user's stream; runs after the request context is gone."""
    # The first bytes flush the headers, so the client knows it is subscribed.
    opening = [f"retry: {RECONNECT_MS}\n: connected\n\n".encode()]
    if start.reset is not None:
        opening.append(_frame(LiveEntry(start.cursor, RESET_EVENT, encode_event({"reason": start.reset}))))
    opening.extend(_frame(entry) for entry in start.replay)
    yield b"".join(opening)
    cursor = start.cursor
    while True:
        wait = heartbeat
        if expires_at is not None:
            left = expires_at - time.time()
            if left <= 0:
                return  # the client reconnects with a fresh token
            wait = min(wait, left)
        try:
            entries = bus.read(user_id, cursor, int(wait * 1000))
        except LiveBusUnavailable as exc:
            # End the stream; the client reconnects with Last-Event-ID and loses nothing still held.
            log.warning("live updates: stream for %s interrupted: %s", user_id, exc)
            return
        if entries:
            cursor = entries[-1].id
            yield b"".join(_frame(entry) for entry in entries)
        else:
            yield b": keepalive\n\n"
