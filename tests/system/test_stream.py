"""Live updates (SPEC §6, issue 5): the Redis bus and publication after commit in-process, then the SSE stream
through real gunicorn + gevent web processes sharing PostgreSQL and Redis. Every test's streams live under a key
prefix of its own in the run's Redis (tests/redis_prefix.py), deleted when it ends."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import redis

from app import create_app
from messaging.api.auth import mint_token
from messaging.cli import upgrade_database
from messaging.live.bus import RedisLiveBus, parse_stream_id, publish_after_commit, resume_gap
from messaging.store.db import session_scope
from tests import conftest
from tests.conftest import TEST_JWT_SECRET, pg_database_url, recreate_pg_database, redis_url
from tests.helpers_processes import drop_stale_pg_databases, wait_until
from tests.redis_prefix import own_prefix

ROOT = Path(__file__).resolve().parents[2]
JWT_CONFIG = {"JWT_SECRET": TEST_JWT_SECRET, "JWT_ISSUER": None, "JWT_AUDIENCE": None}


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own (``REDIS_KEY_PREFIX``), its keys deleted afterwards."""
    with own_prefix() as prefix:
        yield prefix


def mint(sub: str, role: str = "guest", ttl: int = 3600) -> str:
    return mint_token(JWT_CONFIG, sub=sub, role=role, ttl=dt.timedelta(seconds=ttl))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- the Redis bus, in-process -----------------------------------------------------------------------


@pytest.fixture
def bus_factory(redis_prefix: str) -> Iterator[Any]:
    """``bus_factory(maxlen=…, ttl_seconds=…)`` → a RedisLiveBus on the run's Redis under this test's prefix."""
    made: list[RedisLiveBus] = []

    def make(**kwargs: Any) -> RedisLiveBus:
        bus = RedisLiveBus(redis_url(), key_prefix=redis_prefix, **kwargs)
        made.append(bus)
        return bus

    yield make
    for bus in made:
        bus.close()


def test_bus_publishes_to_each_recipient_with_increasing_ids(bus_factory: Any) -> None:
    bus = bus_factory(maxlen=10)
    start_a = bus.start("a", None)
    bus.publish(["a", "b"], "message.created", {"id": "m1", "createdAt": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)})
    bus.publish(["a"], "message.created", {"id": "m2"})
    entries = bus.read("a", start_a.cursor, 10)
    assert [json.loads(e.data)["id"] for e in entries] == ["m1", "m2"]
    assert entries[0].data == b'{"id":"m1","createdAt":"2026-01-01T00:00:00Z"}'
    assert parse_stream_id(entries[0].id) < parse_stream_id(entries[1].id)  # type: ignore[operator]
    assert [json.loads(e.data)["id"] for e in bus.read("b", "0-0", 10)] == ["m1"]
    assert bus.read("c", bus.start("c", None).cursor, 10) == []
    assert bus.read("a", entries[-1].id, 10) == []


def test_bus_keys_start_with_the_prefix(bus_factory: Any, redis_prefix: str) -> None:
    bus = bus_factory()
    bus.publish(["a"], "message.created", {"id": "m1"})
    client = redis.Redis.from_url(redis_url())
    assert bus.key("a") == f"{redis_prefix}live:user:a"
    assert client.xlen(bus.key("a")) == 1 and 0 < client.ttl(bus.key("a")) <= bus.ttl_seconds


def test_bus_read_blocks_until_a_publish(bus_factory: Any) -> None:
    bus = bus_factory()
    cursor = bus.start("a", None).cursor
    timer = threading.Timer(0.1, bus.publish, args=(["a"], "message.created", {"id": "m1"}))
    began = time.monotonic()
    timer.start()
    entries = bus.read("a", cursor, 5000)
    assert [e.type for e in entries] == ["message.created"]
    assert time.monotonic() - began < 2
    began = time.monotonic()
    assert bus.read("a", entries[-1].id, 200) == []
    assert 0.15 < time.monotonic() - began < 2


