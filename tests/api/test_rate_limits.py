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
from messaging.store.db import get_session
from messaging.store.models import Conversation, Message, PropertyConversation, PropertyMessage
from tests import conftest
from tests.api.test_admin_api import _booked
from tests.api.test_admin_pages import _csrf, _sign_in
from tests.api.test_event_notifications import TRIP, event
from tests.api.test_property_threads import OTHER_PROPERTY, PROPERTY, open_thread, seed
from tests.redis_prefix import own_prefix

LIMITS = {"RATE_LIMITS_ENABLED": True, "RATE_LIMIT_MESSAGES": "3/minute", "RATE_LIMIT_THREADS": "2/minute",
          "RATE_LIMIT_EVENTS": "2/minute"}


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own (``REDIS_KEY_PREFIX``), its keys deleted afterwards."""
    with own_prefix() as prefix:
        yield prefix


@pytest.fixture
def limited(database_url: str, redis_prefix: str) -> Iterator[Any]:
    """The app with small limits, counting in the run's Redis under this test's own prefix."""
    app = create_app(conftest.test_config(database_url, REDIS_KEY_PREFIX=redis_prefix, **LIMITS))
    yield app
    conftest._wipe(app)


@pytest.fixture
def few_messages(database_url: str, redis_prefix: str) -> Iterator[Any]:
    """The app with a budget of two messages and a roomy one for threads, counting as ``limited`` does."""
    app = create_app(conftest.test_config(database_url, REDIS_KEY_PREFIX=redis_prefix,
                                          **{**LIMITS, "RATE_LIMIT_MESSAGES": "2/minute",
                                             "RATE_LIMIT_THREADS": "20/minute"}))
    yield app
    conftest._wipe(app)


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


def _thread_rows(app: Any) -> tuple[int, int, int]:
    return _count(app, PropertyConversation), _count(app, PropertyMessage), _count(app, Message)


def test_opening_a_property_thread_spends_the_messages_budget_too(few_messages: Any, auth: Any) -> None:
    """Every call posts a first message, whether it creates the thread or reuses it: once the user's messages
    budget is spent (here by a thread, a conversation and a reply), neither writes anything."""
    app, client = few_messages, few_messages.test_client()
    seed(app)
    thread = open_thread(client, auth)
    assert thread.status_code == 201, thread.json
    dm = client.post("/v1/conversations", json={"participantIds": ["t2"]}, headers=auth("t1")).json["id"]
    sent = client.post(f"/v1/conversations/{dm}/messages", json={"message": "hi"}, headers=auth("t1"))
    assert sent.status_code == 201, sent.json
    before = _thread_rows(app)
    _assert_limited(client.post(f"/v1/property-conversations/{thread.json['id']}/messages", json={"message": "and"},
                                headers=auth("t1")))
    _assert_limited(open_thread(client, auth, prop=OTHER_PROPERTY))  # would create a thread
    _assert_limited(open_thread(client, auth, prop=PROPERTY, message="Me again"))  # would reuse it (200)
    assert _thread_rows(app) == before
    assert open_thread(client, auth, user="t2").status_code == 201  # another traveler's budget is their own


def test_admin_replies_from_the_api_and_the_pages_share_the_admins_messages_budget(
    few_messages: Any, auth: Any, token: Any
) -> None:
    app, api = few_messages, few_messages.test_client()
    _booked(app, api, auth)
    conversation = api.get("/v1/concierge", headers=auth("trav-1", "guest")).json["id"]
    api_url, page_url = f"/v1/admin/transcripts/{conversation}/messages", f"/admin/transcripts/{conversation}"
    admin_a, admin_b = app.test_client(), app.test_client()
    _sign_in(admin_a, token("root-a", "admin"))
    _sign_in(admin_b, token("root-b", "admin"))
    csrf_a = _csrf(admin_a.get(page_url).get_data(as_text=True))
    csrf_b = _csrf(admin_b.get(page_url).get_data(as_text=True))

    assert api.post(api_url, json={"message": "From the API"}, headers=auth("root-a", "admin")).status_code == 201
    assert admin_a.post(page_url + "/reply", data={"csrf_token": csrf_a, "message": "From the page"}).status_code == 303
    before = _count(app, Message)
    _assert_limited(api.post(api_url, json={"message": "API again"}, headers=auth("root-a", "admin")))
    refused = admin_a.post(page_url + "/reply", data={"csrf_token": csrf_a, "message": "Page again"})
    assert refused.status_code == 429 and refused.content_type.startswith("text/html")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60 and "Too many requests" in refused.get_data(as_text=True)
    assert _count(app, Message) == before
    # Admin B has a budget of their own.
    assert admin_b.post(page_url + "/reply", data={"csrf_token": csrf_b, "message": "Rita here"}).status_code == 303
    assert _count(app, Message) == before + 1


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


def test_limits_hold_across_processes_through_redis(pg_url: str, redis_prefix: str, auth: Any) -> None:
    """Two application instances (as two gunicorn workers would be) share one budget in Redis, under their
    deployment's key prefix."""
    shared_redis = conftest.redis_url()
    config = conftest.test_config(pg_url, REDIS_URL=shared_redis, REDIS_KEY_PREFIX=redis_prefix, **LIMITS)
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
        keys = list(redis.Redis.from_url(shared_redis).scan_iter(match=f"{redis_prefix}concierge-limits*"))
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
