"""Deleted users (SPEC §3): once the platform deletes a user, every web process refuses their token (401) within a
second — on every /v1 route, the fast lane's included, and on the live-update stream, which replays nothing to them
— and any stream they have open ends within about a second; putting the user back lets their tokens work again.
Two gunicorn servers (gunicorn's gevent worker) on one PostgreSQL database and one Redis."""

from __future__ import annotations

import json
import queue
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from messaging.api.stream import StreamingUsers
from messaging.chat.users import KnownUsers
from tests.conftest import REDIS_TEST_PREFIX, redis_url, sql_count
from tests.helpers_processes import Processes, call, mint, private_pg_database, service_env, wait_until
from tests.system.test_stream import SseClient

# How long after the platform's 204 every process must refuse the token, and an open stream must have ended. The
# service's bounds are 0.5 s for requests and 0.9 s plus one lookup for open streams (messaging.api.auth,
# messaging.api.stream); the margin is for a loaded test machine.
REFUSED_WITHIN = 1.0
STREAM_ENDS_WITHIN = 1.5

CREATED_USERS: list[str] = []
USER_BODY = {"name": "Ana", "email": "ana@example.com", "phoneNumber": None, "role": "guest"}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Two web servers, ``a`` and ``b``, each one gevent worker process, sharing a database and Redis."""
    import redis

    live_redis = redis_url()
    with private_pg_database("concierge_deleted_users") as database_url:
        registry = Processes(tmp_path_factory.mktemp("deleted-users"))
        try:
            env = service_env(database_url, live_redis)
            yield {name: registry.web(env, worker_class="gevent").base for name in ("a", "b")}
        finally:
            registry.stop_all()
            if CREATED_USERS:
                redis.Redis.from_url(live_redis).delete(*[f"{REDIS_TEST_PREFIX}live:user:{user}"  # service_env's
                                                          for user in CREATED_USERS])


def new_user(servers: dict[str, str], prefix: str) -> tuple[str, str]:
    """A user created just in time, seen (and so remembered) by both servers: (id, token)."""
    user_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    CREATED_USERS.append(user_id)
    token = mint(user_id)
    for base in servers.values():
        assert call(base, "GET", "/v1/me", token)[0] == 200
    return user_id, token


def conversation_with_a_message(base: str, token: str, other: str) -> str:
    status, created = call(base, "POST", "/v1/conversations", token, {"participantIds": [other]})
    assert status == 201, created
    status, posted = call(base, "POST", f"/v1/conversations/{created['id']}/messages", token, {"message": "hi"})
    assert status == 201, posted
    return str(created["id"])


def delete_user(base: str, user_id: str) -> float:
    """The platform deletes the user through ``base``; the time its 204 arrived."""
    status, body = call(base, "DELETE", f"/v1/users/{user_id}", mint("platform", "service"))
    assert status == 204, body
    return time.monotonic()


def stream_status(streams: list[SseClient], base: str, token: str, **kwargs: Any) -> int:
    stream = SseClient(base, token, **kwargs)
    streams.append(stream)
    return stream.status


def ended(stream: SseClient, deadline: float) -> bool:
    """Whether the server ends ``stream`` before ``deadline`` (monotonic), whatever it sends before."""
    while (left := deadline - time.monotonic()) > 0:
        try:
            if stream.queue.get(timeout=left) is None:
                return True
        except queue.Empty:
            return False
    return False


def user_calls(conversation_id: str) -> list[tuple[str, str, Any]]:
    """A user's calls: plain views, the fast lane's reads (inbox, history) and writes (send, mark read)."""
    return [
        ("GET", "/v1/me", None),
        ("GET", "/v1/me/unread", None),
        ("GET", "/v1/conversations", None),
        ("GET", f"/v1/conversations/{conversation_id}", None),
        ("GET", f"/v1/conversations/{conversation_id}/messages", None),
        ("POST", f"/v1/conversations/{conversation_id}/messages", {"message": "still here?"}),
        ("POST", f"/v1/conversations/{conversation_id}/read", {}),
    ]


@pytest.mark.slow
def test_every_process_refuses_a_deleted_users_token_within_a_second(
    servers: dict[str, str], streams: list[SseClient]
) -> None:
    ana, ana_token = new_user(servers, "ana")
    bob, bob_token = new_user(servers, "bob")
    conversation_id = conversation_with_a_message(servers["a"], bob_token, ana)
    calls = user_calls(conversation_id)
    for base in servers.values():  # both processes serve (and remember) ana, twice: the inbox from the lane
        for _ in range(2):
            for method, path, body in calls:
                status, answer = call(base, method, path, ana_token, body)
                assert status in (200, 201), (base, path, answer)

    deleted_at = delete_user(servers["a"], ana)

    def refused() -> list[tuple[str, str, int]]:
        answers = [(base, path, call(base, method, path, ana_token, body)[0])
                   for base in servers.values() for method, path, body in calls]
        answers += [(base, "/v1/stream", stream_status(streams, base, ana_token)) for base in servers.values()]
        return [] if all(status == 401 for *_, status in answers) else answers

    wait_until(lambda: not refused(), REFUSED_WITHIN - (time.monotonic() - deleted_at), interval=0.02,
               what="every call of the deleted user to be 401 on both processes")
    for base in servers.values():
        status, problem = call(base, "GET", "/v1/conversations", ana_token)
        assert status == 401 and "deleted" in problem["detail"], problem
    # bob, who shared the conversation, carries on; ana's messages stay, shown as a deleted user's.
    status, page = call(servers["b"], "GET", f"/v1/conversations/{conversation_id}/messages", bob_token)
    assert status == 200, page
    assert {(m["message"], m["senderType"]) for m in page["items"]} == {("hi", "user"), ("still here?", "deleted")}


@pytest.mark.slow
def test_an_open_stream_of_a_deleted_user_ends_in_every_process(
    servers: dict[str, str], streams: list[SseClient]
) -> None:
    ana, ana_token = new_user(servers, "ana")
    bob, bob_token = new_user(servers, "bob")
    conversation_id = conversation_with_a_message(servers["a"], bob_token, ana)
    on_a, on_b, bobs = (SseClient(base, token) for base, token in
                        ((servers["a"], ana_token), (servers["b"], ana_token), (servers["b"], bob_token)))
    streams.extend((on_a, on_b, bobs))
    assert on_a.status == on_b.status == bobs.status == 200

    deadline = delete_user(servers["a"], ana) + STREAM_ENDS_WITHIN
    assert ended(on_b, deadline), "ana's stream on the other process is still open"
    assert ended(on_a, deadline), "ana's stream on the deleting process is still open"
    # Only hers: bob's stream on the same process still carries his conversation.
    status, message = call(servers["a"], "POST", f"/v1/conversations/{conversation_id}/messages", bob_token,
                           {"message": "anyone?"})
    assert status == 201, message
    assert bobs.next_event(timeout=2.0)["data"]["id"] == message["id"]


@pytest.mark.slow
def test_the_stream_replays_nothing_to_a_deleted_user_and_works_again_once_they_are_put_back(
    servers: dict[str, str], streams: list[SseClient]
) -> None:
    ana, ana_token = new_user(servers, "ana")
    bob, bob_token = new_user(servers, "bob")
    conversation_id = conversation_with_a_message(servers["a"], bob_token, ana)
    first = SseClient(servers["b"], ana_token)
    streams.append(first)
    status, _ = call(servers["a"], "POST", f"/v1/conversations/{conversation_id}/messages", bob_token,
                     {"message": "seen"})
    assert status == 201
    seen = first.next_event()
    first.close()
    for text in ("missed", "missed too"):
        assert call(servers["a"], "POST", f"/v1/conversations/{conversation_id}/messages", bob_token,
                    {"message": text})[0] == 201
    for base in servers.values():  # both remember ana
        assert call(base, "GET", "/v1/me", ana_token)[0] == 200

    delete_user(servers["a"], ana)
    # At once, on both processes: the stream looks the user up before replaying anything.
    for base in servers.values():
        for kwargs in ({"last_event_id": seen["id"]}, {"last_event_id": seen["id"], "in_query": True}):
            refused = SseClient(base, ana_token, **kwargs)
            streams.append(refused)
            assert refused.status == 401, (base, kwargs, refused.status)
            assert refused.content_type == "application/problem+json"
            problem = json.loads(refused.body)
            assert problem["status"] == 401 and "deleted" in problem["detail"]

    status, body = call(servers["b"], "PUT", f"/v1/users/{ana}", mint("platform", "service"), USER_BODY)
    assert status == 201, body
    # Nothing remembers a refusal: at once, on both processes, the token works again.
    for base in servers.values():
        assert call(base, "GET", "/v1/me", ana_token)[0] == 200
        status, inbox = call(base, "GET", "/v1/conversations", ana_token)
        assert status == 200 and inbox["items"] == []  # her participations went with the deletion
        again = SseClient(base, ana_token)
        streams.append(again)
        assert again.status == 200


def test_open_streams_look_their_users_up_together(pg_app: Any) -> None:
    """A process's open streams whose users it no longer remembers are looked up in one statement, whose answer
    serves the others; a user gone from the database is no longer there for their stream."""
    from sqlalchemy import delete

    from messaging.store.db import session_scope
    from messaging.store.models import User

    with pg_app.app_context(), session_scope() as session:
        session.add_all([User(id=user_id, role="guest") for user_id in ("u1", "u2", "u3")])
    known = KnownUsers(ttl=60)  # nothing forgotten while the test runs, however slowly
    users = StreamingUsers(known, pg_app.extensions["db"]["sessionmaker"])
    counting = sql_count(pg_app)
    with users.opened("u1"), users.opened("u2"), users.opened("u3"), users.opened("ghost"):
        with counting() as statements:
            assert [users.exists(user_id) for user_id in ("u1", "u2", "u3")] == [True, True, True]
        assert len(statements) == 1, statements
        assert "u1" in known and "u3" in known
        with counting() as statements:
            assert users.exists("ghost") is False
            assert users.exists("ghost") is False  # not remembered: asked again
        assert len(statements) == 2, statements
        known.discard("u2")  # as deleting the user does in this process
        with pg_app.app_context(), session_scope() as session:
            session.execute(delete(User).where(User.id == "u2"))
        assert users.exists("u2") is False