def test_bus_replays_after_last_event_id_and_resets_past_the_window(bus_factory: Any) -> None:
    bus = bus_factory(maxlen=3)
    client = redis.Redis.from_url(redis_url())
    bus.publish(["a"], "message.created", {"n": 1})
    first = bus.read("a", "0-0", 10)[0]
    for n in (2, 3):
        bus.publish(["a"], "message.created", {"n": n})
    start = bus.start("a", first.id)
    assert start.reset is None
    assert [json.loads(e.data)["n"] for e in start.replay] == [2, 3]
    assert start.cursor == start.replay[-1].id
    # MAXLEN ~ trims whole stream nodes, when it trims: trim exactly here, as a full node would.
    bus.publish(["a"], "message.created", {"n": 4})
    client.xtrim(bus.key("a"), maxlen=3, approximate=False)  # trims n=1, the entry the client saw
    trimmed = client.xinfo_stream(bus.key("a")).get("max-deleted-entry-id")
    if trimmed is not None and trimmed.decode() == first.id:  # Redis records the trim point: nothing missed is gone
        assert [json.loads(e.data)["n"] for e in bus.start("a", first.id).replay] == [2, 3, 4]
    else:  # it does not (Redis < 7; 7.0.15 leaves trims unrecorded): the bus resets rather than skip events
        assert bus.start("a", first.id).reset == "gap"
    bus.publish(["a"], "message.created", {"n": 5})
    client.xtrim(bus.key("a"), maxlen=3, approximate=False)  # trims n=2, which the client never saw
    gap = bus.start("a", first.id)
    assert gap.reset == "gap" and gap.replay == []
    assert bus.read("a", gap.cursor, 10) == []  # continues from now
    assert bus.start("a", "not-an-id").reset == "unknown-id"
    assert bus.start("a", "99999999999999-0").reset == "unknown-id"
    assert bus.start("nobody", first.id).reset == "gap"  # expired or never existed
    assert bus.start("nobody", "0-0").reset is None


def test_bus_trims_its_streams_by_itself(bus_factory: Any) -> None:
    bus = bus_factory(maxlen=3)
    bus.publish(["a"], "message.created", {"n": 0})
    first = bus.read("a", "0-0", 10)[0]
    for n in range(1, 250):  # past a whole stream node (100 entries by default): MAXLEN ~ trims
        bus.publish(["a"], "message.created", {"n": n})
    assert redis.Redis.from_url(redis_url()).xlen(bus.key("a")) < 250
    assert bus.start("a", first.id).reset == "gap"


def test_bus_streams_expire_when_idle(bus_factory: Any) -> None:
    bus = bus_factory(ttl_seconds=1)
    bus.publish(["a"], "message.created", {"n": 1})
    seen = bus.read("a", "0-0", 10)[0]
    assert bus.start("a", seen.id).reset is None
    wait_until(lambda: bus.start("a", seen.id).reset == "gap", 5, what="the idle stream to expire")


def test_resume_gap_rules() -> None:
    assert resume_gap((5, 0), (3, 0), (9, 0), (2, 0)) is None
    assert resume_gap((2, 0), (3, 0), (9, 0), (2, 0)) is None  # the last trimmed entry was the client's
    assert resume_gap((1, 0), (3, 0), (9, 0), (2, 0)) == "gap"
    assert resume_gap((1, 0), (3, 0), (9, 0), None) == "gap"  # unknown trim point: conservative
    assert resume_gap((1, 0), (3, 0), (9, 0), (0, 0)) == "gap"  # a newer incarnation of the stream
    assert resume_gap((0, 0), (3, 0), (9, 0), (0, 0)) is None
    assert resume_gap((10, 0), (3, 0), (9, 0), (0, 0)) == "unknown-id"
    assert resume_gap((1, 0), None, None, None) == "gap"


# --- publication after commit (in-process, the run's PostgreSQL and Redis) --------------------------------


@pytest.fixture
def live_app(database_url: str, redis_prefix: str) -> Iterator[Any]:
    app = create_app(conftest.test_config(database_url, REDIS_KEY_PREFIX=redis_prefix, LIVE_HEARTBEAT_SECONDS=0.2,
                                          LIVE_STREAM_MAXLEN=3))
    yield app
    conftest._wipe(app)
    app.extensions["live"].close()


