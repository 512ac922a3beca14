"""The outbox (SPEC §5.5): each task enqueued after commit is sent once, with its outbox row marked sent and then
done by the task; what the broker loses (Redis emptied, a worker killed) is sent again within seconds, and a task
sent twice still writes everything once. Against a private redis-server and a real Celery worker."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import celery
import pytest
import redis as redis_py
from sqlalchemy import func, select

from app import create_app
from concierge.models import PlatformEvent
from messaging.config import celery_settings
from messaging.outbox import mark_done, mark_retrying, sweep_outbox
from messaging.store.db import session_scope, utcnow
from messaging.store.models import ConciergeMessageOrigin, OutboxEntry, User
from tasks.concierge_tasks import process_event, sweep_outbox_task, sweep_stale_events
from tests import conftest
from tests.helpers_processes import (
    QUEUE_KEY,
    Processes,
    mint,
    processes,  # noqa: F401 - fixture
    service_env,
    wait_until,
)
from tests.redis_prefix import own_prefix
from tests.system.test_worker_delivery import delivery_counts, trip_booked

SERVICE = {"Authorization": f"Bearer {mint('platform', 'service')}"}


@contextmanager
def service_app(database_url: str, broker_url: str, key_prefix: str = conftest.REDIS_TEST_PREFIX) -> Iterator[Any]:
    """The application on ``database_url`` sending tasks to ``broker_url`` with its keys under ``key_prefix`` (by
    default the run's, as service_env gives a worker); its tables emptied afterwards, and Celery's default app (the
    one messaging.outbox sends with) put back as it was."""
    previous = celery.current_app._get_current_object()
    app = create_app(conftest.test_config(database_url, REDIS_KEY_PREFIX=key_prefix,
                                          CELERY=celery_settings(broker_url, key_prefix)))
    try:
        yield app
    finally:
        conftest._wipe(app)
        previous.set_default()


def outbox_rows(app: Any) -> list[OutboxEntry]:
    with app.app_context(), session_scope() as session:
        return list(session.scalars(select(OutboxEntry).order_by(OutboxEntry.created_at)))


def queued(broker: redis_py.Redis) -> list[dict[str, Any]]:
    """The headers of the task messages waiting in the default queue."""
    return [json.loads(raw)["headers"] for raw in broker.lrange(QUEUE_KEY, 0, -1)]


def ask_the_concierge(app: Any, user_id: str, text: str) -> str:
    """``user_id`` posts ``text`` in their concierge conversation; the message's id."""
    with app.app_context(), session_scope() as session:
        session.add(User(id=user_id, name="Ana", role="guest"))
    client, headers = app.test_client(), {"Authorization": f"Bearer {mint(user_id)}"}
    conversation = client.get("/v1/concierge", headers=headers).json["id"]
    posted = client.post(f"/v1/conversations/{conversation}/messages", json={"message": text}, headers=headers)
    assert posted.status_code == 201, posted.json
    return str(posted.json["id"])


def post_events(app: Any, events: list[dict[str, Any]], path: str = "/v1/events") -> None:
    client = app.test_client()
    for event in events:
        answer = client.post(path, json=event, headers=SERVICE)
        assert answer.status_code == 202, answer.json


def statuses(app: Any, prefix: str) -> dict[str, int]:
    """How many of the events whose id starts with ``prefix`` are in each status."""
    with app.app_context(), session_scope() as session:
        rows = session.execute(select(PlatformEvent.status, func.count()).where(PlatformEvent.id.startswith(prefix))
                               .group_by(PlatformEvent.status))
        return {status: int(count) for status, count in rows.tuples()}


def answers(app: Any, question_id: str) -> int:
    """Concierge replies to the question ``question_id``."""
    with app.app_context(), session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(ConciergeMessageOrigin)
                                  .where(ConciergeMessageOrigin.question_message_id == question_id)) or 0)


# --- the sweeper and the task class, in process ---------------------------------------------------------------


