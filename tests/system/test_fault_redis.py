"""Redis stopped while people chat (issue: faults survived).

Messages keep being accepted while Redis is down: live updates degrade without an error reaching the
poster (the change is committed; the publish is dropped and logged), a stream that cannot start
answers 503 problem details, and once Redis is back streams work again and every message is in the
history, once. Event intake with Redis down is covered in tests/system/test_worker_delivery.py.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator

import pytest

from tests.helpers_processes import (
    Processes,
    call,
    mint,
    private_pg_database,
    processes,  # noqa: F401 - fixture
    service_env,
    wait_until,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with private_pg_database("concierge_fault_redis") as url:
        yield url


class StreamReader:
    """An SSE client in a thread: collects (event, data) pairs until the server closes the stream."""

    def __init__(self, base: str, token: str) -> None:
        host, port = base.split("://", 1)[1].split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)
        self.conn.request("GET", "/v1/stream", headers={"Authorization": f"Bearer {token}"})
        self.response = self.conn.getresponse()
        self.events: list[tuple[str, str]] = []
        self.closed = threading.Event()
        if self.response.status == 200:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        event = ""
        try:
            while True:
                line = self.response.readline()
                if not line:
                    break
                text = line.decode().rstrip("\n")
                if text.startswith("event: "):
                    event = text[7:]
                elif text.startswith("data: ") and event:
                    self.events.append((event, text[6:]))
                    event = ""
        except (OSError, AttributeError, ValueError):  # closed from the other side, or by close()
            pass
        finally:
            self.closed.set()

    def close(self) -> None:
        self.conn.close()


def test_redis_down_messages_still_accepted_and_streams_recover(
    processes: Processes,  # noqa: F811 - fixture
    database_url: str,
) -> None:
    redis = processes.redis()
    env = service_env(database_url, redis.url(), RATE_LIMITS_ENABLED="0", LIVE_HEARTBEAT_SECONDS="1")
    web = processes.web(env, workers=1, threads=1, worker_class="messaging.server.GeventWorker")
    alice, bob = mint("fr-alice"), mint("fr-bob")
    assert call(web.base, "GET", "/v1/me", bob)[0] == 200
    status, conversation = call(web.base, "POST", "/v1/conversations", alice, {"participantIds": ["fr-bob"]})
    assert status == 201, conversation
    cid = conversation["id"]

    stream = StreamReader(web.base, bob)
    assert stream.response.status == 200
    time.sleep(0.3)
    assert call(web.base, "POST", f"/v1/conversations/{cid}/messages", alice, {"message": "before"})[0] == 201
    wait_until(lambda: any('"before"' in data for _, data in stream.events), 5, what="the live message")

    redis.stop()
    accepted = []
    for i in range(10):
        started = time.monotonic()
        status, body = call(web.base, "POST", f"/v1/conversations/{cid}/messages", alice, {"message": f"down {i}"})
        assert status == 201, body  # the poster never sees Redis's absence
        assert time.monotonic() - started < 2.0
        accepted.append(body["id"])
    # The open stream ends (its client reconnects with Last-Event-ID); a new one cannot start yet.
    assert stream.closed.wait(10), "the stream did not end when Redis went away"
    stream.close()
    refused = StreamReader(web.base, bob)
    assert refused.response.status == 503
    assert refused.response.getheader("Content-Type") == "application/problem+json"
    assert refused.response.getheader("Retry-After")
    refused.close()

    redis.start()
    resumed = wait_until(
        lambda: (s := StreamReader(web.base, bob)).response.status == 200 and s, 10, what="a stream once Redis is back"
    )
    time.sleep(0.3)
    assert call(web.base, "POST", f"/v1/conversations/{cid}/messages", alice, {"message": "after"})[0] == 201
    wait_until(lambda: any('"after"' in data for _, data in resumed.events), 5, what="live messages again")
    resumed.close()

    # Nothing posted during the outage was lost or doubled: the history holds each once.
    status, page = call(web.base, "GET", f"/v1/conversations/{cid}/messages?limit=100", bob)
    assert status == 200
    ids = [m["id"] for m in page["items"]]
    assert len(ids) == len(set(ids)) == 12
    assert set(accepted) <= set(ids)
    assert [m["message"] for m in page["items"]] == ["before", *[f"down {i}" for i in range(10)], "after"]
    status, conversation = call(web.base, "GET", f"/v1/conversations/{cid}", bob)
    assert conversation["unreadCount"] == 12