def test_events_are_published_after_commit_and_never_for_a_rollback(live_app: Any) -> None:
    bus = live_app.extensions["live"]
    with live_app.app_context():
        cursor = bus.start("u1", None).cursor
        with session_scope() as session:
            publish_after_commit(session, "message.created", ["u1", "u1"], {"n": "committed"})
            assert bus.read("u1", cursor, 1) == []  # not before the commit
        with pytest.raises(RuntimeError), session_scope() as session:
            publish_after_commit(session, "message.created", ["u1"], {"n": "rolled back"})
            raise RuntimeError
        with session_scope() as session:
            session.connection()
            publish_after_commit(session, "message.created", ["u1"], {"n": "outer"})
            savepoint = session.begin_nested()
            publish_after_commit(session, "message.created", ["u1"], {"n": "savepoint"})
            savepoint.rollback()
        session = live_app.extensions["db"]["sessionmaker"]()
        session.connection()
        publish_after_commit(session, "message.created", ["u1"], {"n": "closed without a commit"})
        session.close()
        session.connection()
        session.commit()  # the same session, reused: nothing stale is published
    assert [json.loads(e.data)["n"] for e in bus.read("u1", cursor, 1)] == ["committed", "outer"]
    with pytest.raises(ValueError):
        publish_after_commit(None, "message.deleted", ["u1"], {})  # type: ignore[arg-type]


def _sse_chunks(response: Any) -> Iterator[bytes]:
    return iter(response.response)


def test_stream_endpoint_in_process(live_app: Any) -> None:
    client = live_app.test_client()
    alice_id = unique("alice")
    alice, bob = mint(alice_id), mint(unique("bob"))
    for token in (alice, bob):
        assert client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    r = client.get("/v1/stream")
    assert r.status_code == 401 and r.content_type == "application/problem+json"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/v1/stream?access_token=nonsense").status_code == 401
    r = client.get("/v1/stream", headers={"Authorization": f"Bearer {mint('platform', 'service')}"})
    assert r.status_code == 403 and r.content_type == "application/problem+json"

    stream = client.get(f"/v1/stream?access_token={alice}", buffered=False)
    assert stream.status_code == 200
    assert stream.mimetype == "text/event-stream"
    assert stream.headers["Cache-Control"] == "no-cache" and stream.headers["X-Accel-Buffering"] == "no"
    chunks = _sse_chunks(stream)
    assert b": connected" in next(chunks)
    created = client.post("/v1/conversations", json={"participantIds": [alice_id]},
                          headers={"Authorization": f"Bearer {bob}"})
    conversation_id = created.json["id"]
    posted = client.post(f"/v1/conversations/{conversation_id}/messages", json={"message": "hi"},
                         headers={"Authorization": f"Bearer {bob}"}).json
    events = parse_sse(next(chunks))
    assert [e["event"] for e in events] == ["conversation.created", "message.created"]
    assert events[1]["data"] == posted
    assert next(chunks) == b": keepalive\n\n"
    stream.close()

    for n in range(2):
        client.post(f"/v1/conversations/{conversation_id}/messages", json={"message": f"m{n}"},
                    headers={"Authorization": f"Bearer {bob}"})
    resumed = client.get("/v1/stream", headers={"Authorization": f"Bearer {alice}",
                                                "Last-Event-ID": events[1]["id"]}, buffered=False)
    replay = parse_sse(next(_sse_chunks(resumed)))
    assert [e["data"]["message"] for e in replay] == ["m0", "m1"]
    resumed.close()
    # The window holds 3 events per user: after 3 more, the client's id is beyond it (trimmed exactly here, as
    # MAXLEN ~ trims once a whole stream node is past the window).
    for n in range(2, 5):
        client.post(f"/v1/conversations/{conversation_id}/messages", json={"message": f"m{n}"},
                    headers={"Authorization": f"Bearer {bob}"})
    bus = live_app.extensions["live"]
    redis.Redis.from_url(redis_url()).xtrim(bus.key(alice_id), maxlen=3, approximate=False)
    reset = client.get(f"/v1/stream?lastEventId={events[1]['id']}", headers={"Authorization": f"Bearer {alice}"},
                       buffered=False)
    frames = parse_sse(next(_sse_chunks(reset)))
    assert [(e["event"], e["data"]) for e in frames] == [("reset", {"reason": "gap"})]
    assert frames[0]["id"]
    reset.close()