def test_the_sweeper_sends_again_only_what_is_not_done_waiting_longer_each_time(database_url: str) -> None:
    t0 = utcnow()
    with own_prefix() as key_prefix, service_app(database_url, conftest.redis_url(), key_prefix) as app:
        with app.app_context(), session_scope() as session:
            for name, dispatched, attempts in [("never-sent", None, 0), ("sent", t0, 0), ("done", t0, 0),
                                               ("retrying", t0, 0), ("sent-again", t0, 1), ("sent-often", t0, 5)]:
                session.add(OutboxEntry(id=name, task_name="concierge.process_event", args=[name], created_at=t0,
                                        dispatched_at=dispatched, attempts=attempts))
        with app.app_context():
            mark_done("done")
            mark_retrying("retrying", 60)  # due at about t0 + 60 s

            def sent_at(seconds: float) -> int:
                with session_scope() as session:
                    count = sweep_outbox(session, t0 + dt.timedelta(seconds=seconds))
                    session.rollback()  # only counting: leave the rows as they were
                return count

            # Never sent: after the grace period (10 s). Sent: after 15 s, 30 s once sent again, 120 s at most.
            # Waiting to retry: 15 s after the retry is due. Done: never.
            assert [sent_at(s) for s in (5, 15, 25, 45, 85, 165, 3600)] == [0, 1, 2, 3, 4, 5, 5]
            with session_scope() as session:
                assert sweep_outbox(session, t0 + dt.timedelta(hours=1)) == 5
        rows = {row.id: row for row in outbox_rows(app)}
        assert rows["done"].attempts == 0 and rows["done"].done_at is not None
        assert all(row.attempts >= 1 and row.done_at is None for name, row in rows.items() if name != "done")


def test_a_task_sent_through_the_outbox_marks_its_row_done(database_url: str) -> None:
    with own_prefix() as key_prefix, service_app(database_url, conftest.redis_url(), key_prefix) as app:
        with app.app_context(), session_scope() as session:
            session.add(OutboxEntry(id="entry-1", task_name="concierge.process_event", args=["no-such-event"],
                                    created_at=utcnow(), dispatched_at=utcnow()))
        with app.app_context():
            # The header the outbox sends with, as a worker hands it to the task.
            assert process_event.apply(args=["no-such-event"], headers={"outbox_id": "entry-1"}).get() == \
                "nothing to do"
        (row,) = outbox_rows(app)
        assert row.done_at is not None


def test_the_sweepers_send_through_the_outbox_and_mark_what_they_sent(database_url: str) -> None:
    """The beat jobs of SPEC §5.5 as a worker runs them: an event stuck for longer than STALE_AFTER goes back to
    the worker through a new outbox row, sent after the sweep's commit and marked so; the outbox sweep then finds
    nothing to send."""
    long_ago = utcnow() - dt.timedelta(minutes=10)
    with own_prefix() as key_prefix, service_app(database_url, conftest.redis_url(), key_prefix) as app:
        with app.app_context(), session_scope() as session:
            session.add(PlatformEvent(id="ev-stuck", type="trip.booked", occurred_at=long_ago, payload={},
                                      payload_hash="0" * 64, status="processing", received_at=long_ago,
                                      updated_at=long_ago))
        with app.app_context():
            assert sweep_stale_events.run() == 1
            assert sweep_outbox_task.run() == 0
        (row,) = outbox_rows(app)
        assert (row.task_name, row.args, row.attempts) == ("concierge.process_event", ["ev-stuck"], 0)
        assert row.dispatched_at is not None and row.done_at is None


# --- real processes -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_each_post_sends_one_task_per_outbox_row_and_marks_it(
    processes: Processes, database_url: str  # noqa: F811 - fixture
) -> None:
    """A concierge question (sent after commit), an event through the fast lane and an event through the view (a
    query string): one message each in the queue, carrying its row's id, every row marked sent — and no ERROR
    logged (the autouse fixture) — then done by the worker."""
    run = f"ob1-{uuid.uuid4().hex[:6]}"
    redis = processes.redis()
    broker = redis_py.Redis.from_url(redis.url())
    with service_app(database_url, redis.url()) as app:
        question = ask_the_concierge(app, f"{run}-ana", "hi")
        events = [trip_booked(f"{run}-ev{i}", f"{run}-traveler{i}", f"{run}-host", 7000 + i) for i in range(2)]
        post_events(app, events[:1])
        post_events(app, events[1:], "/v1/events?via=view")

        rows = outbox_rows(app)
        assert sorted((row.task_name, tuple(row.args)) for row in rows) == sorted(
            [("concierge.answer_question", (question,))] + [("concierge.process_event", (e["id"],)) for e in events])
        assert all(row.dispatched_at is not None and row.done_at is None for row in rows), rows
        messages = queued(broker)
        assert sorted((m["task"], m["outbox_id"]) for m in messages) == sorted((r.task_name, r.id) for r in rows)

        worker = processes.worker(service_env(database_url, redis.url()))
        wait_until(lambda: all(row.done_at is not None for row in outbox_rows(app)), 20, interval=0.2,
                   what="the worker to report every outbox row done")
        assert statuses(app, run) == {"processed": 2}
        assert answers(app, question) == 1
        assert broker.llen(QUEUE_KEY) == 0
        log = worker.log_text()
        # A retry would be received again under the same task id: three ids, three tasks.
        assert len(set(re.findall(r"Task \S+\[([0-9a-f-]+)\] received", log))) == 3, worker.log_tail()
        assert " ERROR" not in log and "Traceback" not in log, worker.log_tail()
    broker.close()


