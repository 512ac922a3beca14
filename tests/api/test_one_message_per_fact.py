"""One message per fact, whoever reports it (SPEC §5.1): a reminder, warning or expiry reported by the platform and
found by the scheduler, in either order or at once, and a booking or cancellation posted again under a new event
id, tell each person once; the later report ends ``skipped`` saying which report told whom. The key of
``concierge_facts`` guarantees it, which the concurrent tests prove by holding both reports past every check."""

from __future__ import annotations

import copy
import datetime as dt
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import IntegrityError

from concierge import processing, scheduling
from concierge.facts import fact_of
from concierge.models import ConciergeFact, PlatformEvent
from concierge.notifications import parse_facts
from messaging.cli import alembic_config
from messaging.store.db import get_session, make_engine, session_scope
from messaging.store.models import ConciergeMessageOrigin, Message
from tests.api.test_event_notifications import OFFER, REQUEST, TRIP, event, run
from tests.conftest import PG_TEST_DB, recreate_pg_database

# Check-in of TRIP is 20 Dec from 16:00 in Lisbon: the day before, when the scheduler finds the reminder.
DAY_BEFORE = dt.datetime(2026, 12, 19, 10, 0, tzinfo=dt.UTC)
# OFFER expires at 18:00 on 2 Dec; REQUEST was made at 09:00 on 1 Dec: both are due for the scheduler then.
EXPIRY_DAY = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)


def _post(client: Any, auth: Any, body: dict[str, Any]) -> None:
    assert client.post("/v1/events", json=body, headers=auth("platform", "service")).status_code == 202


def _event(client: Any, auth: Any, event_id: str) -> dict[str, Any]:
    return dict(client.get(f"/v1/events/{event_id}", headers=auth("platform", "service")).json)


def _told(app: Any, recipient_id: str) -> list[str]:
    """Every concierge message written to ``recipient_id``, oldest first."""
    with app.app_context():
        session = get_session()
        texts = list(session.scalars(
            select(Message.message)
            .join(ConciergeMessageOrigin, ConciergeMessageOrigin.message_id == Message.id)
            .where(ConciergeMessageOrigin.recipient_id == recipient_id)
            .order_by(Message.created_at, Message.id)))
        session.close()
    return texts


def _scheduled(app: Any, job: Any, now: dt.datetime) -> list[str]:
    """Run a scheduler job at ``now``; the ids of the events it recorded."""
    with app.app_context():
        with session_scope() as session:
            before = set(session.scalars(select(PlatformEvent.id)))
            job(session, now)
        with session_scope() as session:
            return sorted(set(session.scalars(select(PlatformEvent.id))) - before)


def _skipped_as_duplicate(stored: dict[str, Any], *, of: str, told: str, fact: str) -> None:
    assert stored["status"] == "skipped" and stored["messages"] == [], stored
    reason = stored["lastError"]
    assert reason.startswith("duplicate: ") and of in reason and f"told {told} {fact}" in reason, reason


def test_a_platform_reminder_then_the_schedulers_run_tell_the_traveler_once(app: Any, client: Any, auth: Any) -> None:
    _post(client, auth, event("trip.check_in_reminder", "trip", TRIP, "ev-remind"))
    assert run(app, "ev-remind", DAY_BEFORE) == "processed"
    [found] = _scheduled(app, scheduling.schedule_check_in_reminders, DAY_BEFORE + dt.timedelta(minutes=5))
    assert found == "scheduler:trip.check_in_reminder:72:2026-12-20"
    assert run(app, found, DAY_BEFORE + dt.timedelta(minutes=6)) == "skipped"
    _skipped_as_duplicate(_event(client, auth, found), of="platform event ev-remind", told="trav-1",
                          fact="the check-in reminder of trip 72 for 2026-12-20")
    [text_] = _told(app, "trav-1")
    assert text_.startswith("Check-in is tomorrow, Sun 20 Dec, from 16:00")