def test_the_openapi_document_describes_the_stream(live_app: Any) -> None:
    doc = live_app.test_client().get("/openapi.json").json
    operation = doc["paths"]["/v1/stream"]["get"]
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    assert {p["name"] for p in operation["parameters"]} >= {"access_token", "lastEventId", "Last-Event-ID"}


def parse_sse(raw: bytes) -> list[dict[str, Any]]:
    """Events (not comments) in a chunk of an event stream."""
    events = []
    for block in raw.decode().split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "event" in fields:
            fields["data"] = json.loads(fields["data"])
            events.append(fields)
    return events


# --- through real web processes: gunicorn + gevent, PostgreSQL, Redis -------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WebProcess:
    """``gunicorn -k messaging.server.GeventWorker`` (the production command) serving ``app:create_app()``
    on a free port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "-k", "messaging.server.GeventWorker", "-w", "1", "--worker-connections", "2000",
                "--graceful-timeout", "2", "-b", f"127.0.0.1:{self.port}", "app:create_app()",
            ],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}; see {self.log.name}")
            try:
                if call(self.base, "GET", "/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not start; see {self.log.name}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # quick shutdown: open streams are dropped
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def call(base: str, method: str, path: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, (json.loads(raw) if raw else None)
    finally:
        conn.close()


class SseClient:
    """Reads an event stream in a thread: events and comments land in a queue as they arrive; the last id seen
    (events' and the opening's) is kept as a browser keeps it for its reconnection."""

    def __init__(
        self,
        base: str,
        token: str | None,
        *,
        in_query: bool = False,
        last_event_id: str | None = None,
    ) -> None:
        parts = urlsplit(base)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=20)
        path = "/v1/stream"
        headers = {"Accept": "text/event-stream"}
        if token and in_query:
            path += f"?access_token={quote(token)}"
        elif token:
            headers["Authorization"] = f"Bearer {token}"
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.last_event_id: str | None = None  # as a browser's EventSource keeps it
        self.opened = threading.Event()  # the opening block has been read
        self.conn.request("GET", path, headers=headers)
        self._sock = self.conn.sock  # getresponse() lets go of it when the server speaks HTTP/1.0
        # The server resolves the stream position before it answers: once the headers are here,
        # every event published from now on is on this stream.
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.content_type = self.response.getheader("Content-Type", "")
        self._thread: threading.Thread | None = None
        if self.status == 200:
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()
        else:
            self.body = self.response.read()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            while True:
                line = self.response.readline()
                if not line:
                    break
                text = line.decode().rstrip("\n")
                if text.startswith(":"):
                    self.queue.put({"comment": text[1:].strip(), "at": time.monotonic()})
                elif text:
                    name, _, value = text.partition(":")
                    fields[name] = value.removeprefix(" ")
                elif "event" in fields or "data" in fields:
                    self.last_event_id = fields.get("id", self.last_event_id)
                    self.queue.put({
                        "event": fields.get("event"),
                        "id": fields.get("id"),
                        "data": json.loads(fields["data"]),
                        "at": time.monotonic(),
                    })
                    fields = {}
                else:  # a block without data dispatches nothing, but its id is the client's to resume from
                    self.last_event_id = fields.get("id", self.last_event_id)
                    self.opened.set()
                    fields = {}
        except (OSError, ValueError, http.client.HTTPException):
            pass
        finally:
            self.queue.put(None)

    def next_event(self, timeout: float = 3.0) -> dict[str, Any]:
        """The next event (comments skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                item = self.queue.get(timeout=max(left, 0.001))
            except queue.Empty:
                raise AssertionError(f"no event within {timeout}s") from None
            if item is None:
                raise AssertionError("the stream ended")
            if "event" in item:
                return item

    def drain(self, seconds: float) -> tuple[list[dict[str, Any]], list[str]]:
        """Everything that arrives within ``seconds``: (events, comments)."""
        events, comments = [], []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = self.queue.get(timeout=left)
            except queue.Empty:
                break
            if item is None:
                break
            if "event" in item:
                events.append(item)
            else:
                comments.append(item["comment"])
        return events, comments

    def close(self) -> None:
        try:
            if self._sock is not None:
                self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(5)  # the reader sees the end of the stream, then the socket is closed
        self.conn.close()


# One database per run, and user ids unique to each test: two runs of the suite at the same time (several
# people share this machine and its servers) must not drop or flush each other's state.
STREAM_DATABASE = f"concierge_stream_{os.getpid()}"


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Three web processes on one PostgreSQL database and the run's Redis (under a key prefix of this module's):
    ``a`` and ``b`` as production would run them, ``small`` with a 5-event window for the trimming test."""
    with own_prefix() as key_prefix:
        yield from _web_processes(tmp_path_factory, key_prefix)


def _web_processes(tmp_path_factory: pytest.TempPathFactory, key_prefix: str) -> Iterator[dict[str, str]]:
    drop_stale_pg_databases("concierge_stream")
    database_url = recreate_pg_database(STREAM_DATABASE)
    upgrade_database(database_url)
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url(),
        "REDIS_KEY_PREFIX": key_prefix,
        "JWT_SECRET": TEST_JWT_SECRET,
        "LIVE_HEARTBEAT_SECONDS": "1",
        "DB_POOL_SIZE": "5",
        "RATE_LIMITS_ENABLED": "0",  # the test posts more than a user's budget; limits have their own tests
    }
    logs = tmp_path_factory.mktemp("gunicorn")
    processes = {
        "a": WebProcess(env, logs / "a.log"),
        "b": WebProcess(env, logs / "b.log"),
        "small": WebProcess({**env, "LIVE_STREAM_MAXLEN": "5"}, logs / "small.log"),
    }
    try:
        for process in processes.values():
            process.wait_ready()
        yield {name: process.base for name, process in processes.items()}
    finally:
        for process in processes.values():
            process.stop()
        conftest.drop_database(STREAM_DATABASE)


def users(base: str, *prefixes: str) -> list[tuple[str, str]]:
    """(user id, token) pairs, created just in time through the API."""
    out = []
    for prefix in prefixes:
        user_id = unique(prefix)
        token = mint(user_id)
        assert call(base, "GET", "/v1/me", token)[0] == 200
        out.append((user_id, token))
    return out


def conversation(base: str, token: str, *others: str, name: str | None = None) -> str:
    body: dict[str, Any] = {"participantIds": list(others)}
    if name:
        body["name"] = name
    status, created = call(base, "POST", "/v1/conversations", token, body)
    assert status == 201, created
    return str(created["id"])


def post(base: str, token: str, conversation_id: str, text: str) -> dict[str, Any]:
    status, message = call(base, "POST", f"/v1/conversations/{conversation_id}/messages", token, {"message": text})
    assert status == 201, message
    return message  # type: ignore[no-any-return]


def open_stream(streams: list[SseClient], base: str, token: str | None, **kwargs: Any) -> SseClient:
    stream = SseClient(base, token, **kwargs)
    streams.append(stream)
    return stream


def test_the_embedded_server_streams_through_redis(live_app: Any, streams: list[SseClient]) -> None:
    """The embedded default (`make run`): werkzeug's threaded server, one process, the bus on Redis."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, live_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        (alice, alice_token), (_, bob_token) = users(base, "alice", "bob")
        conversation_id = conversation(base, bob_token, alice)
        stream = open_stream(streams, base, alice_token)
        message = post(base, bob_token, conversation_id, "from the embedded server")
        assert stream.next_event(timeout=1.0)["data"] == message
        events, comments = stream.drain(0.5)
        assert events == [] and "keepalive" in comments
        stream.close()
    finally:
        server.shutdown()
        thread.join(5)


