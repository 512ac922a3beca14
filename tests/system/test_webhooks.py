"""Telling the platform (SPEC §5.4): a signed webhook per person with unread messages, at most one an
hour, retried with backoff under one delivery id — against a real HTTP receiver on loopback."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select, update

from concierge import webhooks
from concierge.models import WebhookDelivery
from messaging.store.db import get_session, session_scope
from messaging.store.models import ConversationStats
from tasks.scheduled_tasks import WEBHOOK_MAX_RETRIES, deliver_webhook

SECRET = "webhook-secret"


class Receiver:
    """The platform's endpoint: answers the planned statuses in turn, then 200; records what it got."""

    def __init__(self) -> None:
        self.plan: list[int] = []
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                timestamp = self.headers["X-Concierge-Timestamp"]
                expected = "sha256=" + hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body,
                                                hashlib.sha256).hexdigest()
                receiver.received.append({
                    "body": json.loads(body),
                    "delivery": self.headers["X-Concierge-Delivery"],
                    "signed": hmac.compare_digest(expected, self.headers["X-Concierge-Signature"]),
                })
                status = receiver.plan.pop(0) if receiver.plan else 200
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/unread"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def configured(app: Any, receiver: Receiver) -> Iterator[Any]:
    saved = {k: app.config.get(k) for k in ("PLATFORM_WEBHOOK_URL", "PLATFORM_WEBHOOK_SECRET")}
    app.config.update(PLATFORM_WEBHOOK_URL=receiver.url, PLATFORM_WEBHOOK_SECRET=SECRET)
    yield app
    app.config.update(saved)


def _unread_for_bob(app: Any, client: Any, auth: Any, minutes_ago: int = 5) -> None:
    alice, bob = auth("alice", "guest"), auth("bob", "guest")
    client.get("/v1/me", headers=bob)
    conversation = client.post("/v1/conversations", json={"participantIds": ["bob"]}, headers=alice).json["id"]
    client.post(f"/v1/conversations/{conversation}/messages", json={"message": "ping"}, headers=alice)
    with app.app_context(), session_scope() as s:
        s.execute(update(ConversationStats).values(
            last_activity_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes_ago)))


def _schedule(app: Any) -> int:
    with app.app_context(), session_scope() as s:
        return webhooks.schedule_unread_webhooks(s, dt.datetime.now(dt.UTC), app.config["PLATFORM_WEBHOOK_URL"])


def _deliveries(app: Any) -> list[WebhookDelivery]:
    with app.app_context():
        return list(get_session().scalars(select(WebhookDelivery)))


def test_one_signed_delivery_per_person_per_hour(configured: Any, client: Any, auth: Any, receiver: Receiver) -> None:
    app = configured
    _unread_for_bob(app, client, auth)
    assert _schedule(app) == 1
    assert _schedule(app) == 0  # again within the hour: nothing more
    [delivery] = _deliveries(app)
    assert delivery.user_id == "bob" and delivery.unread_count == 1  # alice wrote it: she has read it
    with app.app_context():
        assert deliver_webhook.apply(args=[delivery.id]).get() == "delivered"
        assert deliver_webhook.apply(args=[delivery.id]).get() == "delivered"  # redelivered task: no second call
    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert got["signed"] and got["delivery"] == delivery.id
    assert got["body"]["userId"] == "bob" and got["body"]["unreadCount"] == 1
    assert got["body"]["type"] == "user.unread_messages" and got["body"]["id"] == delivery.id


def test_someone_reading_now_is_not_disturbed(configured: Any, client: Any, auth: Any) -> None:
    _unread_for_bob(configured, client, auth, minutes_ago=0)
    assert _schedule(configured) == 0  # within the grace period