def test_the_schedulers_reminder_then_the_platforms_tell_the_traveler_once(app: Any, client: Any, auth: Any) -> None:
    _post(client, auth, event("trip.check_in_reminder", "trip", TRIP, "ev-remind"))  # stored, not yet processed
    [found] = _scheduled(app, scheduling.schedule_check_in_reminders, DAY_BEFORE)
    assert run(app, found, DAY_BEFORE) == "processed"
    assert run(app, "ev-remind", DAY_BEFORE + dt.timedelta(hours=2)) == "skipped"
    _skipped_as_duplicate(_event(client, auth, "ev-remind"), of=f"the scheduler's run (event {found})",
                          told="trav-1", fact="the check-in reminder of trip 72 for 2026-12-20")
    assert len(_told(app, "trav-1")) == 1
    assert _event(client, auth, found)["lastError"] is None


def test_an_offer_expiry_warning_from_both_reporters_is_sent_once(app: Any, client: Any, auth: Any) -> None:
    """The platform writes the expiry as "…Z", the scheduler reads it back from the database: one fact."""
    _post(client, auth, event("offer.expiring", "offer", OFFER, "ev-expiring"))
    assert run(app, "ev-expiring", EXPIRY_DAY) == "processed"
    [found] = _scheduled(app, scheduling.schedule_offer_expiry_reminders, EXPIRY_DAY + dt.timedelta(minutes=5))
    assert run(app, found, EXPIRY_DAY + dt.timedelta(minutes=5)) == "skipped"
    _skipped_as_duplicate(_event(client, auth, found), of="platform event ev-expiring", told="trav-1",
                          fact="the expiry warning of offer 70 (expiring 2026-12-02T18:00:00Z)")
    [warning] = _told(app, "trav-1")
    assert "expires today, Wed 2 Dec at 18:00 (Europe/Lisbon): 8 hours left" in warning


def test_a_request_to_book_expires_once_for_the_traveler(app: Any, client: Any, auth: Any) -> None:
    """The scheduler expires the request and tells the traveler; the platform's own expiry event after it is a
    duplicate. The other way round the scheduler finds nothing: the platform's record is no longer pending."""
    _post(client, auth, event("request_to_book.created", "requestToBook", REQUEST, "ev-asked"))
    [found] = _scheduled(app, scheduling.expire_requests_to_book, EXPIRY_DAY)
    assert found == "scheduler:request_to_book.expired:71"
    assert run(app, found, EXPIRY_DAY) == "processed"
    expired = {**REQUEST, "status": "Expired", "resolvedAt": "2026-12-02T09:00:00Z"}
    _post(client, auth, event("request_to_book.expired", "requestToBook", expired, "ev-expired"))
    assert run(app, "ev-expired", EXPIRY_DAY + dt.timedelta(minutes=1)) == "skipped"
    _skipped_as_duplicate(_event(client, auth, "ev-expired"), of=f"the scheduler's run (event {found})",
                          told="trav-1", fact="the expiry of request to book 71")
    [expiry] = _told(app, "trav-1")
    assert "expired because the host did not answer within 24 hours" in expiry

    other = {**REQUEST, "id": 171, "status": "Expired", "resolvedAt": "2026-12-02T09:00:00Z"}
    _post(client, auth, event("request_to_book.expired", "requestToBook", other, "ev-expired-171"))
    assert run(app, "ev-expired-171", EXPIRY_DAY) == "processed"
    assert _scheduled(app, scheduling.expire_requests_to_book, EXPIRY_DAY + dt.timedelta(minutes=5)) == []


def test_the_same_booking_under_a_new_event_id_tells_no_one_twice(app: Any, client: Any, auth: Any) -> None:
    _post(client, auth, event("trip.booked", "trip", TRIP, "ev-booked"))
    assert run(app, "ev-booked") == "processed"
    again = event("trip.booked", "trip", TRIP, "ev-booked-again")
    again["occurredAt"] = "2026-12-01T11:00:00Z"  # sent again later: the same booking all the same
    _post(client, auth, again)
    assert run(app, "ev-booked-again") == "skipped"
    _skipped_as_duplicate(_event(client, auth, "ev-booked-again"), of="platform event ev-booked",
                          told="host-1 and trav-1", fact="the booking confirmation of trip 72")
    assert len(_told(app, "trav-1")) == 1 and len(_told(app, "host-1")) == 1

    changed = event("trip.booked", "trip", {**TRIP, "numGuests": 4}, "ev-booked-changed")  # a new fact
    _post(client, auth, changed)
    assert run(app, "ev-booked-changed") == "processed"
    assert "4 guests" in _told(app, "trav-1")[-1] and "4 guests" in _told(app, "host-1")[-1]