@pytest.mark.slow
def test_a_message_posted_through_one_process_reaches_a_stream_on_another(
    web: dict[str, str], streams: list[SseClient]
) -> None:
    (alice, alice_token), (bob, bob_token), (_, outsider_token) = users(web["b"], "alice", "bob", "outsider")
    conversation_id = conversation(web["b"], bob_token, alice)
    on_a = open_stream(streams, web["a"], alice_token)
    outsider = open_stream(streams, web["a"], outsider_token)
    assert on_a.status == 200 and on_a.content_type.startswith("text/event-stream")

    posted_at = time.monotonic()
    message = post(web["b"], bob_token, conversation_id, "Is the pool heated?")
    event = on_a.next_event(timeout=1.0)
    assert event["at"] - posted_at < 1.0
    assert event["event"] == "message.created"
    assert event["data"] == message
    assert event["data"]["senderType"] == "user" and event["data"]["userId"] == bob
    assert parse_stream_id(event["id"]) is not None

    events, comments = outsider.drain(1.5)
    assert events == []
    assert "keepalive" in comments  # LIVE_HEARTBEAT_SECONDS=1 on these servers


@pytest.mark.slow
def test_reconnecting_with_last_event_id_replays_exactly_the_missed_events(
    web: dict[str, str], streams: list[SseClient]
) -> None:
    (alice, alice_token), (_, bob_token) = users(web["a"], "alice", "bob")
    conversation_id = conversation(web["a"], bob_token, alice)
    first = open_stream(streams, web["a"], alice_token)
    post(web["b"], bob_token, conversation_id, "one")
    seen = first.next_event()
    assert seen["data"]["message"] == "one"
    first.close()

    missed = [post(web["b"], bob_token, conversation_id, text)["id"] for text in ("two", "three", "four")]
    resumed = open_stream(streams, web["b"], alice_token, last_event_id=seen["id"])
    replayed = [resumed.next_event() for _ in missed]
    assert [e["data"]["id"] for e in replayed] == missed
    assert all(e["event"] == "message.created" for e in replayed)
    ids = [parse_stream_id(e["id"]) for e in replayed]
    assert ids == sorted(ids) and ids[0] > parse_stream_id(seen["id"])  # type: ignore[operator]

    live = post(web["a"], bob_token, conversation_id, "five")
    assert resumed.next_event(timeout=1.0)["data"]["id"] == live["id"]  # nothing else in between


