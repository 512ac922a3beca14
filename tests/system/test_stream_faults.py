"""Streams never drop silently (SPEC §6): every stream opens with an id, so a client that reconnects after its
web worker was killed, or after Redis restarted empty, is replayed what it missed or told to reset — whether or
not an event had reached it before the fault. Real gunicorn, a private Redis, PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers_processes import (
    Processes,
    WebServer,
    call,
    mint,
    private_pg_database,
    processes,  # noqa: F401 - fixture
    service_env,
    wait_until,
)
from tests.system.test_stream import SseClient

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with private_pg_database("concierge_stream_faults") as url:
        yield url


def _user(base: str) -> tuple[str, str]:
    user_id = f"sf-{uuid.uuid4().hex[:8]}"
    token = mint(user_id)
    assert call(base, "GET", "/v1/me", token)[0] == 200
    return user_id, token


def _conversation(base: str, token: str, other: str) -> str:
    status, body = call(base, "POST", "/v1/conversations", token, {"participantIds": [other]})
    assert status in (200, 201), body
    return str(body["id"])


def _post(base: str, token: str, conversation_id: str, text: str) -> dict[str, Any]:
    status, body = call(base, "POST", f"/v1/conversations/{conversation_id}/messages", token, {"message": text})
    assert status == 201, body
    return body  # type: ignore[no-any-return]


def _open(streams: list[SseClient], base: str, token: str, last_event_id: str | None = None) -> SseClient:
    stream = SseClient(base, token, last_event_id=last_event_id)
    streams.append(stream)
    assert stream.status == 200
    assert stream.opened.wait(5), "no opening block"
    return stream


def _ended(stream: SseClient) -> bool:
    return stream._thread is None or not stream._thread.is_alive()


def _worker_pids(web: WebServer) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(web.pid)], capture_output=True, text=True, check=False).stdout
    return [int(pid) for pid in out.split()]


def test_a_killed_web_worker_loses_nothing_for_clients_with_and_without_prior_events(
    processes: Processes, database_url: str, streams: list[SseClient]  # noqa: F811 - fixture
) -> None:
    redis = processes.redis()
    web = processes.web(service_env(database_url, redis.url(), LIVE_HEARTBEAT_SECONDS="1"), workers=1)
    (alice, alice_token), (carol, carol_token), (_, bob_token) = (_user(web.base) for _ in range(3))
    with_alice, with_carol = _conversation(web.base, bob_token, alice), _conversation(web.base, bob_token, carol)
    _post(web.base, bob_token, with_carol, "before carol's stream")  # carol's stream holds an event already

    fresh = _open(streams, web.base, alice_token)  # no event has reached it
    seasoned = _open(streams, web.base, carol_token)
    assert fresh.last_event_id is not None and seasoned.last_event_id is not None

    [worker] = _worker_pids(web)
    os.kill(worker, signal.SIGKILL)
    wait_until(lambda: _ended(fresh) and _ended(seasoned), 10, what="the streams to end with their worker")
    wait_until(lambda: _worker_pids(web) not in ([], [worker]), 20, what="gunicorn to start another worker")
    web.wait_ready()
    missed_alice = _post(web.base, bob_token, with_alice, "while alice was away")
    missed_carol = _post(web.base, bob_token, with_carol, "while carol was away")

    again_fresh = _open(streams, web.base, alice_token, fresh.last_event_id)
    again_seasoned = _open(streams, web.base, carol_token, seasoned.last_event_id)
    assert again_fresh.next_event()["data"]["id"] == missed_alice["id"]
    assert again_seasoned.next_event()["data"]["id"] == missed_carol["id"]


def test_redis_restarted_empty_replays_or_resets_every_client(
    processes: Processes, database_url: str, streams: list[SseClient]  # noqa: F811 - fixture
) -> None:
    redis = processes.redis()
    web = processes.web(service_env(database_url, redis.url(), LIVE_HEARTBEAT_SECONDS="1"), workers=1)
    (alice, alice_token), (carol, carol_token), (_, bob_token) = (_user(web.base) for _ in range(3))
    fresh = _open(streams, web.base, alice_token)  # nothing was ever sent to alice
    seasoned = _open(streams, web.base, carol_token)
    with_carol = _conversation(web.base, bob_token, carol)
    assert seasoned.next_event()["event"] == "conversation.created"

    redis.stop()
    redis.start()  # empty: no persistence
    wait_until(lambda: _ended(fresh) and _ended(seasoned), 15, what="the streams to end with Redis")
    with_alice = wait_until(lambda: _try_conversation(web.base, bob_token, alice), 10, what="a write after Redis")
    missed_alice = _post(web.base, bob_token, with_alice, "while alice was away")
    _post(web.base, bob_token, with_carol, "after the fault")

    # Alice's stream was empty when she connected: everything after that position is hers, so it is replayed.
    again_fresh = _open(streams, web.base, alice_token, fresh.last_event_id)
    assert again_fresh.next_event()["event"] == "conversation.created"
    assert again_fresh.next_event()["data"]["id"] == missed_alice["id"]
    # Carol had seen an event Redis no longer knows: she cannot be told what she missed, so she is told to reset.
    again_seasoned = _open(streams, web.base, carol_token, seasoned.last_event_id)
    assert again_seasoned.next_event()["event"] == "reset"


def _try_conversation(base: str, token: str, other: str) -> str | None:
    status, body = call(base, "POST", "/v1/conversations", token, {"participantIds": [other]})
    return str(body["id"]) if status in (200, 201) else None
