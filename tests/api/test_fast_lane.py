"""The fast lane (messaging/fast_lane.py) on PostgreSQL: it serves an ordinary send beneath Flask, answers it as
the view would, and every request it hands over counts against the abuse limit once and is answered by the
application (404, 401, 429, the concierge path)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import func, select

from app import create_app
from messaging.config import celery_settings
from messaging.db import get_session
from messaging.fast_lane import FastLane
from messaging.health import REGISTRY
from messaging.models import ConversationStats, Message, ReadCursor, User
from tests import conftest
from tests.redis_prefix import own_prefix

SEND_RULE = "/v1/conversations/<id>/messages"


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own (``REDIS_KEY_PREFIX``), its keys deleted afterwards."""
    with own_prefix() as prefix:
        yield prefix


def _created_count() -> float:
    value = REGISTRY.get_sample_value(
        "http_requests_total", {"method": "POST", "endpoint": SEND_RULE, "status": "201"}
    )
    return value or 0.0


@contextmanager
def _view_fails(app: Any, endpoint: str) -> Iterator[None]:
    """Within: the view of ``endpoint`` fails if it runs, so a request that succeeds was served by the lane."""
    view = app.view_functions[endpoint]

    def must_not_run(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError(f"the view {endpoint} ran")

    app.view_functions[endpoint] = must_not_run
    try:
        yield
    finally:
        app.view_functions[endpoint] = view


def _conversation(client: Any, auth: Any, owner: str = "ana", other: str = "bob") -> str:
    client.get("/v1/me", headers=auth(other))
    response = client.post("/v1/conversations", json={"participantIds": [other]}, headers=auth(owner))
    assert response.status_code == 201, response.json
    return str(response.json["id"])


def test_an_ordinary_send_is_served_by_the_lane_without_the_view(pg_app: Any, auth: Any) -> None:
    assert isinstance(pg_app.wsgi_app, FastLane)
    client = pg_app.test_client()
    conversation = _conversation(client, auth)
    before = _created_count()
    with _view_fails(pg_app, "conversations.post_message"):
        response = client.post(
            f"/v1/conversations/{conversation}/messages",
            json={"message": "  hello from the lane  "},
            headers={**auth("ana"), "X-Request-Id": "trace-123"},
        )
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Request-Id"] == "trace-123"
    body = response.json
    assert body["message"] == "hello from the lane" and body["userId"] == "ana"
    assert body["senderType"] == "user" and body["read"] is False and body["isEdit"] is False
    assert body["conversationId"] == conversation and body["createdAt"].endswith("Z")
    assert _created_count() == before + 1
    # Stored, counted and read by its author, as the view's statement does; and listed in the history.
    history = client.get(f"/v1/conversations/{conversation}/messages", headers=auth("bob")).json["items"]
    assert [m["id"] for m in history] == [body["id"]]
    assert client.get("/v1/me/unread", headers=auth("bob")).json["total"] == 1
    assert client.get("/v1/me/unread", headers=auth("ana")).json["total"] == 0


@pytest.fixture
def apps(pg_url: str) -> Iterator[tuple[Any, Any]]:
    """The app with the lane and without it, on one database."""
    with_lane = create_app(conftest.test_config(pg_url))
    without = create_app(conftest.test_config(pg_url, FAST_LANE=False))
    assert isinstance(with_lane.wsgi_app, FastLane) and not isinstance(without.wsgi_app, FastLane)
    yield with_lane, without
    conftest._wipe(with_lane)


def test_the_lane_answers_and_stores_a_send_as_the_application_does(apps: tuple[Any, Any], auth: Any) -> None:
    with_lane, without = apps
    lane, plain = with_lane.test_client(), without.test_client()
    conversation = _conversation(plain, auth)
    url = f"/v1/conversations/{conversation}/messages"
    answers = [client.post(url, json={"message": f"same {n}"}, headers=auth("ana")) for n, client in
               enumerate((plain, lane, plain, lane))]
    for response in answers:
        assert response.status_code == 201
    shapes = {(r.status, r.content_type, tuple(sorted(k for k, _ in r.headers)), tuple(r.json)) for r in answers}
    assert len(shapes) == 1, shapes
    with with_lane.app_context():
        session = get_session()
        rows = session.execute(select(Message).where(Message.conversation_id == conversation)
                               .order_by(Message.created_at)).scalars().all()
        assert [m.message for m in rows] == ["same 0", "same 1", "same 2", "same 3"]
        assert session.get(ConversationStats, conversation).message_count == 4  # type: ignore[union-attr]
        cursor = session.get(ReadCursor, (conversation, "ana"))
        assert cursor is not None and cursor.last_read_message_id == rows[-1].id and cursor.read_count == 4
    # Input the lane does not take is answered by the application, identically for both.
    for body, headers, status in [
        ({"message": "   "}, {}, 422),
        ({"message": "x", "extra": 1}, {}, 422),
        ({"message": 5}, {}, 422),
        ([1, 2], {}, 422),
        ({"message": "hi"}, {"Authorization": "Bearer not-a-token"}, 401),
    ]:
        statuses = {c.post(url, json=body, headers={**auth("ana"), **headers}).status_code for c in (lane, plain)}
        assert statuses == {status}, (body, statuses)
    text = {c.post(url, data="hi", headers={**auth("ana"), "Content-Type": "text/plain"}).status_code
            for c in (lane, plain)}
    assert text == {415}
    with with_lane.app_context():
        count = get_session().execute(select(func.count()).select_from(Message)
                                      .where(Message.conversation_id == conversation)).scalar_one()
        assert count == 4


@pytest.fixture
def limited(pg_url: str, redis_prefix: str) -> Iterator[Any]:
    # Per hour: a sliding window weighs the last window's count down as a new one starts, so a budget per minute
    # could let a fourth request through when the minute turns during the test. The counters are this test's own
    # (its Redis key prefix).
    app = create_app(conftest.test_config(pg_url, REDIS_KEY_PREFIX=redis_prefix, RATE_LIMITS_ENABLED=True,
                                          RATE_LIMIT_MESSAGES="3/hour"))
    assert isinstance(app.wsgi_app, FastLane)
    yield app
    conftest._wipe(app)


def test_a_request_handed_over_counts_once_and_a_refusal_is_the_applications(limited: Any, auth: Any) -> None:
    client = limited.test_client()
    conversation = _conversation(client, auth)
    url = f"/v1/conversations/{conversation}/messages"
    # Carol is not a participant: the lane counts, the statement writes nothing, the application answers 404
    # without counting again — so three 404s fit a budget of three, and the fourth is refused.
    client.get("/v1/me", headers=auth("carol"))
    for _ in range(3):
        assert client.post(url, json={"message": "let me in"}, headers=auth("carol")).status_code == 404
    refused = client.post(url, json={"message": "let me in"}, headers=auth("carol"))
    assert refused.status_code == 429 and refused.content_type == "application/problem+json"
    assert 1 <= int(refused.headers["Retry-After"]) <= 3600 and refused.headers["X-Request-Id"]
    # A concierge conversation is posted the general way after the lane counted: once per message too.
    concierge = client.get("/v1/concierge", headers=auth("dan")).json["id"]
    curl = f"/v1/conversations/{concierge}/messages"
    for n in range(3):
        response = client.post(curl, json={"message": f"question {n}"}, headers=auth("dan"))
        assert response.status_code == 201, response.json
    assert client.post(curl, json={"message": "question 4"}, headers=auth("dan")).status_code == 429
    with limited.app_context():
        texts = get_session().execute(select(Message.message).where(Message.conversation_id == concierge,
                                                                    Message.user_id == "dan")).scalars().all()
    assert sorted(texts) == ["question 0", "question 1", "question 2"]


# --- platform events ------------------------------------------------------------------------------------------

EVENTS_RULE = "/v1/events"
HOST = {"id": "host-1", "name": "Helena", "role": "host"}
TRAVELER = {"id": "trav-1", "name": "Tomás", "role": "guest"}
PROPERTY = {"id": 7, "hostId": "host-1", "name": "Casa Azul", "city": "Lisbon", "address": "Rua das Flores 12",
            "timezone": "Europe/Lisbon", "checkInTime": "16:00", "checkOutTime": "11:00"}


def _event(event_id: str, trip_id: int = 72, **data: Any) -> dict[str, Any]:
    trip = {"id": trip_id, "propertyId": 7, "travelerId": "trav-1", "checkIn": "2026-12-20",
            "checkOut": "2026-12-23", "numGuests": 3, "status": "Booked"}
    return {"id": event_id, "type": "trip.booked", "occurredAt": "2026-12-01T09:30:00Z",
            "data": {"host": HOST, "traveler": TRAVELER, "property": PROPERTY, "trip": trip, **data}}


def _accepted_count() -> float:
    value = REGISTRY.get_sample_value(
        "http_requests_total", {"method": "POST", "endpoint": EVENTS_RULE, "status": "202"}
    )
    return value or 0.0


@pytest.fixture
def broker_app(pg_url: str, redis_prefix: str) -> Iterator[Any]:
    """The app with the lane and the run's Redis as its broker (under this test's key prefix, so the task it sends
    waits in a queue of its own, deleted afterwards), so that sending the task succeeds."""
    app = create_app(conftest.test_config(pg_url, REDIS_KEY_PREFIX=redis_prefix,
                                          CELERY=celery_settings(conftest.redis_url(), redis_prefix)))
    yield app
    conftest._wipe(app)


def test_a_new_event_is_accepted_by_the_lane_without_the_view(broker_app: Any, auth: Any) -> None:
    from concierge.models import PlatformEvent
    from messaging.models import OutboxEntry

    assert isinstance(broker_app.wsgi_app, FastLane)
    client = broker_app.test_client()
    before = _accepted_count()
    with _view_fails(broker_app, "events.post_event"):
        response = client.post(EVENTS_RULE, json=_event("ev-lane"),
                               headers={**auth("platform", "service"), "X-Request-Id": "trace-ev"})
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/json" and response.headers["X-Request-Id"] == "trace-ev"
    body = response.json
    assert body == {"id": "ev-lane", "type": "trip.booked", "status": "pending", "attempts": 0, "lastError": None,
                    "occurredAt": "2026-12-01T09:30:00Z", "receivedAt": body["receivedAt"], "processedAt": None,
                    "messages": []}
    assert _accepted_count() == before + 1
    with broker_app.app_context():
        session = get_session()
        stored = session.get(PlatformEvent, "ev-lane")
        assert stored is not None and stored.status == "pending" and stored.payload == _event("ev-lane")
        entries = session.execute(select(OutboxEntry)).scalars().all()
        # sent to the broker and marked so: the sweeper will not send it again
        assert [(e.task_name, e.args, e.dispatched_at is not None) for e in entries] == [
            ("concierge.process_event", ["ev-lane"], True)]
    # The view answers the same event again: the stored one, 200.
    again = client.post(EVENTS_RULE, json=_event("ev-lane"), headers=auth("platform", "service"))
    assert again.status_code == 200 and again.json["id"] == "ev-lane"


def test_the_lane_answers_and_stores_events_as_the_application_does(apps: tuple[Any, Any], auth: Any) -> None:
    from concierge.models import PlatformEvent
    from messaging.models import OutboxEntry, User

    with_lane, without = apps
    lane, plain = with_lane.test_client(), without.test_client()
    service = auth("platform", "service")
    answers = [c.post(EVENTS_RULE, json=_event(f"ev-{n}", 72 + n), headers=service)
               for n, c in enumerate((plain, lane, plain, lane))]
    assert [r.status_code for r in answers] == [202] * 4
    shapes = {(r.status, r.content_type, tuple(sorted(k for k, _ in r.headers)), tuple(r.json)) for r in answers}
    assert len(shapes) == 1, shapes
    conflicting = _event("ev-1", 90)
    missing_property = _event("ev-orphan", 91)
    del missing_property["data"]["property"], missing_property["data"]["host"]
    missing_property["data"]["trip"]["propertyId"] = 999
    for body, headers, status in [
        (_event("ev-1", 73), service, 200),  # the same event again (the lane's own, then the view's)
        (_event("ev-0", 72), service, 200),
        (conflicting, service, 409),
        (missing_property, service, 422),
        ({**_event("ev-x"), "type": "trip.unknown"}, service, 422),
        ({**_event("ev-x"), "data": {"property": PROPERTY}}, service, 422),
        ([1, 2], service, 422),
        (_event("ev-x"), auth("trav-1", "guest"), 403),
        (_event("ev-x"), {"Authorization": "Bearer not-a-token"}, 401),
    ]:
        replies = [c.post(EVENTS_RULE, json=body, headers=headers) for c in (lane, plain)]
        assert {r.status_code for r in replies} == {status}, (body, [r.json for r in replies])
        if status != 200:  # the same problem, but for its request id
            assert [{**r.json, "requestId": None} for r in replies] == [{**replies[1].json, "requestId": None}] * 2
    with with_lane.app_context():
        session = get_session()
        stored = session.execute(select(PlatformEvent.id).order_by(PlatformEvent.id)).scalars().all()
        assert stored == ["ev-0", "ev-1", "ev-2", "ev-3"]
        assert session.execute(select(func.count()).select_from(OutboxEntry)).scalar_one() == 4
        assert session.get(User, "trav-1") is not None


@pytest.fixture
def limited_events(pg_url: str, redis_prefix: str) -> Iterator[Any]:
    app = create_app(conftest.test_config(pg_url, REDIS_KEY_PREFIX=redis_prefix, RATE_LIMITS_ENABLED=True,
                                          RATE_LIMIT_EVENTS="3/hour"))  # see above
    yield app
    conftest._wipe(app)


def test_an_event_handed_over_counts_once_and_a_refusal_is_the_applications(limited_events: Any, auth: Any) -> None:
    client = limited_events.test_client()
    service = auth("platform", "service")
    assert client.post(EVENTS_RULE, json=_event("ev-a"), headers=service).status_code == 202  # the lane's
    assert client.post(EVENTS_RULE, json=_event("ev-a"), headers=service).status_code == 200  # handed over
    assert client.post(EVENTS_RULE, json=_event("ev-a", 99), headers=service).status_code == 409  # handed over
    refused = client.post(EVENTS_RULE, json=_event("ev-b", 80), headers=service)
    assert refused.status_code == 429 and refused.content_type == "application/problem+json"
    assert 1 <= int(refused.headers["Retry-After"]) <= 3600 and refused.headers["X-Request-Id"]
    with limited_events.app_context():
        from concierge.models import PlatformEvent

        assert get_session().get(PlatformEvent, "ev-b") is None


# --- reads: history and inbox ----------------------------------------------------------------------------------

HISTORY_RULE = "/v1/conversations/<id>/messages"
INBOX_RULE = "/v1/conversations"
STALE_CURSOR = "WyIyMDAwLTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwienp6Il0"  # a well-formed cursor long before any message


def _served_count(rule: str) -> float:
    value = REGISTRY.get_sample_value("http_requests_total", {"method": "GET", "endpoint": rule, "status": "200"})
    return value or 0.0


def test_history_and_inbox_pages_are_served_by_the_lane_without_the_views(pg_app: Any, auth: Any) -> None:
    client = pg_app.test_client()
    conversation = _conversation(client, auth)
    url = f"/v1/conversations/{conversation}/messages"
    sent = [client.post(url, json={"message": f"m{n}"}, headers=auth("ana")).json["id"] for n in range(5)]
    history_before, inbox_before = _served_count(HISTORY_RULE), _served_count(INBOX_RULE)
    with _view_fails(pg_app, "conversations.list_messages"), _view_fails(pg_app, "conversations.list_conversations"):
        newest = client.get(f"{url}?limit=2", headers={**auth("bob"), "X-Request-Id": "trace-h"})
        assert newest.status_code == 200, newest.get_data(as_text=True)
        assert newest.headers["Content-Type"] == "application/json" and newest.headers["X-Request-Id"] == "trace-h"
        assert [m["id"] for m in newest.json["items"]] == sent[3:]
        older = client.get(f"{url}?before={newest.json['nextCursor']}&limit=2", headers=auth("bob")).json
        oldest = client.get(f"{url}?limit=2&before={older['nextCursor']}", headers=auth("bob")).json
        assert [m["id"] for m in older["items"]] == sent[1:3]
        assert [m["id"] for m in oldest["items"]] == sent[:1] and oldest["nextCursor"] is None
        forward = client.get(f"{url}?after={older['nextCursor']}&limit=2", headers=auth("bob")).json
        assert [m["id"] for m in forward["items"]] == sent[2:4] and forward["nextCursor"] is not None
        # Nothing before the oldest: an empty page, still the caller's.
        assert client.get(f"{url}?before={STALE_CURSOR}", headers=auth("ana")).json == {"items": [], "nextCursor": None}
        inbox = client.get("/v1/conversations?limit=1", headers={**auth("ana"), "X-Request-Id": "trace-i"})
        assert inbox.status_code == 200 and inbox.headers["X-Request-Id"] == "trace-i"
        assert [c["id"] for c in inbox.json["items"]] == [conversation] and inbox.json["nextCursor"] is None
        assert inbox.json["items"][0]["lastMessage"]["id"] == sent[-1]
        assert client.get("/v1/conversations", headers=auth("bob")).json["items"][0]["unreadCount"] == 5
    assert _served_count(HISTORY_RULE) == history_before + 5
    assert _served_count(INBOX_RULE) == inbox_before + 2
    # Someone this process has not seen is the application's: the user is created, then their inbox is the lane's.
    assert client.get("/v1/conversations", headers=auth("newbie")).json == {"items": [], "nextCursor": None}
    with pg_app.app_context():
        assert get_session().get(User, "newbie") is not None
    with _view_fails(pg_app, "conversations.list_conversations"):
        assert client.get("/v1/conversations", headers=auth("newbie")).status_code == 200


def test_the_lane_answers_reads_as_the_application_does(apps: tuple[Any, Any], auth: Any) -> None:
    with_lane, without = apps
    lane, plain = with_lane.test_client(), without.test_client()
    conversation = _conversation(plain, auth)
    url = f"/v1/conversations/{conversation}/messages"
    for n in range(3):
        assert plain.post(url, json={"message": f"m{n}"}, headers=auth("ana")).status_code == 201
    for client in (lane, plain):  # each process has seen ana and bob: the lane serves their inboxes
        client.get("/v1/me", headers=auth("ana")), client.get("/v1/me", headers=auth("bob"))
    cursor = plain.get(f"{url}?limit=1", headers=auth("ana")).json["nextCursor"]
    service = auth("platform", "service")
    cases: list[tuple[str, dict[str, str], int]] = [
        (url, auth("ana"), 200),
        (f"{url}?limit=1", auth("bob"), 200),
        (f"{url}?limit=100&before={cursor}", auth("ana"), 200),
        (f"{url}?after={cursor}", auth("ana"), 200),
        (f"{url}?after={cursor}&limit=1", auth("ana"), 200),
        (f"{url}?before={STALE_CURSOR}", auth("ana"), 200),  # an empty page of a participant
        ("/v1/conversations", auth("ana"), 200),
        ("/v1/conversations?limit=1", auth("bob"), 200),
        (f"/v1/conversations?before={cursor}", auth("ana"), 200),
        ("/v1/conversations", auth("newcomer"), 200),  # a new user: created on the way
        # Handed over: the application's answer, whatever the lane would have made of it.
        (f"{url}?before={cursor}&after={cursor}", auth("ana"), 200),
        (f"{url}?limit=%31", auth("ana"), 200),
        (f"{url}?limit=0", auth("ana"), 422),
        (f"{url}?limit=101", auth("ana"), 422),
        (f"{url}?limit=ten", auth("ana"), 422),
        (f"{url}?limit=-1", auth("ana"), 422),
        (f"{url}?before=not-a-cursor", auth("ana"), 422),
        (f"{url}?after=" + "A" * 129, auth("ana"), 422),
        (f"{url}?before=", auth("ana"), 200),
        (f"{url}?limit=1&limit=2", auth("ana"), 200),
        (f"{url}?colour=blue", auth("ana"), 422),
        (f"{url}?before=%00", auth("ana"), 422),
        (url, auth("carol"), 404),  # not a participant (and now a user)
        ("/v1/conversations/nosuchthing/messages", auth("ana"), 404),
        (f"/v1/conversations/{'x' * 30}/messages", auth("ana"), 404),
        (url, service, 403),
        (url, {"Authorization": "Bearer not-a-token"}, 401),
        (url, {}, 401),
        ("/v1/conversations?limit=0", auth("ana"), 422),
        ("/v1/conversations?after=x", auth("ana"), 422),
        ("/v1/conversations", service, 403),
        ("/v1/conversations", {}, 401),
    ]
    for path, headers, status in cases:
        replies = [c.get(path, headers=headers) for c in (lane, plain)]
        assert [r.status_code for r in replies] == [status, status], (path, [r.json for r in replies])
        assert replies[0].content_type == replies[1].content_type, path
        if status == 200:
            assert replies[0].json == replies[1].json, path
            assert sorted(k for k, _ in replies[0].headers) == sorted(k for k, _ in replies[1].headers), path
        else:  # the same problem, but for its request id
            assert [{**r.json, "requestId": None} for r in replies] == [{**replies[1].json, "requestId": None}] * 2


READ_RULE = "/v1/conversations/<id>/read"


def _read_count() -> float:
    value = REGISTRY.get_sample_value("http_requests_total", {"method": "POST", "endpoint": READ_RULE, "status": "200"})
    return value or 0.0


def test_a_mark_read_is_served_by_the_lane_without_the_view(pg_app: Any, auth: Any) -> None:
    import json

    client = pg_app.test_client()
    conversation = _conversation(client, auth)
    sent = [client.post(f"/v1/conversations/{conversation}/messages", json={"message": f"m{n}"},
                        headers=auth("ana")).json["id"] for n in range(5)]
    bus = pg_app.extensions["live"]
    cursors = {user: bus.start(user, None).cursor for user in ("ana", "bob")}
    before = _read_count()
    url = f"/v1/conversations/{conversation}/read"
    with _view_fails(pg_app, "conversations.mark_read"):
        partway = client.post(url, json={"upTo": sent[1]}, headers={**auth("bob"), "X-Request-Id": "trace-r"})
        assert partway.status_code == 200, partway.get_data(as_text=True)
        assert partway.json == {"unreadCount": 3} and partway.headers["X-Request-Id"] == "trace-r"
        assert client.post(url, json={"upTo": sent[0]}, headers=auth("bob")).json == {"unreadCount": 3}  # not back
        assert client.post(url, json={}, headers=auth("bob")).json == {"unreadCount": 0}
    assert _read_count() == before + 3
    # Told to both participants, once per move; the flags and the cursor are the statement's.
    for user in ("ana", "bob"):
        told = [json.loads(e.data) for e in bus.read(user, cursors[user], 500) if e.type == "conversation.read"]
        assert [(t["userId"], t["conversationId"]) for t in told] == [("bob", conversation)] * 2, user
    history = client.get(f"/v1/conversations/{conversation}/messages", headers=auth("ana")).json["items"]
    assert [m["read"] for m in history] == [True] * 5
    with pg_app.app_context():
        cursor = get_session().get(ReadCursor, (conversation, "bob"))
        assert cursor is not None and (cursor.last_read_message_id, cursor.read_count) == (sent[-1], 5)


def test_the_lane_answers_mark_reads_as_the_application_does(apps: tuple[Any, Any], auth: Any) -> None:
    with_lane, without = apps
    lane, plain = with_lane.test_client(), without.test_client()
    conversation, elsewhere = _conversation(plain, auth), _conversation(plain, auth, "ana", "dee")
    sent = [plain.post(f"/v1/conversations/{conversation}/messages", json={"message": f"m{n}"},
                       headers=auth("ana")).json["id"] for n in range(4)]
    foreign = plain.post(f"/v1/conversations/{elsewhere}/messages", json={"message": "x"}, headers=auth("dee")).json
    url = f"/v1/conversations/{conversation}/read"
    service = auth("platform", "service")
    # Each request goes to the lane, then the same to the application: a read that moved the cursor once leaves
    # the second with nothing to move, and the same unread count.
    cases: list[tuple[str, Any, dict[str, str], int]] = [
        (url, {"upTo": sent[1]}, auth("bob"), 200),
        (url, {"upTo": sent[0]}, auth("bob"), 200),  # behind the cursor: it stays
        (url, {}, auth("bob"), 200),
        (url, {}, auth("ana"), 200),
        (url, {"upTo": "no-such-message"}, auth("bob"), 422),
        (url, {"upTo": foreign["id"]}, auth("bob"), 422),
        (url, {"upTo": 5}, auth("bob"), 422),
        (url, {"upTo": ""}, auth("bob"), 422),
        (url, {"upTo": "a\x00b"}, auth("bob"), 422),
        (url, {"extra": 1}, auth("bob"), 422),
        (url, [], auth("bob"), 422),
        (url, {}, auth("carol"), 404),  # not a participant (and now a user)
        (url, {}, auth("newcomer"), 404),
        ("/v1/conversations/nosuchthing/read", {}, auth("ana"), 404),
        (f"/v1/conversations/{'x' * 30}/read", {}, auth("ana"), 404),
        (url, {}, service, 403),
        (url, {}, {"Authorization": "Bearer not-a-token"}, 401),
        (url, {}, {}, 401),
    ]
    for path, body, headers, status in cases:
        replies = [c.post(path, json=body, headers=headers) for c in (lane, plain)]
        assert [r.status_code for r in replies] == [status, status], (path, body, [r.json for r in replies])
        assert replies[0].content_type == replies[1].content_type, (path, body)
        if status == 200:
            assert replies[0].json == replies[1].json, (path, body)
            assert sorted(k for k, _ in replies[0].headers) == sorted(k for k, _ in replies[1].headers), path
        else:  # the same problem, but for its request id
            assert [{**r.json, "requestId": None} for r in replies] == [{**replies[1].json, "requestId": None}] * 2
    text = {c.post(url, data="{}", headers={**auth("bob"), "Content-Type": "text/plain"}).status_code
            for c in (lane, plain)}
    assert len(text) == 1 and text <= {415, 422}
    with with_lane.app_context():
        assert get_session().get(User, "newcomer") is not None
        cursor = get_session().get(ReadCursor, (conversation, "bob"))
        assert cursor is not None and (cursor.last_read_message_id, cursor.read_count) == (sent[-1], 4)


# --- property-thread replies ----------------------------------------------------------------------------------

REPLY_RULE = "/v1/property-conversations/<id>/messages"


def _replied_count() -> float:
    value = REGISTRY.get_sample_value(
        "http_requests_total", {"method": "POST", "endpoint": REPLY_RULE, "status": "201"}
    )
    return value or 0.0


def _property_thread(app: Any, client: Any, auth: Any) -> str:
    from tests.api.test_property_threads import open_thread, seed

    seed(app)
    response = open_thread(client, auth)
    assert response.status_code == 201, response.json
    return str(response.json["id"])


def test_a_property_thread_reply_is_served_by_the_lane_without_the_view(pg_app: Any, auth: Any) -> None:
    import json

    client = pg_app.test_client()
    thread = _property_thread(pg_app, client, auth)
    url = f"/v1/property-conversations/{thread}/messages"
    bus = pg_app.extensions["live"]
    cursors = {user: bus.start(user, None).cursor for user in ("t1", "h1", "t2")}
    before = _replied_count()
    with _view_fails(pg_app, "property_threads.reply_in_property_thread"):
        reply = client.post(url, json={"message": "  Yes, very quiet.  "},
                            headers={**auth("h1", "host"), "X-Request-Id": "trace-p"})
    assert reply.status_code == 201, reply.get_data(as_text=True)
    assert reply.headers["Content-Type"] == "application/json" and reply.headers["X-Request-Id"] == "trace-p"
    assert reply.json["message"] == "Yes, very quiet." and reply.json["authorId"] == "h1"
    assert _replied_count() == before + 1
    for user in ("t1", "h1"):
        told = [(e.type, json.loads(e.data)) for e in bus.read(user, cursors[user], 500)]
        assert told == [("property_message.created", reply.json)], user
    assert bus.read("t2", cursors["t2"], 1) == []
    history = client.get(url, headers=auth("t1")).json["items"]
    assert history[-1] == reply.json and len(history) == 2


def test_the_lane_answers_property_thread_replies_as_the_application_does(apps: tuple[Any, Any], auth: Any) -> None:
    with_lane, without = apps
    lane, plain = with_lane.test_client(), without.test_client()
    thread = _property_thread(without, plain, auth)
    url = f"/v1/property-conversations/{thread}/messages"
    cases: list[tuple[str, Any, dict[str, str], int]] = [
        (url, {"message": "Yes."}, auth("h1", "host"), 201),
        (url, {"message": " Thanks! "}, auth("t1"), 201),
        # Handed over: the application's answer, whatever the lane would have made of it.
        (url, {"message": "   "}, auth("t1"), 422),
        (url, {"message": "x" * 5001}, auth("t1"), 422),
        (url, {"message": 5}, auth("t1"), 422),
        (url, {"message": "hi", "extra": 1}, auth("t1"), 422),
        (url, [], auth("t1"), 422),
        (url, {"message": "me too"}, auth("t2"), 404),  # another traveler
        (url, {"message": "me too"}, auth("h2", "host"), 404),  # another host
        (url, {"message": "me too"}, auth("newcomer"), 404),  # a new user, created on the way
        ("/v1/property-conversations/nosuchthing/messages", {"message": "hi"}, auth("t1"), 404),
        (f"/v1/property-conversations/{'x' * 30}/messages", {"message": "hi"}, auth("t1"), 404),
        (url, {"message": "hi"}, auth("boss", "admin"), 403),
        (url, {"message": "hi"}, auth("platform", "service"), 403),
        (url, {"message": "hi"}, {"Authorization": "Bearer not-a-token"}, 401),
        (url, {"message": "hi"}, {}, 401),
    ]
    for path, body, headers, status in cases:
        replies = [c.post(path, json=body, headers=headers) for c in (lane, plain)]
        assert [r.status_code for r in replies] == [status, status], (path, body, [r.json for r in replies])
        assert replies[0].content_type == replies[1].content_type, (path, body)
        if status == 201:
            assert [(r.json["message"], r.json["authorId"]) for r in replies] == [(replies[1].json["message"],
                                                                                  replies[1].json["authorId"])] * 2
            assert list(replies[0].json) == list(replies[1].json), path
            assert sorted(k for k, _ in replies[0].headers) == sorted(k for k, _ in replies[1].headers), path
        else:  # the same problem, but for its request id
            assert [{**r.json, "requestId": None} for r in replies] == [{**replies[1].json, "requestId": None}] * 2
    history = plain.get(url, headers=auth("t1")).json["items"]
    assert [m["message"] for m in history][1:] == ["Yes.", "Yes.", "Thanks!", "Thanks!"]
    with with_lane.app_context():
        assert get_session().get(User, "newcomer") is not None


def test_a_reply_handed_over_counts_once(limited: Any, auth: Any) -> None:
    """An outsider's reply: the lane counts it, the statement writes nothing, the application answers 404 without
    counting again — three fit a budget of three, the fourth is refused; the senders' budget is shared."""
    client = limited.test_client()
    thread = _property_thread(limited, client, auth)
    url = f"/v1/property-conversations/{thread}/messages"
    for _ in range(3):
        assert client.post(url, json={"message": "let me in"}, headers=auth("t2")).status_code == 404
    refused = client.post(url, json={"message": "let me in"}, headers=auth("t2"))
    assert refused.status_code == 429 and refused.content_type == "application/problem+json"
    for n in range(3):
        assert client.post(url, json={"message": f"reply {n}"}, headers=auth("h1", "host")).status_code == 201
    assert client.post(url, json={"message": "reply 4"}, headers=auth("h1", "host")).status_code == 429
    history = client.get(url, headers=auth("t1")).json["items"]
    assert [m["message"] for m in history][1:] == ["reply 0", "reply 1", "reply 2"]


@pytest.fixture
def small_pool(pg_url: str) -> Iterator[Any]:
    """The app with DB_POOL_SIZE 2 (the lane's pool: four) and a short wait for a connection."""
    app = create_app(conftest.test_config(pg_url, DB_POOL_SIZE=2, DB_POOL_TIMEOUT=0.3))
    yield app
    conftest._wipe(app)
    for engine in ("engine", "autocommit_engine"):
        app.extensions["db"][engine].dispose()


def test_the_lanes_pool_keeps_its_connections_under_a_burst(small_pool: Any) -> None:
    """Three bursts of twelve statements at once on the lane's pool (twice DB_POOL_SIZE = 2): every statement runs
    on one of the same four PostgreSQL backends. (A pool that opened overflow connections and closed them as they
    came back started backends by the burst, each planning the hot statements afresh.)"""
    from concurrent.futures import ThreadPoolExecutor

    from messaging.db import autocommit_cursor

    def backend() -> int:
        with autocommit_cursor(small_pool.extensions["db"]) as cursor:
            return int(cursor.execute("SELECT pg_backend_pid() FROM pg_sleep(0.05)").fetchone()[0])

    with ThreadPoolExecutor(12) as pool:
        backends = [pid for _ in range(3) for pid in pool.map(lambda _: backend(), range(12))]
    assert len(backends) == 36 and len(set(backends)) <= 4, backends


def test_a_request_that_finds_no_connection_free_is_503(small_pool: Any, auth: Any) -> None:
    """Every connection of the lane's pool held elsewhere: a history page waits DB_POOL_TIMEOUT for one, then is
    answered 503 problem details with Retry-After, by the application; once one is free, the page is served."""
    from messaging.db import autocommit_cursor

    client = small_pool.test_client()
    conversation = _conversation(client, auth)
    url = f"/v1/conversations/{conversation}/messages"
    state = small_pool.extensions["db"]
    with autocommit_cursor(state), autocommit_cursor(state), autocommit_cursor(state), autocommit_cursor(state):
        busy = client.get(url, headers=auth("ana"))
    assert busy.status_code == 503 and busy.content_type == "application/problem+json", busy.get_data(as_text=True)
    assert busy.headers["Retry-After"] == "1" and busy.json["title"] == "Service unavailable"
    assert client.get(url, headers=auth("ana")).status_code == 200


def _fails_after(real: Any) -> Any:
    """``real``, whose write commits, followed by the error of a connection lost before the answer came back."""
    from sqlalchemy.exc import OperationalError

    def statement(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise OperationalError("the statement", {}, ConnectionError("server closed the connection unexpectedly"))

    return statement


def test_a_write_whose_answer_is_lost_is_503_and_never_run_again(pg_app: Any, auth: Any, monkeypatch: Any) -> None:
    """A send or a property-thread reply whose statement committed but whose connection failed before the answer:
    the application answers 503 (the client may retry; an Idempotency-Key makes that safe), and neither the lane
    nor the application's view runs the write a second time — one message each, not two."""
    from messaging import fast_lane, property_threads

    client = pg_app.test_client()
    conversation = _conversation(client, auth)
    thread = _property_thread(pg_app, client, auth)
    monkeypatch.setattr(fast_lane, "run_send_statement", _fails_after(fast_lane.run_send_statement))
    monkeypatch.setattr(property_threads, "run_reply_statement", _fails_after(property_threads.run_reply_statement))
    sent = client.post(f"/v1/conversations/{conversation}/messages", json={"message": "once"}, headers=auth("ana"))
    replied = client.post(f"/v1/property-conversations/{thread}/messages", json={"message": "once"},
                          headers=auth("h1", "host"))
    for response in (sent, replied):
        assert response.status_code == 503 and response.content_type == "application/problem+json", response.json
        assert response.headers["Retry-After"] == "1"
    monkeypatch.undo()
    history = client.get(f"/v1/conversations/{conversation}/messages", headers=auth("bob")).json["items"]
    assert [m["message"] for m in history] == ["once"]
    thread_history = client.get(f"/v1/property-conversations/{thread}/messages", headers=auth("t1")).json["items"]
    assert [m["message"] for m in thread_history][1:] == ["once"]
