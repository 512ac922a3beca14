"""Every platform event type end to end (SPEC §5.1): intake over HTTP, processing by the task, and the
right message to the right people with the facts formatted for people — or a readable failure."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select

from concierge import processing
from concierge.models import OfferThread, PlatformEvent
from messaging.store.db import get_session, session_scope, utcnow
from messaging.store.models import ConciergeMessageOrigin, OutboxEntry
from tasks.concierge_tasks import process_event

HOST = {"id": "host-1", "name": "Helena", "role": "host"}
TRAVELER = {"id": "trav-1", "name": "Tomás", "role": "guest"}
PROPERTY = {"id": 7, "hostId": "host-1", "name": "Casa Azul", "city": "Lisbon", "address": "Rua das Flores 12",
            "timezone": "Europe/Lisbon", "checkInTime": "16:00", "checkOutTime": "11:00"}
OFFER = {"id": 70, "propertyId": 7, "travelerId": "trav-1", "checkIn": "2026-12-20", "checkOut": "2026-12-23",
         "totalPriceCents": 123456, "currency": "USD", "status": "Pending", "expiresAt": "2026-12-02T18:00:00Z"}
REQUEST = {"id": 71, "propertyId": 7, "travelerId": "trav-1", "checkIn": "2026-12-20", "checkOut": "2026-12-23",
           "numGuests": 3, "totalPriceCents": 9950, "currency": "EUR", "status": "Pending",
           "createdAt": "2026-12-01T09:00:00Z"}
TRIP = {"id": 72, "propertyId": 7, "travelerId": "trav-1", "checkIn": "2026-12-20", "checkOut": "2026-12-23",
        "numGuests": 3, "status": "Booked"}

# type → (record key, record, {recipient: facts its message must contain})
DATES = "Sun 20 Dec – Wed 23 Dec (3 nights)"
CASES: dict[str, tuple[str, dict[str, Any], dict[str, list[str]]]] = {
    "offer.created": ("offer", OFFER, {"trav-1": ["Casa Azul in Lisbon", DATES, "$1,234.56",
                                                  "Wed 2 Dec at 18:00 (Europe/Lisbon)"]}),
    "offer.expiring": ("offer", OFFER, {"trav-1": [
        "expires tomorrow, Wed 2 Dec at 18:00 (Europe/Lisbon): 1 day 8 hours left", "$1,234.56"]}),
    "offer.expired": ("offer", OFFER, {"trav-1": ["expired", "no longer available", DATES]}),
    "offer.withdrawn": ("offer", OFFER, {"trav-1": ["withdrew", "no longer available"]}),
    "offer.accepted": ("offer", OFFER, {"trav-1": ["accepted", "$1,234.56", "16:00"]}),
    "request_to_book.created": ("requestToBook", REQUEST, {
        "host-1": ["Tomás asked to book", DATES, "3 guests", "€99.50",
                   "the request expires tomorrow, Wed 2 Dec at 09:00"],
        "trav-1": ["was sent to the host", "before the request expires tomorrow, Wed 2 Dec at 09:00"],
    }),
    "request_to_book.approved": ("requestToBook", REQUEST, {"trav-1": ["approved", DATES]}),
    "request_to_book.denied": ("requestToBook", REQUEST, {"trav-1": ["declined", DATES]}),
    "request_to_book.withdrawn": ("requestToBook", REQUEST, {"trav-1": ["withdrawn", DATES]}),
    "request_to_book.expired": ("requestToBook", REQUEST, {"trav-1": ["expired", "24 hours"]}),
    "trip.booked": ("trip", TRIP, {
        "trav-1": ["booked", DATES, "3 guests", "Rua das Flores 12", "16:00", "11:00"],
        "host-1": ["Tomás booked Casa Azul", DATES, "3 guests"],
    }),
    "trip.check_in_reminder": ("trip", TRIP, {"trav-1": ["tomorrow", "Sun 20 Dec", "16:00", "Rua das Flores 12"]}),
    "trip.check_out_reminder": ("trip", TRIP, {"trav-1": ["check-out", "Wed 23 Dec", "11:00"]}),
    "trip.cancelled": ("trip", TRIP, {"trav-1": ["cancelled", DATES], "host-1": ["Tomás's trip", "cancelled"]}),
}


# The events' occurredAt, and when the worker writes their notices unless a test says otherwise.
OCCURRED_AT = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
# A reminder of check-in tomorrow is written the day before it (check-in 20 Dec, in Lisbon).
WRITTEN_AT = {"trip.check_in_reminder": dt.datetime(2026, 12, 19, 10, 0, tzinfo=dt.UTC)}


def event(event_type: str, key: str, record: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or f"ev-{event_type}",
        "type": event_type,
        "occurredAt": OCCURRED_AT.isoformat(),
        "data": {"host": HOST, "traveler": TRAVELER, "property": PROPERTY, key: copy.deepcopy(record)},
    }


def run(app: Any, event_id: str, now: dt.datetime | None = None) -> str:
    """Process the event as the concierge.process_event task does; with ``now``, its notices are written at that
    moment (the task's two steps, with the moment given), else by the task itself at the current time."""
    with app.app_context():
        if now is None:
            return str(process_event.run(event_id))
        with session_scope() as session:
            started = processing.begin_processing(session, event_id)
        if started is None:
            return "nothing to do"
        with session_scope() as session:
            return processing.process_event(session, event_id, started, now)


@pytest.mark.parametrize("event_type", sorted(CASES))
def test_each_event_type_tells_the_right_people_the_right_facts(
    app: Any, client: Any, auth: Any, event_type: str
) -> None:
    key, record, expected = CASES[event_type]
    service = auth("platform", "service")
    body = event(event_type, key, record)
    accepted = client.post("/v1/events", json=body, headers=service)
    assert accepted.status_code == 202, accepted.json
    assert accepted.json["status"] == "pending"
    with app.app_context():  # the outbox entry was written with the event
        entry = get_session().execute(select(OutboxEntry)).scalar_one()
        assert entry.task_name == "concierge.process_event" and entry.args == [body["id"]]

    assert run(app, body["id"], WRITTEN_AT.get(event_type, OCCURRED_AT)) == "processed"
    assert run(app, body["id"]) == "nothing to do"  # a redelivery changes nothing
    stored = client.get(f"/v1/events/{body['id']}", headers=service).json
    assert stored["status"] == "processed" and stored["attempts"] == 1
    assert len(stored["messages"]) == len(expected)

    for recipient, facts in expected.items():
        headers = auth(recipient, "host" if recipient.startswith("host") else "guest")
        if key == "offer":
            with app.app_context():
                thread = get_session().get(OfferThread, OFFER["id"])
                assert thread is not None
                conversation_id = thread.conversation_id
            conversation = client.get(f"/v1/conversations/{conversation_id}", headers=headers).json
            assert conversation["offerId"] == OFFER["id"]
        else:
            conversation = client.get("/v1/concierge", headers=headers).json
            conversation_id = conversation["id"]
        messages = client.get(f"/v1/conversations/{conversation_id}/messages", headers=headers).json["items"]
        mine = [m for m in messages if m["senderType"] == "concierge"]
        assert len(mine) == 1, messages
        assert mine[0]["userId"] is None
        for fact in facts:
            assert fact.lower() in mine[0]["message"].lower(), (fact, mine[0]["message"])


def test_the_same_event_twice_is_one_event_and_another_body_is_a_conflict(app: Any, client: Any, auth: Any) -> None:
    service = auth("platform", "service")
    body = event("trip.booked", "trip", TRIP, "ev-dup")
    assert client.post("/v1/events", json=body, headers=service).status_code == 202
    reordered = {k: body[k] for k in reversed(list(body))}
    again = client.post("/v1/events", json=reordered, headers=service)
    assert again.status_code == 200 and again.json["id"] == "ev-dup"
    changed = copy.deepcopy(body)
    changed["data"]["trip"]["numGuests"] = 5
    conflict = client.post("/v1/events", json=changed, headers=service)
    assert conflict.status_code == 409 and conflict.content_type == "application/problem+json"
    with app.app_context():
        session = get_session()
        assert session.execute(select(func.count()).select_from(PlatformEvent)).scalar() == 1
        assert session.execute(select(func.count()).select_from(OutboxEntry)).scalar() == 1


def test_unknown_types_and_missing_records_are_refused(client: Any, auth: Any) -> None:
    service = auth("platform", "service")
    unknown = client.post("/v1/events", json=event("trip.teleported", "trip", TRIP), headers=service)
    assert unknown.status_code == 422 and "trip.booked" in unknown.json["detail"]
    no_subject = event("trip.booked", "trip", TRIP)
    del no_subject["data"]["trip"]
    missing = client.post("/v1/events", json=no_subject, headers=service)
    assert missing.status_code == 422 and missing.json["errors"][0]["field"] == "data.trip"
    stranger = event("trip.booked", "trip", TRIP)
    del stranger["data"]["host"]  # the property's host is neither known nor carried
    refused = client.post("/v1/events", json=stranger, headers=service)
    assert refused.status_code == 422 and "hostId" in refused.json["detail"]
    naive = event("trip.booked", "trip", TRIP)
    naive["occurredAt"] = "2026-12-01T09:30:00"
    assert client.post("/v1/events", json=naive, headers=service).status_code == 422
    as_guest = client.post("/v1/events", json=event("trip.booked", "trip", TRIP), headers=auth("g", "guest"))
    assert as_guest.status_code == 403
    assert client.get("/v1/events/nope", headers=service).status_code == 404


def _counts(app: Any) -> dict[str, int]:
    from messaging.store.models import DeletedUser, Property, Trip, User

    with app.app_context():
        session = get_session()
        counted = {model.__tablename__: session.execute(select(func.count()).select_from(model)).scalar_one()
                   for model in (PlatformEvent, OutboxEntry, User, Property, Trip, DeletedUser)}
        session.close()
        return counted


def test_a_refused_event_writes_nothing_and_names_every_missing_reference(app: Any, client: Any, auth: Any) -> None:
    """Intake is all or nothing (on PostgreSQL a single statement): a 422 for references the service does not have
    names each of them and leaves no record, event or outbox entry behind; a 409 leaves the records as they were."""
    service = auth("platform", "service")
    before = _counts(app)
    stranger = event("trip.booked", "trip", {**TRIP, "offerId": 901, "requestToBookId": 902}, "ev-refs")
    del stranger["data"]["host"]  # the property's host is neither known nor carried
    refused = client.post("/v1/events", json=stranger, headers=service)
    assert refused.status_code == 422, refused.json
    assert {e["field"] for e in refused.json["errors"]} == {
        "data.property.hostId", "data.trip.offerId", "data.trip.requestToBookId"}
    assert _counts(app) == before  # the carried traveler, property and trip were not written either
    assert client.get("/v1/events/ev-refs", headers=service).status_code == 404

    body = event("trip.booked", "trip", TRIP, "ev-kept")
    assert client.post("/v1/events", json=body, headers=service).status_code == 202
    after = _counts(app)
    changed = copy.deepcopy(body)
    changed["data"]["trip"]["numGuests"] = 5
    changed["data"]["traveler"]["name"] = "Somebody else"
    assert client.post("/v1/events", json=changed, headers=service).status_code == 409
    assert _counts(app) == after
    with app.app_context():
        from messaging.store.models import Trip, User

        session = get_session()
        assert session.get(Trip, TRIP["id"]).num_guests == 3  # type: ignore[union-attr]
        assert session.get(User, "trav-1").name == "Tomás"  # type: ignore[union-attr]
        session.close()


def test_an_event_puts_back_the_people_it_carries_and_may_name_one_person_twice(
    app: Any, client: Any, auth: Any
) -> None:
    service = auth("platform", "service")
    first = event("trip.booked", "trip", TRIP, "ev-1")
    assert client.post("/v1/events", json=first, headers=service).status_code == 202
    assert client.delete("/v1/users/trav-1", headers=service).status_code == 204
    assert _counts(app)["deleted_users"] == 1
    again = event("trip.booked", "trip", {**TRIP, "id": 74}, "ev-2")
    assert client.post("/v1/events", json=again, headers=service).status_code == 202
    assert _counts(app)["deleted_users"] == 0  # the platform sent them again: they are back
    assert client.get("/v1/me", headers=auth("trav-1", "guest")).status_code == 200
    # The host books their own place: one person as host and traveler, written once, the later record standing.
    selfish = event("trip.booked", "trip", {**TRIP, "id": 75, "travelerId": "host-1"}, "ev-3")
    selfish["data"]["traveler"] = {**HOST, "name": "Helena H."}
    assert client.post("/v1/events", json=selfish, headers=service).status_code == 202
    with app.app_context():
        from messaging.store.models import User

        assert get_session().get(User, "host-1").name == "Helena H."  # type: ignore[union-attr]


def test_inconsistent_records_end_failed_with_a_readable_error_and_no_message(
    app: Any, client: Any, auth: Any
) -> None:
    service = auth("platform", "service")
    backwards = event("trip.booked", "trip", {**TRIP, "checkIn": "2026-12-23", "checkOut": "2026-12-20"}, "ev-back")
    assert client.post("/v1/events", json=backwards, headers=service).status_code == 202
    assert run(app, "ev-back") == "failed"
    stored = client.get("/v1/events/ev-back", headers=service).json
    assert stored["status"] == "failed" and "checkOut" in stored["lastError"] and stored["messages"] == []
    elsewhere = event("trip.booked", "trip", {**TRIP, "id": 73}, "ev-else")
    elsewhere["data"]["property"] = {**PROPERTY, "id": 8}
    assert client.post("/v1/events", json=elsewhere, headers=service).status_code == 202
    assert run(app, "ev-else") == "failed"
    assert "property" in client.get("/v1/events/ev-else", headers=service).json["lastError"]
    with app.app_context():
        assert get_session().execute(select(func.count()).select_from(ConciergeMessageOrigin)).scalar() == 0


def test_events_that_no_longer_apply_are_skipped(app: Any, client: Any, auth: Any) -> None:
    service = auth("platform", "service")
    cancelled = event("trip.check_in_reminder", "trip", {**TRIP, "status": "Cancelled"}, "ev-cancelled")
    accepted = event("offer.expiring", "offer", {**OFFER, "status": "Accepted"}, "ev-accepted")
    for body in (cancelled, accepted):
        assert client.post("/v1/events", json=body, headers=service).status_code == 202
        assert run(app, body["id"]) == "skipped"
        assert client.get(f"/v1/events/{body['id']}", headers=service).json["messages"] == []


def _written(app: Any, client: Any, auth: Any, body: dict[str, Any], now: dt.datetime | None) -> dict[str, Any]:
    """Post ``body``, process it with its notices written at ``now`` (None: by the task, at the current time),
    and return the event as ``GET /v1/events/{id}`` shows it."""
    service = auth("platform", "service")
    assert client.post("/v1/events", json=body, headers=service).status_code == 202
    run(app, body["id"], now)
    return dict(client.get(f"/v1/events/{body['id']}", headers=service).json)


def _no_concierge_message(app: Any) -> bool:
    with app.app_context():
        return get_session().execute(select(func.count()).select_from(ConciergeMessageOrigin)).scalar() == 0


def test_an_expiry_warning_written_after_the_offer_expired_is_skipped_with_the_reason(
    app: Any, client: Any, auth: Any
) -> None:
    """The worker came back after the offer's expiresAt (18:00 on 2 Dec): nothing is sent, and the event says
    why; an offer.created written that late is skipped the same way (its expiry would be stated as ahead)."""
    late = dt.datetime(2026, 12, 2, 18, 1, tzinfo=dt.UTC)
    for event_type in ("offer.expiring", "offer.created"):
        stored = _written(app, client, auth, event(event_type, "offer", OFFER), late)
        assert stored["status"] == "skipped" and stored["messages"] == []
        assert "the offer expired before the notice could be written" in stored["lastError"]
        assert "Wed 2 Dec at 18:00 (Europe/Lisbon)" in stored["lastError"]
    assert _no_concierge_message(app)


def test_an_expiry_warning_counts_the_time_left_from_the_moment_it_is_written(
    app: Any, client: Any, auth: Any
) -> None:
    """occurredAt was the day before; written 3 hours before the expiry, it says 3 hours, not 1 day 11 hours."""
    stored = _written(app, client, auth, event("offer.expiring", "offer", OFFER),
                      dt.datetime(2026, 12, 2, 15, 0, tzinfo=dt.UTC))
    assert stored["status"] == "processed"
    [note] = stored["messages"]
    assert "expires today, Wed 2 Dec at 18:00 (Europe/Lisbon): 3 hours left." in note["message"], note["message"]


def test_the_worker_judges_a_notice_at_the_current_time(app: Any, client: Any, auth: Any) -> None:
    """Through the task itself (the current time, no moment given): a warning that waited a day is worded from
    now, and one whose offer expired a minute ago is skipped."""
    now = utcnow().replace(microsecond=0)
    soon = {**OFFER, "id": 80, "expiresAt": (now + dt.timedelta(hours=3, seconds=30)).isoformat()}
    waited = event("offer.expiring", "offer", soon, "ev-waited")
    waited["occurredAt"] = (now - dt.timedelta(days=1)).isoformat()
    stored = _written(app, client, auth, waited, None)
    assert stored["status"] == "processed", stored
    assert ": 3 hours left." in stored["messages"][0]["message"]

    gone = {**OFFER, "id": 81, "expiresAt": (now - dt.timedelta(minutes=1)).isoformat()}
    late = event("offer.expiring", "offer", gone, "ev-late")
    late["occurredAt"] = (now - dt.timedelta(hours=2)).isoformat()
    stored = _written(app, client, auth, late, None)
    assert stored["status"] == "skipped" and stored["messages"] == []
    assert "the offer expired before the notice could be written" in stored["lastError"]


def test_a_check_in_reminder_is_worded_and_judged_when_it_is_written(app: Any, client: Any, auth: Any) -> None:
    """Check-in is 20 Dec from 16:00 in Lisbon. The reminder posted on the 19th says "tomorrow" only if written
    that day; written on the 20th before 16:00 it says "today"; after 16:00 it is skipped with the reason."""
    def reminder(trip_id: int) -> dict[str, Any]:  # one trip each: one reminder per trip is sent at most
        body = event("trip.check_in_reminder", "trip", {**TRIP, "id": trip_id}, f"ev-{trip_id}")
        return {**body, "occurredAt": "2026-12-19T10:00:00Z"}

    stored = _written(app, client, auth, reminder(81), dt.datetime(2026, 12, 19, 22, 0, tzinfo=dt.UTC))
    assert "Check-in is tomorrow, Sun 20 Dec, from 16:00" in stored["messages"][0]["message"]

    stored = _written(app, client, auth, reminder(82), dt.datetime(2026, 12, 20, 9, 0, tzinfo=dt.UTC))
    text = stored["messages"][0]["message"]
    assert "Check-in is today, Sun 20 Dec, from 16:00" in text and "tomorrow" not in text

    stored = _written(app, client, auth, reminder(83), dt.datetime(2026, 12, 20, 16, 5, tzinfo=dt.UTC))
    assert stored["status"] == "skipped" and stored["messages"] == []
    assert "check-in had begun before the reminder could be written" in stored["lastError"]
    assert "Sun 20 Dec at 16:00 (Europe/Lisbon)" in stored["lastError"]

    checkout = event("trip.check_out_reminder", "trip", {**TRIP, "id": 84}, "ev-checked-out")
    stored = _written(app, client, auth, checkout, dt.datetime(2026, 12, 23, 11, 30, tzinfo=dt.UTC))
    assert stored["status"] == "skipped" and "check-out had passed" in stored["lastError"]


def test_tomorrow_is_the_propertys_tomorrow_when_the_reminder_is_written(app: Any, client: Any, auth: Any) -> None:
    """At 12:00 UTC on 19 Dec it is already 01:00 on the 20th in Auckland: check-in on the 21st is tomorrow
    there (though the day after tomorrow in UTC), and check-in on the 20th is today."""
    auckland = {**PROPERTY, "timezone": "Pacific/Auckland"}
    written_at = dt.datetime(2026, 12, 19, 12, 0, tzinfo=dt.UTC)
    for trip_id, check_in, says in ((90, "2026-12-21", "tomorrow, Mon 21 Dec"),
                                    (91, "2026-12-20", "today, Sun 20 Dec")):
        body = event("trip.check_in_reminder", "trip", {**TRIP, "id": trip_id, "checkIn": check_in}, f"ev-{trip_id}")
        body["data"]["property"] = auckland
        stored = _written(app, client, auth, body, written_at)
        assert f"Check-in is {says}, from 16:00" in stored["messages"][0]["message"], stored


def test_a_failed_event_can_be_retried(app: Any, client: Any, auth: Any) -> None:
    from concierge.processing import retry_failed_event
    from messaging.store.db import session_scope

    service = auth("platform", "service")
    backwards = event("trip.booked", "trip", {**TRIP, "checkIn": "2026-12-23", "checkOut": "2026-12-20"}, "ev-r")
    client.post("/v1/events", json=backwards, headers=service)
    assert run(app, "ev-r") == "failed"
    with app.app_context(), session_scope() as s:
        retried = retry_failed_event(s, "ev-r")
        assert retried is not None and retried.status == "pending"
    assert run(app, "ev-r") == "failed"
    assert client.get("/v1/events/ev-r", headers=service).json["attempts"] == 2


@pytest.mark.expect_errors(r"event ev-stuck failed after 7 tries")
def test_an_event_that_keeps_failing_transiently_ends_failed_then_retries_cleanly(
    pg_app: Any, pg_client: Any, auth: Any
) -> None:
    """A real transient error on every try (the recipient's conversation row is locked by another session and
    the database gives up waiting): the task retries up to its limit, then records ``failed`` with the
    error; once the lock is gone an admin's retry delivers each message once."""
    import psycopg
    from sqlalchemy import text

    from messaging.store.db import get_engine
    from messaging.store.models import ConversationStats
    from tasks.concierge_tasks import MAX_RETRIES
    from tests.conftest import PG_TEST_DB, pg_database_url

    service, tomas = auth("platform", "service"), auth("trav-1", "guest")
    concierge = pg_client.get("/v1/concierge", headers=tomas).json["id"]  # the row the event will update
    assert pg_client.post("/v1/events", json=event("trip.booked", "trip", TRIP, "ev-stuck"),
                          headers=service).status_code == 202
    plain_url = pg_database_url(PG_TEST_DB).replace("postgresql+psycopg://", "postgresql://", 1)
    with pg_app.app_context():
        engine = get_engine()
        with engine.begin() as conn:
            conn.execute(text(f'ALTER DATABASE "{PG_TEST_DB}" SET lock_timeout = \'150ms\''))
        engine.dispose()  # new connections take the setting
        try:
            with psycopg.connect(plain_url) as locker:
                locker.execute("SELECT 1 FROM conversation_stats WHERE conversation_id = %s FOR UPDATE",
                               (concierge,))
                assert process_event.apply(args=["ev-stuck"]).get() == "failed"  # eager: retries run inline
                locker.rollback()
        finally:
            with engine.begin() as conn:
                conn.execute(text(f'ALTER DATABASE "{PG_TEST_DB}" RESET lock_timeout'))
            engine.dispose()
        stored = get_session().get(PlatformEvent, "ev-stuck")
        assert stored is not None and stored.status == "failed" and stored.attempts == MAX_RETRIES + 1
        assert f"gave up after {MAX_RETRIES + 1} tries" in (stored.last_error or "")
        assert "lock" in (stored.last_error or "")
        assert get_session().get(ConversationStats, concierge).message_count == 0  # nothing half-written
        get_session().close()

    assert pg_client.post("/v1/admin/events/ev-stuck/retry", headers=auth("root", "admin")).status_code == 200
    assert run(pg_app, "ev-stuck") == "processed"
    assert run(pg_app, "ev-stuck") == "nothing to do"  # a redelivery changes nothing
    body = pg_client.get("/v1/events/ev-stuck", headers=service).json
    assert body["status"] == "processed" and len(body["messages"]) == 2  # the traveler's and the host's
    mine = pg_client.get(f"/v1/conversations/{concierge}/messages", headers=tomas).json["items"]
    assert [m["senderType"] for m in mine] == ["concierge"]


def test_a_recipient_gone_before_processing_ends_the_event_failed_naming_them(app: Any, client: Any, auth: Any) -> None:
    """The intake checked every person the event names; if one is removed outright before the worker runs, the
    event fails with a readable error and nobody, not even the people still there, gets a message."""
    from sqlalchemy import text

    from messaging.store.db import session_scope

    service = auth("platform", "service")
    gone = event("trip.booked", "trip", TRIP, "ev-gone")
    assert client.post("/v1/events", json=gone, headers=service).status_code == 202
    with app.app_context(), session_scope() as s:
        s.execute(text("DELETE FROM trips"))
        s.execute(text("DELETE FROM properties"))
        s.execute(text("DELETE FROM users WHERE id = 'host-1'"))
    assert run(app, "ev-gone") == "failed"
    stored = client.get("/v1/events/ev-gone", headers=service).json
    assert stored["lastError"] == "recipient user(s) unknown: host-1" and stored["messages"] == []
    with app.app_context():
        assert get_session().execute(select(func.count()).select_from(ConciergeMessageOrigin)).scalar() == 0


def test_the_same_event_processed_by_eight_workers_at_once_writes_each_message_once(
    pg_app: Any, pg_client: Any, auth: Any
) -> None:
    """Eight runs of one event at the same moment (a redelivery racing the first delivery, on PostgreSQL's row
    locks): one of them writes the two messages, the others find the event taken or finished, and nothing is
    written twice."""
    import threading

    from messaging.store.models import Message

    service = auth("platform", "service")
    assert pg_client.post("/v1/events", json=event("trip.booked", "trip", TRIP, "ev-race"),
                          headers=service).status_code == 202
    barrier = threading.Barrier(8)
    results: list[str] = []

    def one() -> None:
        barrier.wait()
        results.append(run(pg_app, "ev-race"))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(set(results)) in (["processed"], ["nothing to do", "processed"]) and len(results) == 8
    body = pg_client.get("/v1/events/ev-race", headers=service).json
    assert body["status"] == "processed" and len(body["messages"]) == 2
    with pg_app.app_context():
        assert get_session().execute(select(func.count()).select_from(Message)).scalar() == 2


def test_records_sent_again_unchanged_are_not_rewritten(pg_app: Any, pg_client: Any, auth: Any) -> None:
    """Every event carries its traveler, host and property again; a record that did not change keeps its row
    version (no new tuple, index entries or WAL), and one that did is updated."""
    from sqlalchemy import text

    service = auth("platform", "service")

    def versions() -> dict[str, str]:
        with pg_app.app_context():
            rows = get_session().execute(text(
                "SELECT 'user:' || id, xmin::text FROM users WHERE id IN ('host-1', 'trav-1') "
                "UNION ALL SELECT 'property:' || id, xmin::text FROM properties WHERE id = 7")).all()
            get_session().close()
        return dict(rows)  # type: ignore[arg-type]

    booked = event("trip.booked", "trip", TRIP, "ev-1")
    assert pg_client.post("/v1/events", json=booked, headers=service).status_code == 202
    first = versions()
    cancelled = event("trip.cancelled", "trip", {**TRIP, "status": "Cancelled"}, "ev-2")  # the trip changes
    assert pg_client.post("/v1/events", json=cancelled, headers=service).status_code == 202
    assert versions() == first
    renamed = event("trip.check_in_reminder", "trip", TRIP, "ev-3")
    renamed["data"]["host"] = {**HOST, "name": "Helena H."}
    assert pg_client.post("/v1/events", json=renamed, headers=service).status_code == 202
    after = versions()
    assert after["user:host-1"] != first["user:host-1"]
    assert after["user:trav-1"] == first["user:trav-1"] and after["property:7"] == first["property:7"]
    with pg_app.app_context():
        assert get_session().execute(text("SELECT name FROM users WHERE id = 'host-1'")).scalar() == "Helena H."
