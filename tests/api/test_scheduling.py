"""Scheduled work (SPEC §5.3): each job run twice at a controlled time produces its effect once."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select

from concierge import scheduling
from concierge.models import PlatformEvent
from messaging.store.db import get_session, session_scope
from messaging.store.models import (
    ConciergeMessageOrigin,
    Message,
    Offer,
    Property,
    PropertyConversation,
    PropertyMessage,
    RequestToBook,
    Trip,
    User,
)
from tests.api.test_event_notifications import run

# 2026-12-01 12:00 UTC is 2026-12-02 01:00 in Auckland and 2026-12-01 04:00 in Los Angeles.
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def _seed(app: Any) -> None:
    with app.app_context(), session_scope() as s:
        s.add_all([User(id="tom", name="Tom", role="guest"), User(id="hal", name="Hal", role="host")])
        s.flush()
        s.add_all([
            Property(id=1, host_id="hal", name="Bach Kiwi", city="Auckland", address="1 Queen St",
                     timezone="Pacific/Auckland"),
            Property(id=2, host_id="hal", name="Casa Sol", city="Los Angeles", address="2 Sunset Blvd",
                     timezone="America/Los_Angeles", check_in_time=dt.time(16, 0)),
        ])
        s.flush()
        s.add_all([
            # tomorrow in Auckland (local today is 2 Dec)
            Trip(id=1, property_id=1, traveler_id="tom", check_in=dt.date(2026, 12, 3),
                 check_out=dt.date(2026, 12, 5), num_guests=2, status="Booked"),
            # tomorrow in Los Angeles (local today is 1 Dec)
            Trip(id=2, property_id=2, traveler_id="tom", check_in=dt.date(2026, 12, 2),
                 check_out=dt.date(2026, 12, 4), num_guests=2, status="Booked"),
            # tomorrow in Los Angeles but cancelled
            Trip(id=3, property_id=2, traveler_id="tom", check_in=dt.date(2026, 12, 2),
                 check_out=dt.date(2026, 12, 3), num_guests=1, status="Cancelled"),
            # not tomorrow anywhere
            Trip(id=4, property_id=2, traveler_id="tom", check_in=dt.date(2026, 12, 9),
                 check_out=dt.date(2026, 12, 10), num_guests=1, status="Booked"),
        ])


def _process_all(app: Any, now: dt.datetime = NOW) -> list[str]:
    """Process the pending events in id order, their notices written at ``now``."""
    with app.app_context():
        ids = list(get_session().scalars(
            select(PlatformEvent.id).where(PlatformEvent.status == "pending").order_by(PlatformEvent.id)))
        get_session().close()
    return [run(app, i, now) for i in ids]


def _concierge_texts(app: Any, user_id: str) -> list[str]:
    from messaging.store.models import ConciergeThread

    with app.app_context():
        s = get_session()
        thread = s.execute(select(ConciergeThread).where(ConciergeThread.user_id == user_id)).scalar_one_or_none()
        if thread is None:
            return []
        return list(s.scalars(select(Message.message).where(Message.conversation_id == thread.conversation_id)))


def test_check_in_reminders_follow_the_propertys_time_zone_once(app: Any) -> None:
    _seed(app)
    for _ in range(2):
        with app.app_context(), session_scope() as s:
            scheduling.schedule_check_in_reminders(s, NOW)
    with app.app_context():
        ids = sorted(get_session().scalars(select(PlatformEvent.id)))
    assert ids == [
        "scheduler:trip.check_in_reminder:1:2026-12-03",
        "scheduler:trip.check_in_reminder:2:2026-12-02",
    ]
    assert _process_all(app) == ["processed", "processed"]
    texts = _concierge_texts(app, "tom")
    assert len(texts) == 2
    assert any("Thu 3 Dec" in t and "1 Queen St" in t for t in texts)
    assert any("Wed 2 Dec" in t and "16:00" in t and "2 Sunset Blvd" in t for t in texts)


def test_offer_expiry_reminders_once_and_only_when_due(app: Any) -> None:
    _seed(app)
    with app.app_context(), session_scope() as s:
        s.add_all([
            Offer(id=1, property_id=2, traveler_id="tom", check_in=dt.date(2026, 12, 20),
                  check_out=dt.date(2026, 12, 22), total_price_cents=50000, currency="USD", status="Pending",
                  expires_at=NOW + dt.timedelta(hours=5)),
            Offer(id=2, property_id=2, traveler_id="tom", check_in=dt.date(2026, 12, 20),
                  check_out=dt.date(2026, 12, 22), total_price_cents=50000, currency="USD", status="Pending",
                  expires_at=NOW + dt.timedelta(days=3)),
            Offer(id=3, property_id=2, traveler_id="tom", check_in=dt.date(2026, 12, 20),
                  check_out=dt.date(2026, 12, 22), total_price_cents=50000, currency="USD", status="Accepted",
                  expires_at=NOW + dt.timedelta(hours=2)),
        ])
    for _ in range(2):
        with app.app_context(), session_scope() as s:
            scheduling.schedule_offer_expiry_reminders(s, NOW)
    assert _process_all(app) == ["processed"]
    with app.app_context():
        messages = list(get_session().scalars(select(Message.message).where(Message.user_id.is_(None))))
    assert len(messages) == 1 and "5 hours left" in messages[0] and "$500.00" in messages[0]


def test_requests_to_book_pending_for_a_day_expire_and_the_traveler_is_told_once(app: Any) -> None:
    _seed(app)
    with app.app_context(), session_scope() as s:
        s.add_all([
            RequestToBook(id=1, property_id=2, traveler_id="tom", check_in=dt.date(2026, 12, 20),
                          check_out=dt.date(2026, 12, 22), num_guests=2, total_price_cents=1, currency="USD",
                          status="Pending", created_at=NOW - dt.timedelta(hours=25)),
            RequestToBook(id=2, property_id=2, traveler_id="tom", check_in=dt.date(2026, 12, 20),
                          check_out=dt.date(2026, 12, 22), num_guests=2, total_price_cents=1, currency="USD",
                          status="Pending", created_at=NOW - dt.timedelta(hours=3)),
        ])
    for _ in range(2):
        with app.app_context(), session_scope() as s:
            scheduling.expire_requests_to_book(s, NOW)
    with app.app_context():
        s = get_session()
        assert s.get(RequestToBook, 1).status == "Expired"  # type: ignore[union-attr]
        assert s.get(RequestToBook, 2).status == "Pending"  # type: ignore[union-attr]
    assert _process_all(app) == ["processed"]
    texts = _concierge_texts(app, "tom")
    assert len(texts) == 1 and "expired" in texts[0] and "Sun 20 Dec" in texts[0]


def test_a_host_is_nudged_once_about_an_inquiry_left_unanswered(app: Any) -> None:
    _seed(app)
    with app.app_context(), session_scope() as s:
        s.add_all([
            PropertyConversation(id="t" * 21, traveler_id="tom", property_id=2, created_at=NOW - dt.timedelta(days=2)),
            PropertyConversation(id="u" * 21, traveler_id="tom", property_id=1, created_at=NOW - dt.timedelta(days=2)),
        ])
        s.flush()
        s.add_all([
            PropertyMessage(id="m" * 21, conversation_id="t" * 21, author_id="tom", message="Is there parking?",
                            created_at=NOW - dt.timedelta(hours=30)),
            # answered: no nudge
            PropertyMessage(id="n" * 21, conversation_id="u" * 21, author_id="tom", message="Pets?",
                            created_at=NOW - dt.timedelta(hours=30)),
            PropertyMessage(id="o" * 21, conversation_id="u" * 21, author_id="hal", message="Yes",
                            created_at=NOW - dt.timedelta(hours=29)),
        ])
    for _ in range(3):
        with app.app_context(), session_scope() as s:
            scheduling.nudge_waiting_hosts(s, NOW)
    texts = _concierge_texts(app, "hal")
    assert len(texts) == 1 and "Tom has been waiting 24 hours" in texts[0] and "Casa Sol" in texts[0]
    with app.app_context():
        count = get_session().execute(select(func.count()).select_from(ConciergeMessageOrigin)).scalar()
    assert count == 1


def test_nothing_is_due_yet(app: Any) -> None:
    _seed(app)
    earlier = NOW - dt.timedelta(days=5)
    with app.app_context(), session_scope() as s:
        assert scheduling.schedule_check_in_reminders(s, earlier) == 0
        assert scheduling.schedule_offer_expiry_reminders(s, earlier) == 0
        assert scheduling.expire_requests_to_book(s, earlier) == 0
        assert scheduling.nudge_waiting_hosts(s, earlier) == 0


def test_expiry_warnings_processed_after_a_backlog_are_judged_when_written(app: Any) -> None:
    """The scheduler found both at NOW; the worker, back after a 2-minute outage, writes at NOW + 2 minutes: the
    offer that expired meanwhile gets no warning (skipped, with the reason), the other says what is left then."""
    _seed(app)
    with app.app_context(), session_scope() as s:
        for offer_id, left in ((1, dt.timedelta(minutes=1)), (2, dt.timedelta(hours=5))):
            s.add(Offer(id=offer_id, property_id=2, traveler_id="tom", check_in=dt.date(2026, 12, 20),
                        check_out=dt.date(2026, 12, 22), total_price_cents=50000, currency="USD",
                        status="Pending", expires_at=NOW + left))
    with app.app_context(), session_scope() as s:
        assert scheduling.schedule_offer_expiry_reminders(s, NOW) == 2
    assert _process_all(app, NOW + dt.timedelta(minutes=2)) == ["skipped", "processed"]
    with app.app_context():
        s = get_session()
        expired = s.get(PlatformEvent, f"scheduler:offer.expiring:1:{(NOW + dt.timedelta(minutes=1)).isoformat()}")
        assert expired is not None and expired.status == "skipped"
        assert "the offer expired before the notice could be written" in (expired.last_error or "")
        texts = list(s.scalars(select(Message.message).where(Message.user_id.is_(None))))
        s.close()
    assert len(texts) == 1 and "4 hours 58 minutes left" in texts[0], texts


def test_check_in_reminders_processed_after_a_backlog_are_judged_when_written(app: Any) -> None:
    """Found at NOW, written at 00:30 UTC on 3 Dec: Los Angeles' check-in (2 Dec, 16:00 there) has begun, so its
    reminder is skipped with the reason; Auckland's (3 Dec, 15:00 there) is that day, so it says "today"."""
    _seed(app)
    with app.app_context(), session_scope() as s:
        assert scheduling.schedule_check_in_reminders(s, NOW) == 2
    assert _process_all(app, dt.datetime(2026, 12, 3, 0, 30, tzinfo=dt.UTC)) == ["processed", "skipped"]
    with app.app_context():
        s = get_session()
        los_angeles = s.get(PlatformEvent, "scheduler:trip.check_in_reminder:2:2026-12-02")
        assert los_angeles is not None and los_angeles.status == "skipped"
        assert "check-in had begun before the reminder could be written" in (los_angeles.last_error or "")
        s.close()
    [text] = _concierge_texts(app, "tom")
    assert "Check-in is today, Thu 3 Dec, from 15:00 at 1 Queen St" in text, text