@pytest.mark.slow
def test_a_last_event_id_older_than_the_window_gets_a_reset(web: dict[str, str], streams: list[SseClient]) -> None:
    (alice, alice_token), (_, bob_token) = users(web["small"], "alice", "bob")
    conversation_id = conversation(web["small"], bob_token, alice)
    first = open_stream(streams, web["small"], alice_token)
    post(web["small"], bob_token, conversation_id, "seen")
    seen = first.next_event()
    first.close()
    # MAXLEN ~ 5 trims whole stream nodes, so the window is "at least 5": go well past a node.
    for n in range(150):
        post(web["small"], bob_token, conversation_id, f"missed {n}")

    resumed = open_stream(streams, web["small"], alice_token, last_event_id=seen["id"])
    reset = resumed.next_event()
    assert (reset["event"], reset["data"]) == ("reset", {"reason": "gap"})
    assert reset["id"]
    live = post(web["small"], bob_token, conversation_id, "after the reset")
    event = resumed.next_event(timeout=1.0)
    assert (event["event"], event["data"]["id"]) == ("message.created", live["id"])


@pytest.mark.slow
def test_joining_and_leaving_start_and_stop_events_without_reconnecting(
    web: dict[str, str], streams: list[SseClient]
) -> None:
    (alice, alice_token), (_, bob_token), (carol, carol_token) = users(web["a"], "alice", "bob", "carol")
    conversation_id = conversation(web["a"], bob_token, alice, name="Trip planning")
    carol_stream = open_stream(streams, web["a"], carol_token)
    alice_stream = open_stream(streams, web["b"], alice_token)

    post(web["b"], bob_token, conversation_id, "before carol")
    assert alice_stream.next_event(timeout=1.0)["data"]["message"] == "before carol"

    status, _ = call(web["b"], "POST", f"/v1/conversations/{conversation_id}/participants", bob_token,
                     {"userId": carol})
    assert status == 201
    joined = carol_stream.next_event(timeout=1.0)
    assert joined["event"] == "conversation.created"
    assert joined["data"]["id"] == conversation_id
    assert carol in {p["userId"] for p in joined["data"]["participants"]}
    welcome = post(web["b"], bob_token, conversation_id, "welcome carol")
    event = carol_stream.next_event(timeout=1.0)
    assert (event["event"], event["data"]["id"]) == ("message.created", welcome["id"])

    status, _ = call(web["b"], "DELETE", f"/v1/conversations/{conversation_id}/participants/{carol}", carol_token)
    assert status == 204
    post(web["b"], bob_token, conversation_id, "after carol left")
    # Alice, the control, gets it ...
    assert [alice_stream.next_event(timeout=1.0)["data"]["message"] for _ in range(2)] == [
        "welcome carol", "after carol left"
    ]
    events, _ = carol_stream.drain(1.5)
    assert events == []  # ... carol, who left, does not


