"""True times (SPEC §5.1): every notice says days and deadlines from the moment it is written, in the property's
time zone — "today", "tomorrow" only the day before, "in 3 days", a date otherwise — and a notice whose moment
has passed is skipped with the reason, never sent stating a past deadline as ahead."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from concierge import formatting as fmt
from tests.api.test_event_notifications import OFFER, PROPERTY, REQUEST, TRIP, event, run


def _at(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC)


def _written(app: Any, client: Any, auth: Any, body: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    """Post ``body``, write its notices at ``now``, and return the event as ``GET /v1/events/{id}`` shows it."""
    service = auth("platform", "service")
    assert client.post("/v1/events", json=body, headers=service).status_code == 202
    run(app, body["id"], now)
    return dict(client.get(f"/v1/events/{body['id']}", headers=service).json)


def _only_text(stored: dict[str, Any]) -> str:
    assert stored["status"] == "processed", stored
    [message] = stored["messages"]
    return str(message["message"])


# Check-in of TRIP: Sun 20 Dec 2026 from 16:00 in Lisbon (UTC in December). One trip each: a trip's reminder for
# its check-in date is one fact, told once.
CHECK_IN_WORDING = [
    (_at(2026, 9, 1), "Check-in is on Sun 20 Dec, from 16:00"),  # months before
    (_at(2026, 12, 13), "Check-in is on Sun 20 Dec, from 16:00"),  # a week before: the date
    (_at(2026, 12, 17), "Check-in is in 3 days, Sun 20 Dec, from 16:00"),
    (_at(2026, 12, 19), "Check-in is tomorrow, Sun 20 Dec, from 16:00"),  # the day before
    (_at(2026, 12, 19, 23, 59), "Check-in is tomorrow, Sun 20 Dec, from 16:00"),
    (_at(2026, 12, 20, 0, 1), "Check-in is today, Sun 20 Dec, from 16:00"),  # the same day, before check-in
    (_at(2026, 12, 20, 15, 59), "Check-in is today, Sun 20 Dec, from 16:00"),
]


@pytest.mark.parametrize(("now", "says"), CHECK_IN_WORDING, ids=[n.isoformat() for n, _ in CHECK_IN_WORDING])
def test_a_check_in_reminder_says_the_day_as_it_is_when_written(
    app: Any, client: Any, auth: Any, now: dt.datetime, says: str
) -> None:
    body = event("trip.check_in_reminder", "trip", TRIP, "ev-reminder")
    text = _only_text(_written(app, client, auth, body, now))
    assert text.startswith(says), text
    relative = ("today", "tomorrow", "in 3 days")
    assert [word for word in relative if word in text] == [word for word in relative if word in says], text


def test_a_reminder_months_ahead_of_a_check_in_next_year_gives_the_date_with_its_year(
    app: Any, client: Any, auth: Any
) -> None:
    trip = {**TRIP, "id": 73, "checkIn": "2027-03-01", "checkOut": "2027-03-04"}
    text = _only_text(_written(app, client, auth, event("trip.check_in_reminder", "trip", trip, "ev-early"),
                               _at(2026, 12, 8)))
    assert text.startswith("Check-in is on Mon 1 Mar 2027, from 16:00"), text
    assert "tomorrow" not in text and "today" not in text


def test_tomorrow_is_the_day_before_in_the_propertys_time_zone(app: Any, client: Any, auth: Any) -> None:
    """23:30 UTC on 18 Dec is already 19 Dec in Helsinki (UTC+2), the day before check-in there; in Lisbon it is
    still the 18th, two days before."""
    helsinki = event("trip.check_in_reminder", "trip", {**TRIP, "id": 74}, "ev-helsinki")
    helsinki["data"]["property"] = {**PROPERTY, "id": 8, "timezone": "Europe/Helsinki"}
    helsinki["data"]["trip"]["propertyId"] = 8
    lisbon = event("trip.check_in_reminder", "trip", {**TRIP, "id": 75}, "ev-lisbon")
    now = _at(2026, 12, 18, 23, 30)
    assert _only_text(_written(app, client, auth, helsinki, now)).startswith("Check-in is tomorrow, Sun 20 Dec")
    assert _only_text(_written(app, client, auth, lisbon, now)).startswith("Check-in is in 2 days, Sun 20 Dec")


def test_a_check_in_reminder_written_after_check_in_began_is_skipped_with_the_reason(
    app: Any, client: Any, auth: Any
) -> None:
    for n, now in enumerate((_at(2026, 12, 20, 16, 0), _at(2026, 12, 21))):
        body = event("trip.check_in_reminder", "trip", {**TRIP, "id": 76 + n}, f"ev-late-{n}")
        stored = _written(app, client, auth, body, now)
        assert stored["status"] == "skipped" and stored["messages"] == [], stored
        assert stored["lastError"] == (f"check-in had begun before the reminder could be written "
                                       f"(trip {76 + n}: Sun 20 Dec at 16:00 (Europe/Lisbon))")


def test_a_check_out_reminder_is_worded_when_written_and_skipped_once_check_out_passed(
    app: Any, client: Any, auth: Any
) -> None:
    """Check-out of TRIP: Wed 23 Dec by 11:00."""
    for trip_id, now, says in ((80, _at(2026, 12, 21), "is in 2 days, Wed 23 Dec, by 11:00"),
                               (81, _at(2026, 12, 22), "is tomorrow, Wed 23 Dec, by 11:00"),
                               (82, _at(2026, 12, 23, 8, 0), "is today, Wed 23 Dec, by 11:00")):
        body = event("trip.check_out_reminder", "trip", {**TRIP, "id": trip_id}, f"ev-out-{trip_id}")
        assert says in _only_text(_written(app, client, auth, body, now))
    late = _written(app, client, auth, event("trip.check_out_reminder", "trip", {**TRIP, "id": 83}, "ev-out-83"),
                    _at(2026, 12, 23, 11, 0))
    assert late["status"] == "skipped" and "check-out had passed" in late["lastError"]


def test_an_offer_says_when_it_expires_from_the_moment_it_is_written(app: Any, client: Any, auth: Any) -> None:
    """OFFER expires Wed 2 Dec at 18:00 in Lisbon."""
    for offer_id, now, says in ((90, _at(2026, 11, 20), "It expires Wed 2 Dec at 18:00 (Europe/Lisbon)."),
                                (91, _at(2026, 11, 27), "It expires in 5 days, Wed 2 Dec at 18:00 (Europe/Lisbon)."),
                                (92, _at(2026, 12, 1), "It expires tomorrow, Wed 2 Dec at 18:00 (Europe/Lisbon)."),
                                (93, _at(2026, 12, 2), "It expires today, Wed 2 Dec at 18:00 (Europe/Lisbon).")):
        body = event("offer.created", "offer", {**OFFER, "id": offer_id}, f"ev-offer-{offer_id}")
        text = _only_text(_written(app, client, auth, body, now))
        assert text.endswith(says), text


def test_an_expiry_warning_after_the_offer_expired_is_skipped(app: Any, client: Any, auth: Any) -> None:
    soon = _written(app, client, auth, event("offer.expiring", "offer", {**OFFER, "id": 94}, "ev-soon"),
                    _at(2026, 12, 2, 17, 30))
    assert "expires today, Wed 2 Dec at 18:00 (Europe/Lisbon): 30 minutes left." in _only_text(soon)
    late = _written(app, client, auth, event("offer.expiring", "offer", {**OFFER, "id": 95}, "ev-gone"),
                    _at(2026, 12, 2, 18, 0))
    assert late["status"] == "skipped" and late["messages"] == []
    assert late["lastError"] == ("the offer expired before the notice could be written "
                                 "(offer 95 expired Wed 2 Dec at 18:00 (Europe/Lisbon))")


def test_a_request_to_book_written_after_the_hosts_time_ran_out_is_skipped(app: Any, client: Any, auth: Any) -> None:
    """Made on Sat 5 Dec at 09:00: the host has until Sun 6 Dec at 09:00. Written that Saturday it says
    "tomorrow"; written on 7 Dec it would state a past deadline as ahead, so it is skipped."""
    request = {**REQUEST, "createdAt": "2026-12-05T09:00:00Z"}
    timely = _written(app, client, auth, event("request_to_book.created", "requestToBook", {**request, "id": 96},
                                               "ev-asked"), _at(2026, 12, 5, 9, 5))
    texts = [m["message"] for m in timely["messages"]]
    assert len(texts) == 2
    assert all("the request expires tomorrow, Sun 6 Dec at 09:00 (Europe/Lisbon)" in t for t in texts), texts
    late = _written(app, client, auth, event("request_to_book.created", "requestToBook", {**request, "id": 97},
                                             "ev-asked-late"), _at(2026, 12, 7))
    assert late["status"] == "skipped" and late["messages"] == []
    assert late["lastError"] == ("the host's time to answer ended before the notice could be written "
                                 "(request 97: Sun 6 Dec at 09:00 (Europe/Lisbon))")


def test_a_booking_confirmation_counts_the_days_from_when_it_is_written(app: Any, client: Any, auth: Any) -> None:
    stored = _written(app, client, auth, event("trip.booked", "trip", TRIP, "ev-booked"), _at(2026, 12, 17))
    [traveler] = [m["message"] for m in stored["messages"] if "Your trip" in m["message"]]
    assert "Check-in from 16:00 in 3 days, Sun 20 Dec, check-out by 11:00 in 6 days, Wed 23 Dec." in traveler


@pytest.mark.parametrize(("day", "words"), [
    (dt.date(2026, 12, 7), "yesterday, Mon 7 Dec"),
    (dt.date(2026, 12, 8), "today, Tue 8 Dec"),
    (dt.date(2026, 12, 9), "tomorrow, Wed 9 Dec"),
    (dt.date(2026, 12, 14), "in 6 days, Mon 14 Dec"),
    (dt.date(2026, 12, 15), "on Tue 15 Dec"),
    (dt.date(2026, 12, 1), "on Tue 1 Dec"),
    (dt.date(2027, 1, 5), "on Tue 5 Jan 2027"),
])
def test_days_are_counted_only_near_today_and_dated_otherwise(day: dt.date, words: str) -> None:
    assert fmt.relative_day(day, dt.date(2026, 12, 8)) == words