def test_a_cancellation_posted_twice_is_told_once(app: Any, client: Any, auth: Any) -> None:
    cancelled = {**TRIP, "status": "Cancelled"}
    for event_id in ("ev-cancel-1", "ev-cancel-2"):
        _post(client, auth, event("trip.cancelled", "trip", cancelled, event_id))
    assert run(app, "ev-cancel-1") == "processed"
    assert run(app, "ev-cancel-2") == "skipped"
    _skipped_as_duplicate(_event(client, auth, "ev-cancel-2"), of="platform event ev-cancel-1",
                          told="host-1 and trav-1", fact="the cancellation of trip 72")
    assert [len(_told(app, who)) for who in ("trav-1", "host-1")] == [1, 1]


def test_a_report_that_finds_some_recipients_told_tells_the_others(app: Any, client: Any, auth: Any) -> None:
    """The host changed hands between two reports of one booking: the new host is told, the traveler is not told
    twice, and the event says so."""
    _post(client, auth, event("trip.booked", "trip", TRIP, "ev-booked"))
    assert run(app, "ev-booked") == "processed"
    moved = event("trip.booked", "trip", TRIP, "ev-booked-moved")
    moved["data"]["property"] = {**moved["data"]["property"], "hostId": "host-2"}
    moved["data"]["host"] = {"id": "host-2", "name": "Hugo", "role": "host"}
    _post(client, auth, moved)
    assert run(app, "ev-booked-moved") == "processed"
    stored = _event(client, auth, "ev-booked-moved")
    assert len(stored["messages"]) == 1
    assert "platform event ev-booked already told trav-1 the booking confirmation of trip 72" in stored["lastError"]
    assert [len(_told(app, who)) for who in ("trav-1", "host-1", "host-2")] == [1, 1, 1]


def test_the_database_refuses_a_second_row_for_one_fact(app: Any) -> None:
    """What the concurrent reports race on: the fact's key, not a check made before writing."""
    with app.app_context():
        with session_scope() as session:
            session.execute(text("INSERT INTO users (id, role) VALUES ('trav-1', 'guest')"))
        row = {"kind": "trip.check_in_reminder", "subject_id": 72, "version": "2026-12-20",
               "recipient_id": "trav-1"}
        with session_scope() as session:
            session.add(ConciergeFact(**row, event_id="ev-a"))
        with pytest.raises(IntegrityError), session_scope() as session:
            session.add(ConciergeFact(**row, event_id="ev-b"))
            session.flush()


def _race(app: Any, monkeypatch: pytest.MonkeyPatch, event_ids: list[str], now: dt.datetime | None) -> list[str]:
    """Process the events at once, each in its own thread and session, both held at a barrier just before they
    claim the fact: every check that could see the other's work is behind them when they write."""
    barrier = threading.Barrier(len(event_ids), timeout=20)
    claim = processing.claim_fact

    def held_claim(*args: Any, **kwargs: Any) -> Any:
        barrier.wait()
        return claim(*args, **kwargs)

    monkeypatch.setattr(processing, "claim_fact", held_claim)
    results: dict[str, str] = {}
    failures: list[Exception] = []

    def one(event_id: str) -> None:
        try:
            results[event_id] = run(app, event_id, now)
        except Exception as exc:  # reported by the test, after the threads end
            failures.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=one, args=(event_id,)) for event_id in event_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    return [results[event_id] for event_id in event_ids]


