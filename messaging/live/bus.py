"""Live updates (SPEC §6): events queued on the session, published after commit to each recipient's stream.

Interface used by the rest of the code:
    publish_after_commit(session, event_type, user_ids, data)
queues an event for ``user_ids`` on the session; it is published only if and when the session's
transaction commits (nothing is sent for a rolled-back change, nor for a rolled-back savepoint).

Fan-out happens at publication: every recipient has one Redis stream of their own
(``{REDIS_KEY_PREFIX}live:user:{id}``), so a stream never needs to know which conversations its reader is in,
and joining or leaving a conversation changes what arrives without reconnecting. ``install_live_updates(app)``
builds the bus on ``REDIS_URL`` (any number of processes and hosts), stores it in ``app.extensions["live"]``
and hooks the app's sessionmaker.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import gevent  # type: ignore[import-untyped]
import orjson
import redis
from flask import current_app
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from messaging.green import gevent_patched

log = logging.getLogger(__name__)

EVENT_TYPES = frozenset(
    {
        "message.created",
        "message.updated",
        "conversation.read",
        "conversation.created",
        "property_message.created",
        "property_message.updated",
    }
)
# Not a change of state: tells a resuming client that events it missed are gone and it must refetch.
RESET_EVENT = "reset"

KEY_PREFIX = "live:user:"
JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC

DEFAULT_MAXLEN = 1000
DEFAULT_TTL_SECONDS = 86_400
DEFAULT_HEARTBEAT_SECONDS = 15.0

# A stream position, as Redis writes it: "<milliseconds>-<sequence>". Clients treat it as opaque.
_ID_RE = re.compile(r"^(\d{1,20})-(\d{1,20})$")
StreamId = tuple[int, int]
ORIGIN: StreamId = (0, 0)
ORIGIN_ID = "0-0"


class QueuedEvent(NamedTuple):
    """An event waiting for its transaction to commit; ``scope`` is the innermost savepoint open
    when it was queued (None: the session's outer transaction)."""

    type: str
    user_ids: list[str]
    data: dict[str, Any]
    scope: SessionTransaction | None = None


@dataclass(frozen=True, slots=True)
class LiveEntry:
    """One event on a user's stream; ``data`` is one line of JSON, sent as it was stored."""

    id: str
    type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class StreamStart:
    """Where a new connection starts reading: after ``cursor``, once ``replay`` has been sent.

    ``reset`` is the reason the client must refetch (its ``Last-Event-ID`` is older than what the
    stream still holds, or was never issued by it); the stream then continues from now.
    """

    cursor: str
    replay: list[LiveEntry] = field(default_factory=list)
    reset: str | None = None


class LiveBusUnavailable(Exception):
    """The bus (Redis) cannot be reached: a stream cannot start or continue."""


def parse_stream_id(value: str) -> StreamId | None:
    match = _ID_RE.match(value.strip())
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def format_stream_id(value: StreamId) -> str:
    return f"{value[0]}-{value[1]}"


def resume_gap(
    last: StreamId, first: StreamId | None, newest: StreamId | None, max_deleted: StreamId | None
) -> str | None:
    """Why a client that last saw ``last`` cannot be given every later event, or None if it can.

    ``first`` / ``newest`` are the oldest and newest entries the stream still holds (None when the
    stream does not exist), ``max_deleted`` the newest entry trimmed from it (ORIGIN: none yet;
    None: unknown, which counts as "anything older than ``first`` may have been trimmed").
    """
    if newest is None:
        # No stream: it expired (idle for the TTL) or never existed. ORIGIN is the position we hand
        # out for an empty stream, so nothing can have been missed since; any other id is lost.
        return None if last == ORIGIN else "gap"
    if last > newest:
        return "unknown-id"  # not issued by this stream (for example, Redis was flushed)
    if first is not None and last >= first:
        return None
    if max_deleted is not None and max_deleted != ORIGIN and last >= max_deleted:
        return None  # the entries trimmed were all at or before what the client saw
    if max_deleted == ORIGIN and last == ORIGIN:
        return None  # a stream that was empty when the client saw it, and nothing trimmed since
    return "gap"


def encode_event(data: dict[str, Any]) -> bytes:
    """One line of JSON (orjson escapes newlines), datetimes as UTC ``Z``."""
    return orjson.dumps(data, option=JSON_OPTIONS)


class LiveBus(ABC):
    """Per-user event streams: publish to recipients, read one user's stream with ids and replay."""

    def __init__(self, maxlen: int = DEFAULT_MAXLEN, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> None:
        self.maxlen = maxlen
        self.ttl_seconds = ttl_seconds

    def publish(self, user_ids: Iterable[str], event_type: str, data: dict[str, Any]) -> None:
        self.publish_many([QueuedEvent(event_type, sorted(set(user_ids)), data)])

    @abstractmethod
    def publish_many(self, events: Sequence[QueuedEvent]) -> None:
        """Append every event to each of its recipients' streams (never raises: drops and logs)."""

    @abstractmethod
    def start(self, user_id: str, last_event_id: str | None) -> StreamStart:
        """Resolve where a new connection starts; ``last_event_id`` None means "from now"."""

    @abstractmethod
    def read(self, user_id: str, last_id: str, block_ms: int) -> list[LiveEntry]:
        """Entries after ``last_id``, waiting up to ``block_ms`` for one; [] when none came."""

    def close(self) -> None:  # noqa: B027 - optional for implementations holding nothing
        """Release connections."""


# --- Redis Streams ---------------------------------------------------------------------------------


PUBLISH_ONE_LUA = """
for _, key in ipairs(KEYS) do
    redis.call('XADD', key, 'MAXLEN', '~', ARGV[1], '*', 'type', ARGV[3], 'data', ARGV[4])
    redis.call('EXPIRE', key, ARGV[2])
end
"""


# An event ready to publish: its recipients' stream keys, its type, its JSON.
_Encoded = tuple[list[str], str, bytes]


class RedisLiveBus(LiveBus):
    """One Redis stream per user: ``XADD {key_prefix}live:user:{id} MAXLEN ~ N * type … data …`` and ``EXPIRE``;
    ``key_prefix`` (``REDIS_KEY_PREFIX``) starts every key the bus writes or reads.

    Publishing uses short timeouts and no retries (a commit must not wait on Redis). Readers block
    in ``XREAD BLOCK`` on connections of a pool shared by the process; under gevent each waiting
    stream is a parked greenlet and an idle socket, no CPU.

    Under gevent (the web tier), :meth:`publish_many` does not wait for Redis either: it queues the events for
    one publishing greenlet per process and returns, so a request's response goes out without the round trip.
    That greenlet runs as soon as the request's greenlet yields (writing its response, or waiting for the next
    request on the connection), and publishes everything queued by then — the events of several requests — in
    one pipelined round trip, one ``EVALSHA`` each, in the order they were queued, so a client may get its
    response a moment before its own stream has the event. While Redis is unreachable a batch, not each
    request, waits for the connect timeout before the events are dropped (logged). Events still queued when the
    process exits are published on the way out: gevent runs the waiting greenlet before the interpreter ends.
    Elsewhere (Celery workers, the CLI, tests in threads) it publishes before it returns.
    """

    def __init__(
        self,
        url: str,
        maxlen: int = DEFAULT_MAXLEN,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        max_block_seconds: float = 60.0,
        key_prefix: str = "",
    ) -> None:
        super().__init__(maxlen, ttl_seconds)
        self.key_prefix = key_prefix + KEY_PREFIX
        no_retry = Retry(NoBackoff(), 0)
        self._publisher = redis.Redis(
            connection_pool=redis.ConnectionPool.from_url(
                url, socket_connect_timeout=0.5, socket_timeout=1.0, retry=no_retry
            )
        )
        # Readers: the socket timeout must outlast the longest XREAD BLOCK.
        self._reader = redis.Redis(
            connection_pool=redis.ConnectionPool.from_url(
                url,
                socket_connect_timeout=2.0,
                socket_timeout=max_block_seconds + 10.0,
                socket_keepalive=True,
                retry=no_retry,
            )
        )
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        # What publish_many's pipeline does for one event, as one command: redis-py spends more CPU packing and
        # parsing four pipelined commands than Redis spends running them.
        self._publish_one = self._publisher.register_script(PUBLISH_ONE_LUA)
        self._publish_sha = hashlib.sha1(PUBLISH_ONE_LUA.encode()).hexdigest()  # as Redis names it
        self._no_script = redis.exceptions.NoScriptError
        # Under gevent: the events waiting for the publishing greenlet, and whether it is scheduled or running.
        self._pending: list[_Encoded] | None = [] if gevent_patched() else None
        self._flushing = False

    def key(self, user_id: str) -> str:
        """The Redis key of ``user_id``'s stream."""
        return self.key_prefix + user_id

    def publish_many(self, events: Sequence[QueuedEvent]) -> None:
        # Encoded now: what is published is the data as it is at this call, whenever it goes out.
        encoded = [([self.key(u) for u in e.user_ids], e.type, encode_event(e.data)) for e in events]
        if self._pending is None:
            self._publish(encoded)
            return
        self._pending.extend(encoded)
        if encoded and not self._flushing:
            self._flushing = True
            gevent.spawn(self._flush)

    def _flush(self) -> None:
        """The publishing greenlet: until nothing is queued, publish everything queued so far in one go."""
        try:
            while self._pending:
                batch = list(self._pending)
                self._pending.clear()
                self._publish(batch)
        finally:
            self._flushing = False

    def _publish(self, events: Sequence[_Encoded]) -> None:
        """One round trip: one ``EVALSHA`` of :data:`PUBLISH_ONE_LUA` per event (its streams, type and JSON),
        pipelined when there are several."""
        if not events:
            return
        if len(events) == 1:  # the usual case (one message, its participants): one EVALSHA does every XADD+EXPIRE
            keys, event_type, payload = events[0]
            try:
                self._publish_one(keys=keys, args=[self.maxlen, self.ttl_seconds, event_type, payload])
            except self._errors as exc:
                log.warning("live updates: dropped a %s event for %d stream(s), Redis unavailable: %s",
                            event_type, len(keys), exc)
            return
        pipe = self._publisher.pipeline(transaction=False)
        for keys, event_type, payload in events:
            pipe.execute_command("EVALSHA", self._publish_sha, len(keys), *keys,
                                 self.maxlen, self.ttl_seconds, event_type, payload)
        try:
            results = pipe.execute(raise_on_error=False)
        except self._errors as exc:
            # The change is committed; clients that miss it refetch when they next load.
            log.warning("live updates: dropped %d event(s), Redis unavailable: %s", len(events), exc)
            return
        for one, result in zip(events, results, strict=True):
            if isinstance(result, self._no_script):  # Redis lost its scripts (a restart): the single path loads it
                self._publish([one])
            elif isinstance(result, Exception):
                log.warning("live updates: dropped a %s event: %s", one[1], result)

    def start(self, user_id: str, last_event_id: str | None) -> StreamStart:
        key = self.key(user_id)
        try:
            if last_event_id is None:
                return StreamStart(cursor=self._newest(key))
            last = parse_stream_id(last_event_id)
            if last is None:
                return StreamStart(cursor=self._newest(key), reset="unknown-id")
            # One MULTI: the replay and the bounds it is judged against are the same snapshot.
            pipe = self._reader.pipeline(transaction=True)
            pipe.xinfo_stream(key)
            pipe.xrange(key, min="(" + format_stream_id(last), max="+")
            info, entries = pipe.execute(raise_on_error=False)
        except self._errors as exc:
            raise LiveBusUnavailable(str(exc)) from exc
        if isinstance(info, Exception):  # "no such key": the stream expired or never existed
            reason = resume_gap(last, None, None, None)
            return StreamStart(cursor=ORIGIN_ID, reset=reason)
        if isinstance(entries, Exception):
            raise LiveBusUnavailable(str(entries))
        first = _entry_id(info.get("first-entry"))
        newest = _entry_id(info.get("last-entry"))
        max_deleted_raw = info.get("max-deleted-entry-id")  # Redis ≥ 7.0
        max_deleted = parse_stream_id(_text(max_deleted_raw)) if max_deleted_raw is not None else None
        reason = resume_gap(last, first, newest, max_deleted)
        if reason is not None:
            return StreamStart(cursor=format_stream_id(newest) if newest else ORIGIN_ID, reset=reason)
        replay = [_redis_entry(entry_id, fields) for entry_id, fields in entries]
        return StreamStart(cursor=replay[-1].id if replay else format_stream_id(last), replay=replay)

    def _newest(self, key: str) -> str:
        newest = self._reader.xrevrange(key, "+", "-", count=1)
        return _text(newest[0][0]) if newest else ORIGIN_ID

    def read(self, user_id: str, last_id: str, block_ms: int) -> list[LiveEntry]:
        try:
            response = self._reader.xread({self.key(user_id): last_id}, count=500, block=max(1, block_ms))
        except self._errors as exc:
            raise LiveBusUnavailable(str(exc)) from exc
        if not response:
            return []
        return [_redis_entry(entry_id, fields) for entry_id, fields in response[0][1]]

    def close(self) -> None:
        self._publisher.close()
        self._reader.close()
        self._publisher.connection_pool.disconnect()
        self._reader.connection_pool.disconnect()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry_id(entry: Any) -> StreamId | None:
    if not entry or entry[0] is None:
        return None
    return parse_stream_id(_text(entry[0]))


def _redis_entry(entry_id: Any, fields: dict[bytes, bytes]) -> LiveEntry:
    return LiveEntry(id=_text(entry_id), type=_text(fields[b"type"]), data=fields[b"data"])


# --- wiring: the bus per app, publication after commit ---------------------------------------------


def publish_after_commit(session: Session, event_type: str, user_ids: Iterable[str], data: dict[str, Any]) -> None:
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown live event type {event_type}")
    pending: list[QueuedEvent] = session.info.setdefault("live_events", [])
    pending.append(QueuedEvent(event_type, sorted(set(user_ids)), data, session.get_nested_transaction()))


def publish_committed(event_type: str, user_ids: Iterable[str], data: dict[str, Any]) -> None:
    """Publish at once, for a change that is already committed (a statement run in autocommit); like the
    after-commit publication, a failure is logged and does not fail the request."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown live event type {event_type}")
    publish_now(current_app.extensions["live"], event_type, user_ids, data)


def publish_once_committed(session: Session, event_type: str, user_ids: Iterable[str], data: dict[str, Any]) -> None:
    """After ``session``'s commit if it has a transaction open; at once otherwise (the change was a statement run
    in autocommit, committed already)."""
    if session.in_transaction():
        publish_after_commit(session, event_type, user_ids, data)
    else:
        publish_committed(event_type, user_ids, data)


def publish_now(bus: LiveBus, event_type: str, user_ids: Iterable[str], data: dict[str, Any]) -> None:
    """:func:`publish_committed` on a given bus (no app context needed)."""
    try:
        bus.publish_many([QueuedEvent(event_type, sorted(set(user_ids)), data)])
    except Exception:  # the change is committed: a failure to announce it must not fail the request
        log.exception("live updates: publishing %s failed", event_type)


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def live_settings() -> dict[str, Any]:
    """LIVE_* settings from the environment (see docs/settings.md, "Live updates")."""
    return {
        "LIVE_STREAM_MAXLEN": int(_env_number("LIVE_STREAM_MAXLEN", DEFAULT_MAXLEN)),
        "LIVE_STREAM_TTL_SECONDS": int(_env_number("LIVE_STREAM_TTL_SECONDS", DEFAULT_TTL_SECONDS)),
        "LIVE_HEARTBEAT_SECONDS": _env_number("LIVE_HEARTBEAT_SECONDS", DEFAULT_HEARTBEAT_SECONDS),
    }


def make_bus(config: dict[str, Any]) -> LiveBus:
    """The bus on ``REDIS_URL``, its keys under ``REDIS_KEY_PREFIX``, with the LIVE_* settings of ``config``."""
    return RedisLiveBus(
        config["REDIS_URL"],
        int(config["LIVE_STREAM_MAXLEN"]),
        int(config["LIVE_STREAM_TTL_SECONDS"]),
        max_block_seconds=float(config["LIVE_HEARTBEAT_SECONDS"]),
        key_prefix=config.get("REDIS_KEY_PREFIX") or "",
    )


def install_live_updates(app: Any) -> LiveBus:
    """Build the bus, keep it in ``app.extensions["live"]`` and publish each committed session's
    queued events through it (the app's sessionmaker must exist: call after ``db.init_app``)."""
    for name, value in live_settings().items():
        app.config.setdefault(name, value)
    bus = make_bus(app.config)
    app.extensions["live"] = bus
    hook_sessions(app.extensions["db"]["sessionmaker"], bus)
    return bus


def hook_sessions(target: Any, bus: LiveBus) -> None:
    """Listen on ``target`` (a sessionmaker, a Session subclass or a session)."""

    def after_commit(session: Session) -> None:
        events = session.info.pop("live_events", None)
        if not events:
            return
        try:
            bus.publish_many(events)
        except Exception:  # the change is committed: a failure to announce it must not fail the request
            log.exception("live updates: publishing %d event(s) failed", len(events))

    def after_soft_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
        events: list[QueuedEvent] | None = session.info.get("live_events")
        if not events:
            return
        if not previous_transaction.nested:
            session.info.pop("live_events", None)
            return
        # A savepoint rolled back: drop what was queued inside it, keep what the outer transaction queued.
        events[:] = [e for e in events if not _within(e.scope, previous_transaction)]

    def after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
        # The outer transaction ended without a commit (closed, or its connection invalidated).
        if transaction.parent is None:
            session.info.pop("live_events", None)

    event.listen(target, "after_commit", after_commit)
    event.listen(target, "after_soft_rollback", after_soft_rollback)
    event.listen(target, "after_transaction_end", after_transaction_end)


def _within(scope: SessionTransaction | None, savepoint: SessionTransaction) -> bool:
    while scope is not None:
        if scope is savepoint:
            return True
        scope = scope.parent
    return False