@pytest.mark.slow
def test_tasks_lost_with_redis_are_sent_again_and_processed_once_within_30_s(
    processes: Processes, pg_url: str  # noqa: F811 - fixture
) -> None:
    """Redis restarted empty while the tasks waited in its queue, no worker running: the rows were sent, not done,
    so the sweeper (celery beat's schedule, the default OUTBOX_REDISPATCH_SECONDS) sends them again."""
    count = 20
    run = f"ob2-{uuid.uuid4().hex[:6]}"
    redis = processes.redis()
    broker = redis_py.Redis.from_url(redis.url())
    with service_app(pg_url, redis.url()) as app:
        question = ask_the_concierge(app, f"{run}-ana", "hi")
        events = [trip_booked(f"{run}-ev{i:02d}", f"{run}-traveler{i:02d}", f"{run}-host", 7100 + i)
                  for i in range(count)]
        post_events(app, events)
        assert broker.llen(QUEUE_KEY) == count + 1

        redis.stop()
        redis.start()  # same port, empty: the queue is gone, the outbox remembers
        back = time.monotonic()
        assert broker.llen(QUEUE_KEY) == 0
        env = service_env(pg_url, redis.url())
        processes.beat(env)
        processes.worker(env)
        wait_until(lambda: statuses(app, run).get("processed", 0) == count and answers(app, question) == 1,
                   30 - (time.monotonic() - back), interval=0.2,
                   what="every lost task to be sent again and processed, within 30 s of Redis answering again")
        print(f"all {count + 1} lost tasks done {time.monotonic() - back:.1f} s after Redis came back")  # noqa: T201

        wait_until(lambda: all(row.done_at is not None for row in outbox_rows(app)), 10, interval=0.2,
                   what="every outbox row to be done")
        counts = delivery_counts(pg_url, run)
        assert counts["pairs"] == {(e["id"], who): 1 for e in events
                                   for who in (e["data"]["traveler"]["id"], e["data"]["host"]["id"])}
        assert counts["linked_messages"] == 2 * count
        assert statuses(app, run) == {"processed": count}
        assert answers(app, question) == 1
        assert {row.attempts for row in outbox_rows(app)} == {1}  # sent again once each
    broker.close()


@pytest.mark.slow
def test_a_task_sent_again_while_the_first_still_waits_writes_nothing_twice(
    processes: Processes, pg_url: str  # noqa: F811 - fixture
) -> None:
    """The redispatch is a second copy of a task that may yet run (a slow queue): both copies run, once each."""
    run = f"ob3-{uuid.uuid4().hex[:6]}"
    redis = processes.redis()
    broker = redis_py.Redis.from_url(redis.url())
    with service_app(pg_url, redis.url()) as app:
        question = ask_the_concierge(app, f"{run}-ana", "hi")
        event = trip_booked(f"{run}-ev", f"{run}-traveler", f"{run}-host", 7200)
        post_events(app, [event])
        with app.app_context(), session_scope() as session:  # as the sweeper would a minute later
            assert sweep_outbox(session, utcnow() + dt.timedelta(minutes=1)) == 2
        assert broker.llen(QUEUE_KEY) == 4

        worker = processes.worker(service_env(pg_url, redis.url()))
        wait_until(lambda: worker.log_text().count("] succeeded") == 4, 20, interval=0.2,
                   what="the worker to run all four copies")
        assert broker.llen(QUEUE_KEY) == 0
        assert statuses(app, run) == {"processed": 1}
        assert delivery_counts(pg_url, run)["pairs"] == {(event["id"], f"{run}-traveler"): 1,
                                                         (event["id"], f"{run}-host"): 1}
        assert answers(app, question) == 1
        with app.app_context(), session_scope() as session:
            assert session.get(PlatformEvent, event["id"]).attempts <= 2  # type: ignore[union-attr]
        assert all(row.done_at is not None for row in outbox_rows(app))
        assert " ERROR" not in worker.log_text(), worker.log_tail()
    broker.close()
