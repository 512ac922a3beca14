"""HTTP: the caller's live updates as a Server-Sent Events stream (SPEC §6), resumable with Last-Event-ID."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import jwt
from flask import Response, current_app, g
from flask_openapi3 import APIBlueprint, Tag
from prometheus_client import Gauge
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from messaging.api.auth import authenticate, bearer_token
from messaging.api.health import REGISTRY
from messaging.api.http import BEARER
from messaging.chat.users import KnownUsers, ensure_user, existing_users, known_users
from messaging.errors import Forbidden, ServiceUnavailable
from messaging.live.bus import RESET_EVENT, LiveBus, LiveBusUnavailable, LiveEntry, StreamStart, encode_event
from messaging.schemas import ApiModel
from messaging.store.db import get_session

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
# Under gunicorn each worker process counts its own, and /metrics sums those of the live workers ("livesum": a
# killed worker's streams stop counting when gunicorn reaps it, gunicorn.conf.py).
LIVE_STREAMS = Gauge("live_stream_connections", "Live-update streams open", registry=REGISTRY,
                     multiprocess_mode="livesum")
# Browsers' EventSource waits this long before reconnecting (with Last-Event-ID).
RECONNECT_MS = 3000
# An open stream wakes at least this often to ask whether its user still exists: a stream of a user deleted through
# any process ends at most USER_RECHECK_SECONDS + USER_CHECK_SECONDS (and one lookup) after the deletion commits.
USER_CHECK_SECONDS = 0.4

STREAM_RESPONSE = {
    "description": (
        "A `text/event-stream` that stays open. Each event is `event: <type>`, `id: <opaque>` and "
        "`data: <one line of JSON>`: `message.created` / `message.updated` carry a Message, "
        "`conversation.created` a Conversation (as the recipient sees it), `conversation.read` "
        '`{"conversationId", "userId", "lastReadAt"}`, `property_message.created` / `.updated` a property '
        "message. `reset` (`{\"reason\": \"gap\"}`) means events after the client's Last-Event-ID are no longer "
        "held: refetch, then carry on with the stream. Comments (`: keepalive`) are sent every "
        "LIVE_HEARTBEAT_SECONDS. The stream ends when the token expires, and within a second of the platform "
        "deleting the user (whose token is then refused: 401)."
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
    """The caller's live updates, as Server-Sent Events.

    Changes in the conversations and property threads the caller is in, and nothing else (the response
    describes the events). Browsers' `EventSource` cannot send headers: pass the token as `access_token`.
    Reconnecting with `Last-Event-ID` replays what was missed, within a bounded window; beyond it a `reset`
    event says to refetch.

    **Who may call it:** `guest`, `host` and `admin` tokens (the `service` role has no stream: 403).

    **Errors:** 401 for a missing, invalid or expired token; 503 (with `Retry-After`) while live updates are
    unavailable.
    """
    token = bearer_token() or query.access_token
    principal = authenticate(token)
    if principal.is_service:
        raise Forbidden("Live updates are for users; the service role has no stream.")
    # Looked up now, not taken from this process's memory: a deleted user's token is refused (401) before
    # anything is replayed. A user seen for the first time is created, as on every other call.
    session = get_session()
    ensure_user(session, principal, recheck=True)
    session.commit()
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
        _streaming_users(),
    )
    return Response(body, status=200, mimetype="text/event-stream", headers=STREAM_HEADERS)


class StreamingUsers:
    """The users with a stream open in this process, and whether each still exists.

    An open stream asks :meth:`exists` at least every :data:`USER_CHECK_SECONDS`. The answer comes from
    :class:`~messaging.chat.users.KnownUsers` while it remembers the user; once it no longer does, one statement
    looks up every user with a stream open here whom it no longer remembers, so a process holding many streams makes one
    lookup per recheck time, not one per stream. The database is the only thing consulted: a deletion through
    another process is seen here without any message from it.
    """

    def __init__(self, known: KnownUsers, sessions: sessionmaker[Session]) -> None:
        self.known, self.sessions = known, sessions
        self._open: Counter[str] = Counter()
        self._lookup = threading.Lock()  # one lookup at a time; the others then find its result

    @contextmanager
    def opened(self, user_id: str) -> Iterator[None]:
        """While open, ``user_id`` has a stream here (and it counts in :data:`LIVE_STREAMS`)."""
        self._open[user_id] += 1
        LIVE_STREAMS.inc()
        try:
            yield
        finally:
            LIVE_STREAMS.dec()
            self._open[user_id] -= 1
            if self._open[user_id] <= 0:
                del self._open[user_id]

    def exists(self, user_id: str) -> bool:
        """True while ``user_id`` has a user row; raises SQLAlchemyError when the database cannot say."""
        if user_id in self.known:
            return True
        with self._lookup:
            if user_id in self.known:
                return True
            stale = {user_id, *(other for other in self._open if other not in self.known)}
            looked_up_at = time.monotonic()
            with self.sessions() as session:
                found = existing_users(session, stale)
            for other in found:
                self.known.add(other, looked_up_at)
        return user_id in found


def _streaming_users() -> StreamingUsers:
    users: StreamingUsers | None = current_app.extensions.get("streaming_users")
    known = known_users()
    if users is None or users.known is not known:  # one memory of users per app, even if it was replaced
        users = current_app.extensions["streaming_users"] = StreamingUsers(
            known, current_app.extensions["db"]["sessionmaker"]
        )
    return users


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
    bus: LiveBus,
    user_id: str,
    start: StreamStart,
    heartbeat: float,
    expires_at: float | None,
    users: StreamingUsers,
) -> Iterator[bytes]:
    """Replay, then follow the user's stream; runs after the request context is gone.

    Ends when the token expires, when the bus fails (the client reconnects with Last-Event-ID), and within about a
    second of the user's deletion: after every read (at most :data:`USER_CHECK_SECONDS` apart) it asks
    :class:`StreamingUsers` whether the user still exists, before sending anything it read. A database that cannot
    say ends the stream too (the reconnection checks the token again)."""
    # The first bytes flush the headers, so the client knows it is subscribed.
    # The opening carries the stream's position as its id (an id without data dispatches no event, but sets the
    # client's Last-Event-ID): a client that reconnects before any event reached it resumes from here, and is
    # replayed what it missed or told to reset, never left with a silent gap.
    opening = [f"retry: {RECONNECT_MS}\nid: {start.cursor}\n: connected\n\n".encode()]
    if start.reset is not None:
        opening.append(_frame(LiveEntry(start.cursor, RESET_EVENT, encode_event({"reason": start.reset}))))
    opening.extend(_frame(entry) for entry in start.replay)
    with users.opened(user_id):
        yield b"".join(opening)
        cursor = start.cursor
        keepalive_at = time.monotonic() + heartbeat
        while True:
            wait = min(keepalive_at - time.monotonic(), USER_CHECK_SECONDS)
            if expires_at is not None:
                left = expires_at - time.time()
                if left <= 0:
                    return  # the client reconnects with a fresh token
                wait = min(wait, left)
            try:
                entries = bus.read(user_id, cursor, max(1, math.ceil(wait * 1000)))
            except LiveBusUnavailable as exc:
                # End the stream; the client reconnects with Last-Event-ID and loses nothing still held.
                log.warning("live updates: stream for %s interrupted: %s", user_id, exc)
                return
            try:
                if not users.exists(user_id):
                    log.info("live updates: stream for %s ended: the user was deleted", user_id)
                    return
            except SQLAlchemyError as exc:
                log.warning("live updates: stream for %s ended: cannot check the user: %s", user_id, exc)
                return
            if entries:
                cursor = entries[-1].id
                yield b"".join(_frame(entry) for entry in entries)
            elif time.monotonic() >= keepalive_at:
                yield b": keepalive\n\n"
            else:
                continue  # woken only to check the user
            keepalive_at = time.monotonic() + heartbeat
