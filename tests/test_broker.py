"""messaging/broker.py: kombu's Redis transport keeping one redis-py client per channel, against a real Redis."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from celery import Celery

from messaging import broker
from messaging.config import load_settings
from tests import conftest


def test_settings_choose_the_transport_only_with_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/9")
    assert load_settings()["CELERY"]["broker_transport"] == "messaging.broker:Transport"
    monkeypatch.setenv("REDIS_URL", "rediss://127.0.0.1:6380/9")
    assert load_settings()["CELERY"]["broker_transport"] is None  # TLS: the transport kombu picks for the scheme
    monkeypatch.delenv("REDIS_URL")
    assert load_settings()["CELERY"]["broker_transport"] is None  # the in-process memory broker


def test_tasks_go_through_redis_on_one_client_per_channel() -> None:
    url = conftest.redis_url()
    redis.Redis.from_url(url).flushdb()
    app = Celery("broker-test", broker=url)
    app.conf.update(broker_transport="messaging.broker:Transport", task_ignore_result=True)
    with app.connection_for_write() as conn:
        channel: Any = conn.default_channel
        assert isinstance(channel, broker.Channel)
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
        given = object()
        with channel.conn_or_acquire(given) as passed:
            assert passed is given
        # Published, received and acknowledged through it: the queue ends empty, nothing left unacknowledged.
        queue = conn.SimpleQueue("broker-test")
        for n in range(3):
            queue.put({"n": n})
        received = []
        for _ in range(3):
            message = queue.get(timeout=5)
            received.append(message.payload["n"])
            message.ack()
        assert received == [0, 1, 2] and redis.Redis.from_url(url).llen("broker-test") == 0
        assert redis.Redis.from_url(url).hlen("unacked") == 0
        queue.close()
        # kombu drops its pools after a fork or on close: the kept client goes with them.
        with channel.conn_or_acquire() as before:
            pass
        channel._disconnect_pools()
        with channel.conn_or_acquire() as after:
            assert after is not before
            assert after.ping()
    redis.Redis.from_url(url).flushdb()