def test_a_platform_reminder_and_the_schedulers_processed_at_once_tell_the_traveler_once(
    app: Any, client: Any, auth: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _post(client, auth, event("trip.check_in_reminder", "trip", TRIP, "ev-remind"))
    [found] = _scheduled(app, scheduling.schedule_check_in_reminders, DAY_BEFORE)
    assert sorted(_race(app, monkeypatch, ["ev-remind", found], DAY_BEFORE)) == ["processed", "skipped"]
    assert len(_told(app, "trav-1")) == 1
    stored = [_event(client, auth, event_id) for event_id in ("ev-remind", found)]
    [loser] = [s for s in stored if s["status"] == "skipped"]
    [winner] = [s for s in stored if s["status"] == "processed"]
    assert f"event {winner['id']}" in loser["lastError"] and len(winner["messages"]) == 1


def test_one_booking_posted_twice_and_processed_at_once_tells_each_person_once(
    app: Any, client: Any, auth: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two recipients per report: the claims take the key in the same order, so the reports queue, never
    deadlock."""
    for event_id in ("ev-booked-1", "ev-booked-2"):
        _post(client, auth, event("trip.booked", "trip", copy.deepcopy(TRIP), event_id))
    assert sorted(_race(app, monkeypatch, ["ev-booked-1", "ev-booked-2"], None)) == ["processed", "skipped"]
    assert [len(_told(app, who)) for who in ("trav-1", "host-1")] == [1, 1]
    with app.app_context():
        assert get_session().execute(select(func.count()).select_from(ConciergeFact)).scalar() == 2
        get_session().close()


# --- the migration records the reminders and expiries told before it ---------------------------


@pytest.fixture
def database_at_0010() -> Iterator[tuple[Any, Engine]]:
    url = recreate_pg_database(f"{PG_TEST_DB}_facts_backfill")
    cfg = alembic_config(url)
    cfg.attributes["configure_logger"] = False  # env.py would reset the suite's logging
    command.upgrade(cfg, "0010")
    engine = make_engine(url, pool_size=1)
    try:
        yield cfg, engine
    finally:
        engine.dispose()


def test_the_migration_records_reminders_and_expiries_already_told(database_at_0010: tuple[Any, Engine]) -> None:
    """Keyed exactly as processing keys them (fact_of), so a report arriving after the upgrade finds them."""
    cfg, engine = database_at_0010
    offer = {**OFFER, "expiresAt": "2026-12-02T19:00:00.250+01:00"}
    told = {
        "ev-1": event("trip.check_in_reminder", "trip", TRIP, "ev-1"),
        "ev-2": event("offer.expiring", "offer", offer, "ev-2"),
        "ev-3": event("request_to_book.expired", "requestToBook", {**REQUEST, "status": "Expired"}, "ev-3"),
        "ev-4": event("trip.booked", "trip", TRIP, "ev-4"),  # keyed by a digest: not recorded by the migration
    }
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, role) VALUES ('trav-1', 'guest')"))
        conn.execute(text("INSERT INTO conversations (id) VALUES ('c' || repeat('0', 20))"))
        for n, (event_id, body) in enumerate(told.items()):
            conn.execute(text(
                "INSERT INTO platform_events (id, type, occurred_at, payload, payload_hash, status) "
                "VALUES (:id, :type, now(), CAST(:payload AS jsonb), 'x', 'processed')"),
                {"id": event_id, "type": body["type"], "payload": json.dumps(body)})
            message_id = f"m{n:020d}"
            conn.execute(text("INSERT INTO messages (id, conversation_id, message) "
                              "VALUES (:id, 'c' || repeat('0', 20), 'told')"), {"id": message_id})
            conn.execute(text("INSERT INTO concierge_message_origins (message_id, kind, event_id, recipient_id) "
                              "VALUES (:m, 'event', :e, 'trav-1')"), {"m": message_id, "e": event_id})
    command.upgrade(cfg, "head")
    with engine.connect() as conn:
        rows = set(conn.execute(text(
            "SELECT kind, subject_id, version, recipient_id, event_id FROM concierge_facts")).all())
    expected = set()
    for event_id in ("ev-1", "ev-2", "ev-3"):
        body = told[event_id]
        fact = fact_of(parse_facts(body["type"], dt.datetime.now(dt.UTC), body["data"]))
        expected.add((fact.kind, fact.subject_id, fact.version, "trav-1", event_id))
    assert rows == expected
    command.downgrade(cfg, "0010")
