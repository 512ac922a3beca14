"""Celery's broker: kombu's own Redis transport, configured from REDIS_URL and REDIS_KEY_PREFIX, against a real Redis
(the run's, under a key prefix of the test's own: its keys alone are deleted afterwards)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from celery import Celery

from app import create_app
from messaging.config import celery_settings, load_settings
from tests import conftest
from tests.redis_prefix import own_prefix


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own (``REDIS_KEY_PREFIX``), its keys deleted afterwards."""
    with own_prefix() as prefix:
        yield prefix


def test_settings_leave_the_transport_to_kombu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/9")
    monkeypatch.delenv("REDIS_KEY_PREFIX", raising=False)
    celery = load_settings()["CELERY"]
    assert celery["broker_url"] == "redis://127.0.0.1:6379/9"
    assert "broker_transport" not in celery  # kombu picks its transport from the URL's scheme
    assert celery["broker_transport_options"]["global_keyprefix"] == ""
    monkeypatch.setenv("REDIS_KEY_PREFIX", "staging:")
    assert load_settings()["CELERY"]["broker_transport_options"]["global_keyprefix"] == "staging:"


def test_the_app_refuses_to_start_without_redis(database_url: str) -> None:
    with pytest.raises(RuntimeError, match="REDIS_URL must be set"):
        create_app(conftest.test_config(database_url, REDIS_URL=None))


def test_the_apps_broker_follows_its_redis_settings(database_url: str) -> None:
    """Given REDIS_URL and REDIS_KEY_PREFIX but no Celery settings, the app's broker is that Redis under that prefix."""
    config = conftest.test_config(database_url, REDIS_KEY_PREFIX="tenant-a:")
    del config["CELERY"]
    celery = create_app(config).extensions["celery"]
    assert celery.conf.broker_url == conftest.redis_url()
    assert celery.conf.broker_transport_options["global_keyprefix"] == "tenant-a:"


def test_messages_go_through_redis_under_the_key_prefix(redis_prefix: str) -> None:
    url = conftest.redis_url()
    app = Celery("broker-test")
    app.conf.update(celery_settings(url, redis_prefix))
    with app.connection_for_write() as conn:
        # Published, received and acknowledged: the queue, under the prefix, ends empty, nothing left unacknowledged.
        queue = conn.SimpleQueue("broker-test")
        for n in range(3):
            queue.put({"n": n})
        assert redis.Redis.from_url(url).llen(f"{redis_prefix}broker-test") == 3
        received = []
        for _ in range(3):
            message = queue.get(timeout=5)
            received.append(message.payload["n"])
            message.ack()
        assert received == [0, 1, 2] and redis.Redis.from_url(url).llen(f"{redis_prefix}broker-test") == 0
        assert redis.Redis.from_url(url).hlen(f"{redis_prefix}unacked") == 0
        queue.close()