def test_failures_are_retried_under_the_same_delivery_id(
    configured: Any, client: Any, auth: Any, receiver: Receiver
) -> None:
    app = configured
    _unread_for_bob(app, client, auth)
    _schedule(app)
    [delivery] = _deliveries(app)
    receiver.plan = [500, 503]
    with app.app_context():
        # Eager: each retry runs at once instead of after its backoff.
        assert deliver_webhook.apply(args=[delivery.id]).get() == "delivered"
    assert [r["delivery"] for r in receiver.received] == [delivery.id] * 3
    [delivered] = _deliveries(app)
    assert delivered.status == "delivered" and delivered.attempts == 3


def test_an_endpoint_down_for_an_hour_of_retries_gets_one_delivery_when_back(
    configured: Any, client: Any, auth: Any, receiver: Receiver
) -> None:
    app = configured
    _unread_for_bob(app, client, auth)
    _schedule(app)
    [delivery] = _deliveries(app)
    # Down for all but the last try (the backoff of the tries before it adds up to about an hour).
    receiver.plan = [503] * WEBHOOK_MAX_RETRIES
    with app.app_context():
        assert deliver_webhook.apply(args=[delivery.id]).get() == "delivered"
    successes = receiver.received[WEBHOOK_MAX_RETRIES:]
    assert len(successes) == 1 and successes[0]["delivery"] == delivery.id


def test_an_endpoint_that_never_answers_ends_failed(
    configured: Any, client: Any, auth: Any, receiver: Receiver
) -> None:
    app = configured
    _unread_for_bob(app, client, auth)
    _schedule(app)
    [delivery] = _deliveries(app)
    receiver.plan = [500] * (WEBHOOK_MAX_RETRIES + 1)
    with app.app_context():
        assert deliver_webhook.apply(args=[delivery.id]).get() == "failed"
    [failed] = _deliveries(app)
    assert failed.status == "failed" and "HTTP 500" in (failed.last_error or "")


def test_no_url_no_webhooks(app: Any, client: Any, auth: Any) -> None:
    _unread_for_bob(app, client, auth)
    with app.app_context(), session_scope() as s:
        assert webhooks.schedule_unread_webhooks(s, dt.datetime.now(dt.UTC), None) == 0
    assert _deliveries(app) == []


# --- through a real Celery worker and Redis ----------------------------------------------------------------


@pytest.mark.slow
def test_a_receiver_failing_twice_gets_exactly_one_delivery_through_the_worker(
    receiver: Receiver, tmp_path: Any
) -> None:
    from app import create_app
    from tests.conftest import test_config as make_config
    from tests.helpers_processes import Processes, private_pg_database, send_task, service_env, wait_until

    started = Processes(tmp_path)
    try:
        with private_pg_database("concierge_webhook_worker") as database_url:
            redis = started.redis()
            env = service_env(database_url, redis.url(), PLATFORM_WEBHOOK_URL=receiver.url,
                              PLATFORM_WEBHOOK_SECRET=SECRET)
            started.worker(env, pool="threads")
            app = create_app(make_config(database_url))
            client = app.test_client()
            from messaging.api.auth import mint_token
            from tests.conftest import TEST_JWT_SECRET

            config = {"JWT_SECRET": TEST_JWT_SECRET, "JWT_ISSUER": None, "JWT_AUDIENCE": None}

            def auth(sub: str, role: str = "guest") -> dict[str, str]:
                return {"Authorization": f"Bearer {mint_token(config, sub=sub, role=role)}"}

            _unread_for_bob(app, client, auth)
            with app.app_context(), session_scope() as s:
                assert webhooks.schedule_unread_webhooks(s, dt.datetime.now(dt.UTC), receiver.url) == 1
            [delivery] = _deliveries(app)
            receiver.plan = [500, 502]
            send_task(redis.url(), "concierge.deliver_webhook", delivery.id)  # what the outbox sends
            wait_until(lambda: _deliveries(app)[0].status == "delivered", timeout=30, interval=0.2,
                       what="the webhook to be delivered after two failures")
            assert [r["delivery"] for r in receiver.received] == [delivery.id] * 3
            assert sum(1 for r in receiver.received if r["signed"]) == 3
            assert _deliveries(app)[0].attempts == 3
    finally:
        started.stop_all()