@pytest.mark.slow
def test_read_receipts_and_edits_are_streamed(web: dict[str, str], streams: list[SseClient]) -> None:
    (alice, alice_token), (bob, bob_token) = users(web["a"], "alice", "bob")
    conversation_id = conversation(web["a"], bob_token, alice)
    alice_stream = open_stream(streams, web["a"], alice_token)
    bob_stream = open_stream(streams, web["b"], bob_token)
    message = post(web["b"], bob_token, conversation_id, "check-in is at 3pm")
    assert alice_stream.next_event()["data"]["id"] == message["id"]
    assert bob_stream.next_event()["data"]["id"] == message["id"]  # the author's other devices

    status, body = call(web["b"], "POST", f"/v1/conversations/{conversation_id}/read", alice_token, {})
    assert status == 200, body
    for stream in (bob_stream, alice_stream):
        read = stream.next_event(timeout=1.0)
        assert read["event"] == "conversation.read"
        assert read["data"]["conversationId"] == conversation_id and read["data"]["userId"] == alice
        assert read["data"]["lastReadAt"].endswith(("Z", "+00:00"))

    status, edited = call(
        web["a"], "PATCH", f"/v1/messages/{message['id']}", bob_token, {"message": "check-in is at 4pm"}
    )
    assert status == 200, edited
    updated = alice_stream.next_event(timeout=1.0)
    assert updated["event"] == "message.updated"
    assert updated["data"] == edited and updated["data"]["isEdit"] is True


@pytest.mark.slow
def test_a_token_in_the_query_string_and_refusals(web: dict[str, str], streams: list[SseClient]) -> None:
    (alice, alice_token), (_, bob_token) = users(web["a"], "alice", "bob")
    conversation_id = conversation(web["a"], bob_token, alice)
    by_query = open_stream(streams, web["a"], alice_token, in_query=True)
    assert by_query.status == 200
    message = post(web["b"], bob_token, conversation_id, "hello from the query string")
    assert by_query.next_event(timeout=1.0)["data"]["id"] == message["id"]

    anonymous = open_stream(streams, web["a"], None)
    assert anonymous.status == 401
    assert anonymous.content_type == "application/problem+json"
    assert json.loads(anonymous.body)["status"] == 401
    expired = open_stream(streams, web["a"], mint(alice, ttl=-3600))
    assert expired.status == 401
    service = open_stream(streams, web["a"], mint("platform", "service"))
    assert service.status == 403


@pytest.mark.slow
def test_psycopg_and_redis_wait_cooperatively_under_gevent() -> None:
    """gunicorn's gevent worker patches the standard library before loading the app; psycopg 3
    (≥ 3.1.15) then waits through the patched select instead of its C wait, and redis-py is pure
    Python sockets. Checked the way the worker runs: patch first, then import."""
    database_url = pg_database_url("postgres")
    script = f"""
from gevent import monkey; monkey.patch_all()
import time, gevent, psycopg, redis
from psycopg import waiting
assert waiting.wait is not getattr(waiting, "wait_c", None), waiting.wait
url = {database_url.replace("postgresql+psycopg://", "postgresql://", 1)!r}
def sleep_in_postgres():
    with psycopg.connect(url) as conn:
        conn.execute("SELECT pg_sleep(1)")
def block_in_redis(n):
    redis.Redis.from_url({redis_url()!r}).xread({{f"{conftest.REDIS_TEST_PREFIX}gevent:{{n}}": "$"}}, block=1000)
began = time.monotonic()
gevent.joinall([gevent.spawn(sleep_in_postgres) for _ in range(5)] +
               [gevent.spawn(block_in_redis, n) for n in range(5)], raise_error=True)
print(round(time.monotonic() - began, 2))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.strip()) < 3  # five 1 s waits of each kind overlapped (one after another: 10 s)


PUBLISHER_CHILD = """
from gevent import monkey; monkey.patch_all()
import json, socket, sys, time
import gevent, redis
from messaging.live.bus import RedisLiveBus

