"""Idempotency-Key (SPEC §2) on a creating POST registered by the test itself."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from flask import Response
from pydantic import Field
from sqlalchemy import func, select, update

import tests.conftest as conftest
from app import create_app
from messaging.api.http import api_blueprint, json_response
from messaging.api.idempotency import idempotent, purge_expired_idempotency_keys, request_fingerprint
from messaging.schemas import ApiModel
from messaging.store.db import get_engine, get_session, session_scope, utcnow
from messaging.store.models import Conversation, IdempotencyKey

PATH = "/v1/idempotency-probe/conversations"


class ProbeIn(ApiModel):
    name: str = Field(min_length=1, max_length=255)


class ProbeOut(ApiModel):
    id: str
    name: str


def build_app(url: str, **config: Any) -> Any:
    """The real app plus one creating POST: it inserts a conversation and answers 201 with its id.

    ``app.config["PROBE"]`` steers it: ``raise`` / ``fail`` (count of calls that raise / answer 503),
    ``pause`` (a barrier all callers wait on after their insert, to overlap concurrent requests).
    """
    app = create_app(conftest.test_config(url, **config))
    app.config["PROBE"] = {"raise": 0, "fail": 0, "pause": None, "calls": 0}
    bp = api_blueprint("idempotency_probe", __name__, "Probe")

    @bp.post("/idempotency-probe/conversations", responses={201: ProbeOut})
    @idempotent
    def create_probe(body: ProbeIn) -> Response:
        probe = app.config["PROBE"]
        probe["calls"] += 1
        session = get_session()
        conversation = Conversation(name=body.name)
        session.add(conversation)
        session.flush()
        if probe["raise"]:
            probe["raise"] -= 1
            raise RuntimeError("the view broke")
        if probe["fail"]:
            probe["fail"] -= 1
            session.rollback()
            return json_response({"error": "upstream"}, 503)
        if probe["pause"] is not None:
            probe["pause"]()
        return json_response(ProbeOut(id=conversation.id, name=body.name), 201)  # @idempotent commits

    app.register_api(bp)
    return app


@pytest.fixture(scope="module")
def _probe_app(database_url: str) -> Any:
    return build_app(database_url)


@pytest.fixture
def probe_app(_probe_app: Any) -> Iterator[Any]:
    _probe_app.config["PROBE"].update({"raise": 0, "fail": 0, "pause": None, "calls": 0})
    yield _probe_app
    conftest._wipe(_probe_app)


@pytest.fixture
def probe(probe_app: Any) -> Any:
    return probe_app.test_client()


def conversation_count(app: Any) -> int:
    with app.app_context(), session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(Conversation)) or 0)


def key_rows(app: Any) -> list[IdempotencyKey]:
    with app.app_context(), session_scope() as session:
        return list(session.scalars(select(IdempotencyKey)))


def post(client: Any, headers: dict[str, str], key: str | None, body: dict[str, Any] | None = None) -> Any:
    if key is not None:
        headers = {**headers, "Idempotency-Key": key}
    return client.post(PATH, json=body if body is not None else {"name": "trip"}, headers=headers)


def test_without_a_key_every_post_creates(probe, probe_app, auth):
    assert post(probe, auth("u1"), None).status_code == 201
    assert post(probe, auth("u1"), None).status_code == 201
    assert conversation_count(probe_app) == 2
    assert key_rows(probe_app) == []


def test_same_key_and_body_replays_the_first_response(probe, probe_app, auth):
    first = post(probe, auth("u1"), "k-1")
    second = post(probe, auth("u1"), "k-1")
    assert first.status_code == 201, first.json
    assert "Idempotent-Replayed" not in first.headers
    assert second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.content_type == "application/json"
    assert second.data == first.data
    assert conversation_count(probe_app) == 1
    assert probe_app.config["PROBE"]["calls"] == 1
    [row] = key_rows(probe_app)
    assert (row.owner_id, row.key, row.response_status) == ("u1", "k-1", 201)


def test_same_key_with_a_different_body_is_422(probe, probe_app, auth):
    assert post(probe, auth("u1"), "k-1", {"name": "one"}).status_code == 201
    r = post(probe, auth("u1"), "k-1", {"name": "two"})
    assert r.status_code == 422
    assert r.content_type == "application/problem+json"
    assert r.json["errors"][0]["field"] == "Idempotency-Key"
    assert conversation_count(probe_app) == 1


def test_keys_belong_to_their_caller(probe, probe_app, auth):
    a = post(probe, auth("u1"), "shared")
    b = post(probe, auth("u2"), "shared")
    assert a.status_code == b.status_code == 201
    assert "Idempotent-Replayed" not in b.headers
    assert a.json["id"] != b.json["id"]
    assert conversation_count(probe_app) == 2


def test_a_key_older_than_24_hours_is_new_again(probe, probe_app, auth):
    first = post(probe, auth("u1"), "old", {"name": "one"})
    with probe_app.app_context(), session_scope() as session:
        session.execute(update(IdempotencyKey).values(created_at=utcnow() - dt.timedelta(hours=24, minutes=1)))
    # Even with a different body: the expired key is forgotten, not compared.
    again = post(probe, auth("u1"), "old", {"name": "two"})
    assert again.status_code == 201, again.json
    assert "Idempotent-Replayed" not in again.headers
    assert again.json["id"] != first.json["id"]
    assert conversation_count(probe_app) == 2
    replay = post(probe, auth("u1"), "old", {"name": "two"})
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json == again.json


def test_a_key_younger_than_24_hours_still_replays(probe, probe_app, auth):
    post(probe, auth("u1"), "recent")
    with probe_app.app_context(), session_scope() as session:
        session.execute(update(IdempotencyKey).values(created_at=utcnow() - dt.timedelta(hours=23, minutes=59)))
    assert post(probe, auth("u1"), "recent").headers["Idempotent-Replayed"] == "true"
    assert conversation_count(probe_app) == 1


@pytest.mark.expect_errors(r"^unhandled error request_id=\S+ POST /v1/idempotency-probe/conversations$")
def test_a_view_that_raises_releases_the_key(probe, probe_app, auth):
    probe_app.config["PROBE"]["raise"] = 1
    broken = post(probe, auth("u1"), "k-raise")
    assert broken.status_code == 500
    assert key_rows(probe_app) == []
    retry = post(probe, auth("u1"), "k-raise")
    assert retry.status_code == 201, retry.json
    assert "Idempotent-Replayed" not in retry.headers
    assert conversation_count(probe_app) == 1


def test_a_5xx_answer_releases_the_key(probe, probe_app, auth):
    probe_app.config["PROBE"]["fail"] = 1
    assert post(probe, auth("u1"), "k-503").status_code == 503
    assert key_rows(probe_app) == []
    assert post(probe, auth("u1"), "k-503").status_code == 201
    assert conversation_count(probe_app) == 1


def test_a_request_in_progress_answers_409(probe, probe_app, auth):
    # What a concurrent duplicate finds: the claim committed, no response stored yet.
    with probe_app.app_context(), session_scope() as session:
        session.add(IdempotencyKey(owner_id="u1", key="busy", request_fingerprint="0" * 64, created_at=utcnow()))
    r = post(probe, auth("u1"), "busy")
    # A different fingerprint is reported first (422); the same one would be 409 — see the next test.
    assert r.status_code == 422

    fingerprint = request_fingerprint("POST", PATH, b'{"name":"trip"}')
    with probe_app.app_context(), session_scope() as session:
        session.execute(update(IdempotencyKey).values(request_fingerprint=fingerprint))
    r = probe.post(PATH, data=b'{"name":"trip"}', content_type="application/json",
                   headers={**auth("u1"), "Idempotency-Key": "busy"})
    assert r.status_code == 409
    assert r.content_type == "application/problem+json"
    assert r.headers["Retry-After"] == "1"
    assert conversation_count(probe_app) == 0


@pytest.mark.parametrize("key", ["x" * 256, "", "tab\there"])
def test_malformed_keys_are_422(probe, probe_app, auth, key):
    r = post(probe, auth("u1"), key)
    assert r.status_code == 422
    assert r.json["errors"][0]["field"] == "Idempotency-Key"
    assert conversation_count(probe_app) == 0


def test_a_key_of_255_printable_characters_is_accepted(probe, probe_app, auth):
    key = ("K-9 ~!" * 50)[:255]
    assert post(probe, auth("u1"), key).status_code == 201
    assert post(probe, auth("u1"), key).headers["Idempotent-Replayed"] == "true"


def test_the_header_is_in_the_openapi_document(probe_app):
    operation = probe_app.api_doc["paths"][PATH]["post"]
    names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
    assert "Idempotency-Key" in names


def test_purge_deletes_only_expired_keys(probe_app):
    now = utcnow()
    with probe_app.app_context(), session_scope() as session:
        for key, age in (("fresh", dt.timedelta(hours=1)), ("old", dt.timedelta(hours=25)),
                         ("older", dt.timedelta(days=3))):
            session.add(IdempotencyKey(owner_id="u1", key=key, request_fingerprint="f" * 64,
                                       response_status=201, response_body="{}", created_at=now - age))
    with probe_app.app_context(), session_scope() as session:
        assert purge_expired_idempotency_keys(session, now) == 2
    assert [row.key for row in key_rows(probe_app)] == ["fresh"]


def test_concurrent_duplicates_create_exactly_once(pg_url, token):
    app = build_app(pg_url, DB_POOL_SIZE=12)
    try:
        threads = 8
        start = threading.Barrier(threads)
        headers = {"Authorization": f"Bearer {token('racer')}", "Idempotency-Key": "race"}
        # The winner holds its claim until the others have answered or are waiting on the claim.
        release = threading.Event()
        app.config["PROBE"]["pause"] = lambda: release.wait(2)

        def fire(_: int) -> tuple[int, bytes, str | None]:
            client = app.test_client()
            start.wait()
            r = client.post(PATH, json={"name": "race"}, headers=headers)
            if r.status_code == 409:
                release.set()
            return r.status_code, r.data, r.headers.get("Idempotent-Replayed")

        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(fire, range(threads)))
        statuses = sorted(status for status, _, _ in results)
        assert all(status in (201, 409) for status in statuses), results
        fresh = [r for r in results if r[0] == 201 and r[2] is None]
        assert len(fresh) == 1, results
        assert all(data == fresh[0][1] for status, data, _ in results if status == 201)
        assert conversation_count(app) == 1
        assert app.config["PROBE"]["calls"] == 1
        replay = app.test_client().post(PATH, json={"name": "race"}, headers=headers)
        assert replay.status_code == 201
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.data == fresh[0][1]
    finally:
        conftest._wipe(app)
        with app.app_context():
            get_engine().dispose()


def test_a_duplicate_waits_for_the_request_holding_the_key_then_answers_409(pg_url, token):
    """A request holding the key in its open transaction (here another session, as a request still being served
    would): the duplicate waits for its outcome up to the lock timeout, then answers 409 with Retry-After and
    writes nothing; once the holder rolls back, the key is free and the next try runs the view once."""
    app = build_app(pg_url, DB_LOCK_TIMEOUT=0.3)
    try:
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token('holder')}", "Idempotency-Key": "held"}
        assert client.get("/v1/me", headers=headers).status_code == 200
        fingerprint = request_fingerprint("POST", PATH, b'{"name":"held"}')
        with psycopg.connect(pg_url.replace("+psycopg", "")) as holder:
            holder.execute("INSERT INTO idempotency_keys (owner_id, key, request_fingerprint, created_at) "
                           "VALUES ('holder', 'held', %s, now())", (fingerprint,))
            waited = client.post(PATH, data=b'{"name":"held"}', content_type="application/json", headers=headers)
            assert waited.status_code == 409 and waited.headers["Retry-After"] == "1", waited.json
            assert waited.content_type == "application/problem+json"
            holder.rollback()
        assert app.config["PROBE"]["calls"] == 0 and conversation_count(app) == 0
        created = client.post(PATH, data=b'{"name":"held"}', content_type="application/json", headers=headers)
        assert created.status_code == 201 and "Idempotent-Replayed" not in created.headers
        assert app.config["PROBE"]["calls"] == 1 and conversation_count(app) == 1
    finally:
        conftest._wipe(app)
        with app.app_context():
            get_engine().dispose()
