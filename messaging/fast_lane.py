"""The hottest routes' ordinary requests served beneath Flask: ``POST /v1/conversations/{id}/messages``,
``POST /v1/events``, ``POST /v1/conversations/{id}/read`` and ``POST /v1/property-conversations/{id}/messages``,
and the two reads a client makes most, ``GET /v1/conversations/{id}/messages`` (history) and
``GET /v1/conversations`` (inbox).

Why it exists: Flask's and flask-openapi3's per-request machinery — request context, URL matching, hooks,
request and response objects, model plumbing — costs more than these views' own work (one SQL statement and a
Redis call or two; figures in ``bench/README.md``, reasons in ``docs/decisions/0004-fast-lane.md``). This WSGI
middleware does that work directly for a request that is going to succeed, and hands every other request,
untouched, to the application (``app.wsgi_app``), so there is one implementation of each error.

Writes are taken only when plainly ordinary: no query string, no ``Idempotency-Key``, a JSON body of known
length within ``MAX_CONTENT_LENGTH``, and a token the application's own ``VerifiedTokens`` accepts. Then, in the
order the application uses:

* a **send** (a user's token; a body the view's own model ``MessageIn`` and text rules ``clean_message_text``
  accept): the abuse limit is counted, the one send statement runs in autocommit, the message is published to
  the live streams, and the 201 goes out;
* a **new platform event** (a ``service`` token; a body the view's own model and intake rules accept, through
  the :class:`EventIntake` the composition root hands the lane — the bot's, ``concierge.events.LaneIntake``; with
  none, every event is the application's): the abuse limit is counted (per token), the one intake statement runs
  in autocommit, the outbox entry is sent to the worker and marked, and the 202 goes out;
* a **mark read** (a user's token; a body the view's own model ``ReadIn`` accepts): the view's one statement
  (:func:`messaging.read_state.advance_cursor_in_one_statement`) runs in autocommit, the move is published to the
  live streams if the cursor moved, and the 200 goes out (no limit counts reads);
* a **property-thread reply** (a guest's or a host's token; a body the view's own model ``PropertyMessageIn`` and
  text rules accept): the abuse limit is counted (the senders' budget), the one reply statement
  (:func:`messaging.property_threads.run_reply_statement`) runs in autocommit, the thread's traveler and host
  are told, and the 201 goes out;

each with the view's body, headers (``X-Request-Id``) and metrics.

Reads are taken with a user's token (guest, host or admin: the blueprint's roles) and a query string of the
page parameters alone, written plainly: each at most once, ``limit`` 1–100 in digits, ``before`` / ``after`` a
cursor this service issued (history: one of the two). Reads count against no limit and write nothing, so
handing one over is simply letting the application answer it:

* **history** runs :data:`messaging.pg_reads.HISTORY_SQL` in autocommit, as the view does, and shapes the page
  with the view's own :func:`messaging.pagination.history_page` and :func:`messaging.resources.message_json`.
  The statement checks the caller takes part; an empty page is the lane's only once a lookup shows the caller
  takes part (the page of a conversation with nothing after a cursor), else the application answers it (404,
  or the just-in-time user: a new user is created, a deleted one is 401);
* **inbox** is the lane's only for a user this process has seen lately (``KnownUsers``, which the application's
  just-in-time user check fills, deleting a user empties, and which trusts a lookup for
  :data:`messaging.auth.USER_RECHECK_SECONDS` only, so a user deleted through another process is the
  application's — 401 — within that time): it runs the view's statement and body builder
  (:func:`messaging.conversations.inbox_body`). The other routes need no such memory: deleting a user removes
  their participations and threads in the same transaction, so from its commit the lane finds nothing of theirs
  and hands the request over.

Handing over keeps the outcome the application would have given:

* before anything is counted or written, the request simply goes to the application (the body is put back);
* the statement wrote nothing — the caller is not a participant or party (404, or 401 for a deleted user, or a
  new user created just in time), ``upTo`` is not a message of the conversation (422), it is a
  concierge conversation (posted the general way, with the bot's outbox row), the event was stored before (200)
  or under another body (409), a reference it does not carry is missing (422) — the application runs the
  request again, told the limit is already counted (:data:`LIMIT_COUNTED`), so the request counts once;
* the limit refused the request, or the statement failed (it may have committed: a connection lost after
  the commit), the error is passed to the application (:data:`RAISE`), which answers it exactly as its own
  (429 with ``Retry-After``, 503, …) without running the view: nothing is ever written twice. A read's
  failure is passed the same way, so the caller gets the one answer a failed read gets (503).
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

import orjson
from flask import Flask, request
from pydantic import BaseModel, ValidationError

from messaging import pg_reads, property_threads
from messaging.auth import USER_ROLES, KnownUsers, Principal, VerifiedTokens
from messaging.conversations import clean_message_text, inbox_body, run_send_statement
from messaging.conversations_api import MessageIn, ReadIn
from messaging.db import autocommit_cursor
from messaging.errors import ProblemError
from messaging.health import LATENCY, REQUEST_STARTED, REQUESTS
from messaging.http import request_id
from messaging.limits import LIMIT_COUNTED, LIMITER, AbuseLimits, token_key_of
from messaging.live import publish_now
from messaging.outbox import OutboxItem, dispatch_with
from messaging.pagination import CURSOR_MAX_LENGTH, DEFAULT_LIMIT, decode_cursor, history_page
from messaging.property_threads_api import WRITER_ROLES, PropertyMessageIn
from messaging.read_state import advance_cursor_in_one_statement
from messaging.resources import JSON_OPTIONS, message_json, message_position

# In the WSGI environ of a request the lane hands over: an error for the application to raise. (A limit already
# counted is marked by messaging.limits.LIMIT_COUNTED.)
RAISE = "concierge.raise"
T = TypeVar("T")

SEND_RULE = HISTORY_RULE = "/v1/conversations/<id>/messages"
EVENTS_RULE = "/v1/events"
INBOX_RULE = "/v1/conversations"
SEND_PATH = re.compile(r"/v1/conversations/([A-Za-z0-9_-]{1,64})/messages\Z")
READ_RULE = "/v1/conversations/<id>/read"
READ_PATH = re.compile(r"/v1/conversations/([A-Za-z0-9_-]{1,64})/read\Z")
REPLY_RULE = "/v1/property-conversations/<id>/messages"
REPLY_PATH = re.compile(r"/v1/property-conversations/([A-Za-z0-9_-]{1,21})/messages\Z")
# The page parameters the lane takes: a limit written plainly, a cursor in the alphabet this service issues them
# in, within PageQuery's bounds. Anything else (another spelling, an escape, a repeat) is the application's.
PLAIN_LIMIT = re.compile(r"[1-9][0-9]?\Z|100\Z")
PLAIN_CURSOR = re.compile(rf"[A-Za-z0-9_-]{{1,{CURSOR_MAX_LENGTH}}}\Z")
HISTORY_PARAMS = frozenset({"limit", "before", "after"})
INBOX_PARAMS = frozenset({"limit", "before"})


class HandOver:
    """What :meth:`FastLane._written` gives when the application is to answer the request."""


HAND_OVER = HandOver()


class EventIntake(Protocol):
    """The platform-event intake the lane serves ``POST /v1/events`` with, as the events view does. The bot's
    (``concierge.events.LaneIntake``) is handed to :func:`install` by the composition root, app.py: the chat domain
    does not import the bot."""

    def accept(self, body: dict[str, Any]) -> Any:
        """What storing the event posted as ``body`` writes, if the view would take it; pydantic's
        ``ValidationError`` or a problem (:class:`messaging.errors.ProblemError`) if not. Touches no database."""

    def insert(self, cursor_cm: AbstractContextManager[Any], accepted: Any) -> OutboxItem | None:
        """Store ``accepted`` and its outbox entry in one statement on ``cursor_cm`` (a cursor in autocommit):
        the entry, to send, if the event was stored now; None if it was stored before (a repeat, or another body
        under the same id), nothing written; a problem if a reference it does not carry is missing, nothing
        written."""

    def resource(self, accepted: Any) -> dict[str, Any]:
        """The 202's body: the event as just stored."""


StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class FastLane:
    def __init__(self, app: Flask, inner: WsgiApp, event_intake: EventIntake | None = None) -> None:
        self.inner = inner
        self.config = app.config
        self.tokens: VerifiedTokens = app.extensions.setdefault("verified_tokens", VerifiedTokens())
        limits_on = app.config.get("RATE_LIMITS_ENABLED", True)
        self.limits: AbuseLimits | None = app.extensions[LIMITER] if limits_on else None
        self.bus = app.extensions["live"]
        self.db = app.extensions["db"]
        self.max_body = int(app.config.get("MAX_CONTENT_LENGTH") or 0)
        self.message_in = MessageIn
        self.read_in = ReadIn
        self.reply_in = PropertyMessageIn
        self.writer_roles = WRITER_ROLES
        self.event_intake = event_intake
        self.latency = LATENCY.labels("POST", SEND_RULE)
        self.created = REQUESTS.labels("POST", SEND_RULE, "201")
        self.event_latency = LATENCY.labels("POST", EVENTS_RULE)
        self.accepted = REQUESTS.labels("POST", EVENTS_RULE, "202")
        self.extensions = app.extensions
        self.history_latency = LATENCY.labels("GET", HISTORY_RULE)
        self.history_served = REQUESTS.labels("GET", HISTORY_RULE, "200")
        self.inbox_latency = LATENCY.labels("GET", INBOX_RULE)
        self.inbox_served = REQUESTS.labels("GET", INBOX_RULE, "200")
        self.read_latency = LATENCY.labels("POST", READ_RULE)
        self.read_served = REQUESTS.labels("POST", READ_RULE, "200")
        self.reply_latency = LATENCY.labels("POST", REPLY_RULE)
        self.replied = REQUESTS.labels("POST", REPLY_RULE, "201")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method, path = environ.get("REQUEST_METHOD"), environ.get("PATH_INFO", "")
        if method == "GET":
            if path == INBOX_RULE:
                return self._inbox(environ, start_response)
            match = SEND_PATH.match(path)
            if match is not None:
                return self._history(match[1], environ, start_response)
        elif method == "POST" and not environ.get("QUERY_STRING"):
            if path == EVENTS_RULE:
                return self._event(environ, start_response)
            match = SEND_PATH.match(path)
            if match is not None:
                return self._send(match[1], environ, start_response)
            match = READ_PATH.match(path)
            if match is not None:
                return self._read(match[1], environ, start_response)
            match = REPLY_PATH.match(path)
            if match is not None:
                return self._reply(match[1], environ, start_response)
        return self.inner(environ, start_response)

    def _history(self, conversation_id: str, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = environ[REQUEST_STARTED] = time.perf_counter()
        user_id = self._user(environ)
        page = _page_query(environ, HISTORY_PARAMS) if user_id is not None else None
        if user_id is None or page is None or len(conversation_id) > 21 or ("before" in page and "after" in page):
            return self.inner(environ, start_response)
        limit, before, after = page.get("limit", DEFAULT_LIMIT), page.get("before"), page.get("after")
        try:
            with autocommit_cursor(self.db) as cursor:
                rows = pg_reads.history_rows(cursor, user_id, conversation_id, limit + 1, before, after)
                # An empty page is the caller's only if they take part (which proves their user exists and was
                # not deleted: user_implied); otherwise the application answers (404, 401, a new user).
                theirs = bool(rows) or pg_reads.is_participant(cursor, conversation_id, user_id)
        except Exception as exc:  # noqa: BLE001 - the application answers it as its own (503, 500)
            environ[RAISE] = exc
            return self.inner(environ, start_response)
        if not theirs:
            return self.inner(environ, start_response)
        shaped = history_page(rows, limit, after, message_json, message_position)
        body = _respond(start_response, "200 OK", {"items": shaped.items, "nextCursor": shaped.next_cursor}, environ)
        self.history_latency.observe(time.perf_counter() - started)
        self.history_served.inc()
        return [body]

    def _inbox(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = environ[REQUEST_STARTED] = time.perf_counter()
        user_id = self._user(environ)
        page = _page_query(environ, INBOX_PARAMS) if user_id is not None else None
        # A user this process has not seen lately is the application's: it creates a new one from the token, and
        # refuses a deleted one (ensure_user), then remembers them.
        known: KnownUsers = self.extensions.setdefault("known_users", KnownUsers())  # as messaging.auth does
        if user_id is None or page is None or user_id not in known:
            return self.inner(environ, start_response)
        limit = page.get("limit", DEFAULT_LIMIT)
        try:
            with autocommit_cursor(self.db) as cursor:
                rows = pg_reads.inbox_rows(cursor, user_id, limit + 1, page.get("before"))
        except Exception as exc:  # noqa: BLE001 - the application answers it as its own (503, 500)
            environ[RAISE] = exc
            return self.inner(environ, start_response)
        body = _respond_raw(start_response, "200 OK", inbox_body(rows, limit), environ)
        self.inbox_latency.observe(time.perf_counter() - started)
        self.inbox_served.inc()
        return [body]

    def _user(self, environ: dict[str, Any]) -> str | None:
        """The calling user, if the token verifies and names a user (the blueprint's roles: not the service)."""
        caller = self._principal(_bearer(environ))
        return caller.user_id if caller is not None and caller.role in USER_ROLES else None

    def _send(self, conversation_id: str, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        raw = self._ordinary_body(environ, started)
        if raw is None:
            return self.inner(environ, start_response)
        principal = self._user(environ)
        text = (self._accepted(raw, self.message_in, lambda m, _: clean_message_text(m.message))
                if principal is not None else None)
        if principal is None or text is None or len(conversation_id) > 21:
            return self.inner(environ, start_response)
        if not self._counted(environ, "conversations.post_message", f"user:{principal}"):
            return self.inner(environ, start_response)
        # NotFound: the application's 404 (or 401 for a deleted user); None: a concierge conversation, posted the
        # general way.
        sent = self._written(environ, lambda: run_send_statement(autocommit_cursor(self.db), conversation_id,
                                                                 principal, text))
        if sent is None or isinstance(sent, HandOver):
            return self.inner(environ, start_response)
        publish_now(self.bus, "message.created", sent.audience, sent.message)
        body = _respond(start_response, "201 CREATED", sent.message, environ)
        self.latency.observe(time.perf_counter() - started)
        self.created.inc()
        return [body]

    def _read(self, conversation_id: str, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        raw = self._ordinary_body(environ, started)
        user_id = self._user(environ) if raw is not None else None
        read = (self._accepted(raw, self.read_in, lambda m, _: m)
                if raw is not None and user_id is not None else None)
        if user_id is None or read is None or len(conversation_id) > 21:
            return self.inner(environ, start_response)
        # A problem: 404 (or a new or deleted user: user_implied) or 422.
        done = self._written(environ, lambda: advance_cursor_in_one_statement(autocommit_cursor(self.db),
                                                                              conversation_id, user_id, read.up_to))
        if isinstance(done, HandOver):
            return self.inner(environ, start_response)
        result, audience = done
        if result.moved:
            publish_now(self.bus, "conversation.read", audience,
                        {"conversationId": conversation_id, "userId": user_id, "lastReadAt": result.last_read_at})
        body = _respond(start_response, "200 OK", {"unreadCount": result.unread_count}, environ)
        self.read_latency.observe(time.perf_counter() - started)
        self.read_served.inc()
        return [body]

    def _reply(self, thread_id: str, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        raw = self._ordinary_body(environ, started)
        if raw is None:
            return self.inner(environ, start_response)
        caller = self._principal(_bearer(environ))
        writer = caller.user_id if caller is not None and caller.role in self.writer_roles else None
        text = (self._accepted(raw, self.reply_in, lambda m, _: property_threads.clean_property_message(m.message))
                if writer is not None else None)
        if writer is None or text is None:
            return self.inner(environ, start_response)
        if not self._counted(environ, "property_threads.reply_in_property_thread", f"user:{writer}"):
            return self.inner(environ, start_response)
        # NotFound: the application's 404 (or 401 for a deleted user).
        replied = self._written(environ, lambda: property_threads.run_reply_statement(autocommit_cursor(self.db),
                                                                                     thread_id, writer, text))
        if isinstance(replied, HandOver):
            return self.inner(environ, start_response)
        message, parties = replied
        publish_now(self.bus, "property_message.created", [parties.traveler_id, parties.host_id], message)
        body = _respond(start_response, "201 CREATED", message, environ)
        self.reply_latency.observe(time.perf_counter() - started)
        self.replied.inc()
        return [body]

    def _event(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        intake = self.event_intake
        if intake is None:  # no intake given: events are the application's
            return self.inner(environ, start_response)
        started = time.perf_counter()
        raw = self._ordinary_body(environ, started)
        if raw is None:
            return self.inner(environ, start_response)
        token = _bearer(environ)
        caller = self._principal(token)
        accepted = self._parsed(raw, intake.accept) if caller is not None and caller.role == "service" else None
        if accepted is None or not self._counted(environ, "events.post_event", token_key_of(token)):
            return self.inner(environ, start_response)
        # A problem: a reference the event does not carry is missing (422). None: a repeated delivery (200) or
        # another body under the same id (409), nothing written.
        entry = self._written(environ, lambda: intake.insert(autocommit_cursor(self.db), accepted))
        if entry is None or isinstance(entry, HandOver):
            return self.inner(environ, start_response)
        dispatch_with(autocommit_cursor(self.db), [entry])
        resource = intake.resource(accepted)
        body = _respond(start_response, "202 ACCEPTED", resource, environ)
        self.event_latency.observe(time.perf_counter() - started)
        self.accepted.inc()
        return [body]

    @staticmethod
    def _written(environ: dict[str, Any], statement: Callable[[], T]) -> T | HandOver:
        """Run a write's one statement. A problem it raises means it wrote nothing: :data:`HAND_OVER`, for the
        application to answer the request. Any other error may come after a commit (a connection lost after it):
        :data:`HAND_OVER` too, with the error left in the environ (:data:`RAISE`) for the application to answer as
        its own (503, 500), so the request is never run again."""
        try:
            return statement()
        except ProblemError:
            return HAND_OVER
        except Exception as exc:  # noqa: BLE001 - answered by the application, never re-run
            environ[RAISE] = exc
            return HAND_OVER

    def _counted(self, environ: dict[str, Any], endpoint: str, key: str) -> bool:
        """Count the request against the abuse limits of the view it stands for (``endpoint``, as the application
        does: :data:`messaging.limits.LIMITED_ENDPOINTS`), marking it counted for the application should the lane
        hand it over; False when a limit refused it (or the count failed): the error is left for the application
        to answer (:data:`RAISE`)."""
        try:
            if self.limits is not None:
                self.limits.count_request(endpoint, key)
        except Exception as exc:  # noqa: BLE001 - the 429 (or anything unforeseen) answered by the application
            environ[RAISE] = exc
            return False
        environ[LIMIT_COUNTED] = True
        return True

    def _ordinary_body(self, environ: dict[str, Any], started: float) -> bytes | None:
        """The raw body of a JSON request of declared length within the limit, with no Idempotency-Key. Taking
        it puts it back for the application (it reads it again if the request is handed over) and gives the
        application's timer the request's start."""
        if "HTTP_IDEMPOTENCY_KEY" in environ or "HTTP_TRANSFER_ENCODING" in environ:
            return None
        if environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower() != "application/json":
            return None
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return None
        if not 0 < length <= self.max_body:
            return None
        raw: bytes = environ["wsgi.input"].read(length)
        if len(raw) != length:  # the client went away mid-body: let the application say so
            environ["wsgi.input"] = io.BytesIO(raw)
            return None
        environ["wsgi.input"] = io.BytesIO(raw)
        environ[REQUEST_STARTED] = started
        return raw

    def _principal(self, token: str) -> Principal | None:
        """The caller if the token verifies (``VerifiedTokens``, as the application does); else None."""
        if not token:
            return None
        try:
            return self.tokens.principal(token, self.config)
        except ProblemError:
            return None

    @staticmethod
    def _accepted(raw: bytes, model: type[BaseModel], then: Callable[[Any, dict[str, Any]], T]) -> T | None:
        """``then(validated, body)`` if the body is a JSON object the view's ``model`` accepts and ``then`` (the
        view's own rules) raises no problem; else None, for the application to answer."""
        return FastLane._parsed(raw, lambda obj: then(model.model_validate(obj), obj))

    @staticmethod
    def _parsed(raw: bytes, parse: Callable[[dict[str, Any]], T]) -> T | None:
        """``parse(body)`` if the body is a JSON object and ``parse`` (the view's model and rules) raises neither
        a validation error nor a problem; else None, for the application to answer."""
        try:
            obj = orjson.loads(raw)
            if not isinstance(obj, dict):
                return None
            return parse(obj)
        except (orjson.JSONDecodeError, ValidationError, ProblemError):
            return None


def _bearer(environ: dict[str, Any]) -> str:
    """The bearer token of the Authorization header ("" if none)."""
    scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _page_query(environ: dict[str, Any], names: frozenset[str]) -> dict[str, Any] | None:
    """The page parameters of a plainly written query string: ``limit`` as an int and the cursors decoded
    (``before``, ``after``: :func:`messaging.pagination.decode_cursor`); None for anything else, which the
    application answers (a 422 naming the parameter, or what it makes of an unknown one)."""
    query = environ.get("QUERY_STRING", "")
    if not query:
        return {}
    page: dict[str, Any] = {}
    for pair in query.split("&"):
        name, equals, value = pair.partition("=")
        if not equals or name not in names or name in page:
            return None
        if name == "limit":
            if PLAIN_LIMIT.match(value) is None:
                return None
            page[name] = int(value)
        else:
            if PLAIN_CURSOR.match(value) is None:
                return None
            try:
                page[name] = decode_cursor(value, name)
            except ProblemError:
                return None
    return page


def _respond(start_response: StartResponse, status: str, resource: Any, environ: dict[str, Any]) -> bytes:
    """Start a JSON response as the application's ``json_response`` would; returns its body."""
    return _respond_raw(start_response, status, orjson.dumps(resource, option=JSON_OPTIONS), environ)


def _respond_raw(start_response: StartResponse, status: str, body: bytes, environ: dict[str, Any]) -> bytes:
    """Start a response with a JSON ``body`` as the application would; returns the body."""
    start_response(
        status,
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("X-Request-Id", request_id(environ.get("HTTP_X_REQUEST_ID", ""))),
            ("X-Content-Type-Options", "nosniff"),  # as on every response of the application (add_security_headers)
        ],
    )
    return body


def install(app: Flask, event_intake: EventIntake | None = None) -> None:
    """Put the lane in front of ``app.wsgi_app`` (``FAST_LANE=0`` leaves it out); ``event_intake`` lets it take
    new platform events too."""
    if not app.config.get("FAST_LANE", True):
        return
    app.wsgi_app = FastLane(app, app.wsgi_app, event_intake)  # type: ignore[method-assign]

    @app.before_request
    def _raise_from_fast_lane() -> None:
        """An error the lane met after counting or writing: answered here as the application's own. Registered
        last of the application's hooks: after the request id and the timer, before the blueprint's."""
        exc = request.environ.pop(RAISE, None)
        if exc is not None:
            raise exc
