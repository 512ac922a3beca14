"""Abuse limits (issue: reliability and security): per-user budgets for posting and for opening threads, a
per-token budget for event intake, kept in Redis so two processes share them; 429 problem details with
Retry-After, and a refused request writes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from sqlalchemy import func, select

from app import create_app
from messaging.db import get_session
from messaging.models import Conversation, Message
from tests import conftest
from tests.test_event_notifications import TRIP, event

LIMITS = {"RATE_LIMITS_ENABLED": True, "RATE_LIMIT_MESSAGES": "3/minute", "RATE_LIMIT_THREADS": "2/minute",
          "RATE_LIMIT_EVENTS": "2/minute"}


@pytest.fixture
def limited(database_url: str) -> Iterator[Any]:
    """The app with small limits, counting in memory (one process)."""
    app = create_app(conftest.test_config(database_url, **LIMITS))
    yield app
    conftest._wipe(app)


@pytest.fixture
def shared_redis() -> Iterator[str]:
    url = conftest.redis_url()
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


def _count(app: Any, model: Any) -> int:
    with app.app_context():
        return int(get_session().execute(select(func.count()).select_from(model)).scalar_one())


def _assert_limited(response: Any) -> None:
    assert response.status_code == 429, response.json
    assert response.content_type == "application/problem+json"
    assert response.json["status"] == 429 and response.json["title"]
    assert 1 <= int(response.headers["Retry-After"]) <= 60


def test_posting_is_limited_per_user_and_a_refused_post_writes_nothing(limited: Any, auth: Any) -> None:
    client = limited.test_client()
    ana, bob = auth("ana", "guest"), auth("bob", "guest")
    client.get("/v1/me", headers=bob)
    conversation = client.post("/v1/conversations", json={"participantIds": ["bob"]}, headers=ana).json["id"]
    url = f"/v1/conversations/{conversation}/messages"
    for n in range(3):
        assert client.post(url, json={"message": f"hi {n}"}, headers=ana).status_code == 201
    before = _count(limited, Message)
    refused = client.post(url, json={"message": "one too many"}, headers=ana)
    _assert_limited(refused)
    assert _count(limited, Message) == before
    # Another user has their own budget; an anonymous caller is refused before any budget is touched.
    assert client.post(url, json={"message": "hello"}, headers=bob).status_code == 201
    assert client.post(url, json={"message": "hello"}).status_code == 401
    # Reading is not limited.
    assert client.get(url, headers=ana).status_code == 200


def test_opening_threads_is_limited_per_user(limited: Any, auth: Any) -> None:
    client = limited.test_client()
    ana = auth("ana", "guest")
    for other in ("u1", "u2", "u3"):
        client.get("/v1/me", headers=auth(other, "guest"))
    created = [client.post("/v1/conversations", json={"participantIds": [o]}, headers=ana) for o in ("u1", "u2")]
    assert [r.status_code for r in created] == [201, 201]
    conversations = _count(limited, Conversation)
    _assert_limited(client.post("/v1/conversations", json={"participantIds": ["u3"]}, headers=ana))
    assert _count(limited, Conversation) == conversations
    assert client.post("/v1/conversations", json={"participantIds": ["u3"]},
                       headers=auth("u1", "guest")).status_code == 201


def test_event_intake_is_limited_per_token(limited: Any, token: Any) -> None:
    client = limited.test_client()
    first = {"Authorization": f"Bearer {token('platform', 'service')}"}
    second = {"Authorization": f"Bearer {token('platform', 'service', ttl=7200)}"}  # another token
    for n in range(2):
        assert client.post("/v1/events", json=event("trip.booked", "trip", TRIP, f"ev-{n}"),
                           headers=first).status_code == 202
    _assert_limited(client.post("/v1/events", json=event("trip.booked", "trip", TRIP, "ev-2"), headers=first))
    assert client.get("/v1/events/ev-2", headers=second).status_code == 404  # the refused event was not stored
    assert client.post("/v1/events", json=event("trip.booked", "trip", TRIP, "ev-2"),
                       headers=second).status_code == 202


def test_limits_hold_across_processes_through_redis(pg_url: str, shared_redis: str, auth: Any) -> None:
    """Two application instances (as two gunicorn workers would be) share one budget in Redis."""
    config = conftest.test_config(pg_url, REDIS_URL=shared_redis, **LIMITS)
    one, two = create_app(config), create_app(dict(config))
    try:
        c1, c2 = one.test_client(), two.test_client()
        ana, bob = auth("ana", "guest"), auth("bob", "guest")
        c1.get("/v1/me", headers=bob)
        conversation = c1.post("/v1/conversations", json={"participantIds": ["bob"]}, headers=ana).json["id"]
        url = f"/v1/conversations/{conversation}/messages"
        statuses = [(c1 if n % 2 else c2).post(url, json={"message": f"m{n}"}, headers=ana).status_code
                    for n in range(4)]
        assert statuses == [201, 201, 201, 429]
        _assert_limited(c1.post(url, json={"message": "again"}, headers=ana))
        keys = redis.Redis.from_url(shared_redis).keys("*concierge-limits*")
        assert keys, "the counters live in Redis"
    finally:
        conftest._wipe(one)


def test_redis_unreachable_degrades_to_per_process_limits(pg_url: str, auth: Any) -> None:
    """With the limit store down, requests are neither refused nor failed: each process counts alone."""
    config = conftest.test_config(pg_url, REDIS_URL="redis://127.0.0.1:1/0", **LIMITS)
    app = create_app(config)
    try:
        client = app.test_client()
        ana, bob = auth("ana", "guest"), auth("bob", "guest")
        client.get("/v1/me", headers=bob)
        created = client.post("/v1/conversations", json={"participantIds": ["bob"]}, headers=ana)
        assert created.status_code == 201, created.json
        url = f"/v1/conversations/{created.json['id']}/messages"
        statuses = [client.post(url, json={"message": f"m{n}"}, headers=ana).status_code for n in range(4)]
        assert statuses == [201, 201, 201, 429]
    finally:
        conftest._wipe(app)