url, prefix, key_prefix = sys.argv[1], sys.argv[2], sys.argv[3]
client = redis.Redis.from_url(url)
bus = RedisLiveBus(url, key_prefix=key_prefix)
rounds, publishers = [], []
publish = bus._publish
def counted(events):  # one call, one round trip
    rounds.append(len(events))
    publishers.append(gevent.getcurrent())
    return publish(events)
bus._publish = counted
out = {}

def stream(user):
    return [json.loads(fields[b"data"])["n"] for _, fields in client.xrange(bus.key(user))]

# Forty requests in one turn of the loop, each telling two people: no request's greenlet talks to Redis; once they
# yield, everything is published in the order it was queued, in fewer round trips than requests.
def request(n):
    bus.publish([f"{prefix}-a", f"{prefix}-b"], "message.created", {"n": n})
requests = [gevent.spawn(request, n) for n in range(40)]
gevent.joinall(requests)
gevent.sleep(0.2)
out["published_by_a_request"] = any(p in requests for p in publishers)
out["a"], out["b"], out["rounds"] = stream(f"{prefix}-a"), stream(f"{prefix}-b"), list(rounds)

# Redis forgot its scripts (a restart): a pipelined batch finds none, and every event still arrives, in order.
client.script_flush()
rounds.clear()
gevent.joinall([gevent.spawn(bus.publish, [f"{prefix}-c"], "message.created", {"n": n}) for n in range(5)])
gevent.sleep(0.2)
out["after_flush"], out["flush_rounds"] = stream(f"{prefix}-c"), list(rounds)

# Redis unreachable: publishing returns at once (no request waits for the connect timeout), the events are
# dropped, and the publisher is free again for the next ones.
with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    closed = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
down = RedisLiveBus(closed)
began = time.monotonic()
for n in range(3):
    down.publish([f"{prefix}-d"], "message.created", {"n": n})
out["down_returned_seconds"] = time.monotonic() - began
gevent.sleep(1.5)
out["down_free_again"] = down._flushing is False and down._pending == []

# What goes out is the data as it was when published, whatever its owner does with it afterwards.
data = {"n": "first"}
bus.publish([f"{prefix}-e"], "message.created", data)
data["n"] = "changed"
gevent.sleep(0.2)

# Queued, never yielded, and the process exits: published on the way out.
bus.publish([f"{prefix}-e"], "message.created", {"n": "last"})
print(json.dumps(out))
"""


def test_under_gevent_a_request_does_not_wait_for_redis_and_publishes_are_batched_in_order() -> None:
    """The web tier's publisher (RedisLiveBus under gevent, as gunicorn's worker runs it): a publish returns at
    once, one greenlet publishes what several requests queued in one round trip, in their order; a Redis that lost
    its scripts or is down loses nothing else; events queued at exit are published."""
    url = redis_url()
    prefix = unique("batch")
    with own_prefix() as key_prefix:
        out = subprocess.run([sys.executable, "-c", PUBLISHER_CHILD, url, prefix, key_prefix], capture_output=True,
                             text=True, timeout=60, cwd=ROOT)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["published_by_a_request"] is False
        assert result["a"] == result["b"] == list(range(40))
        assert sum(result["rounds"]) == 40 and len(result["rounds"]) < 40, result["rounds"]
        assert result["after_flush"] == list(range(5)) and result["flush_rounds"][0] == 5  # the pipeline met it
        assert result["down_returned_seconds"] < 0.3 and result["down_free_again"]
        assert "Redis unavailable" in out.stderr
        client = redis.Redis.from_url(url)
        stream = client.xrange(f"{key_prefix}live:user:{prefix}-e")
        assert [json.loads(f[b"data"])["n"] for _, f in stream] == ["first", "last"]
