"""A small demo data set for the embedded default (`make run`, `flask seed`): a host, a property, a traveler,
an accepted offer and the trip booked from it.

The rows have fixed ids, so seeding is idempotent: a row already present is left as it is. The caller commits.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from messaging.store.models import Offer, Property, Trip, User

HOST_ID = "demo-host"
TRAVELER_ID = "demo-traveler"
ADMIN_ID = "demo-admin"
PROPERTY_ID = 1001
OFFER_ID = 2001
TRIP_ID = 3001
TRY_TRIP_ID = 3002  # the trip of try_event
# The demo users whose tokens `make run` prints: (label, user id, role).
DEMO_USERS = (("admin", ADMIN_ID, "admin"), ("traveler", TRAVELER_ID, "guest"), ("host", HOST_ID, "host"))


def seed_demo_data(session: Session, today: dt.date | None = None) -> list[str]:
    """Add whichever demo rows are missing; returns what was added (empty when the set was already there).

    The stay is dated from ``today`` (a week ahead, three nights) when first seeded, so it is upcoming.
    """
    check_in = (today or dt.date.today()) + dt.timedelta(days=7)
    check_out = check_in + dt.timedelta(days=3)
    # Parents before children, flushed level by level: the models declare foreign keys, not relationships,
    # so the flush order must not be left to chance.
    levels: list[list[User | Property | Offer | Trip]] = [
        [
            User(id=HOST_ID, name="Helena Host", email="host@example.com", role="host"),
            User(id=TRAVELER_ID, name="Tomás Traveler", email="traveler@example.com", role="guest"),
        ],
        [
            Property(
                id=PROPERTY_ID,
                host_id=HOST_ID,
                name="Alfama River View",
                city="Lisbon",
                address="Rua dos Remédios 12, 1100-445 Lisboa",
                timezone="Europe/Lisbon",
                check_in_time=dt.time(15, 0),
                check_out_time=dt.time(10, 0),
            )
        ],
        [
            Offer(
                id=OFFER_ID,
                property_id=PROPERTY_ID,
                traveler_id=TRAVELER_ID,
                check_in=check_in,
                check_out=check_out,
                total_price_cents=48_000,
                currency="EUR",
                status="Accepted",
            )
        ],
        [
            Trip(
                id=TRIP_ID,
                property_id=PROPERTY_ID,
                traveler_id=TRAVELER_ID,
                offer_id=OFFER_ID,
                check_in=check_in,
                check_out=check_out,
                num_guests=2,
                status="Booked",
            )
        ],
    ]
    added: list[str] = []
    for level in levels:
        for row in level:
            if session.get(type(row), row.id) is None:
                session.add(row)
                added.append(f"{type(row).__tablename__}:{row.id}")
        session.flush()
    return added


def try_event(today: dt.date | None = None) -> dict[str, Any]:
    """A platform event to try against the demo data (``make run`` prints it as a curl line): the demo traveler
    books a second stay at the demo property, a month ahead, so the traveler and the host each hear about it in
    their concierge chat. Its id is new each day, so trying it again the same day is a repeat (200)."""
    day = today or dt.date.today()
    check_in = day + dt.timedelta(days=30)
    return {
        "id": f"try-trip-booked-{day.isoformat()}",
        "type": "trip.booked",
        "occurredAt": f"{day.isoformat()}T12:00:00Z",
        "data": {
            "trip": {
                "id": TRY_TRIP_ID, "propertyId": PROPERTY_ID, "travelerId": TRAVELER_ID,
                "checkIn": check_in.isoformat(), "checkOut": (check_in + dt.timedelta(days=2)).isoformat(),
                "numGuests": 2, "status": "Booked",
            },
            "traveler": {"id": TRAVELER_ID, "name": "Tomás Traveler", "role": "guest"},
            "property": {
                "id": PROPERTY_ID, "hostId": HOST_ID, "name": "Alfama River View", "city": "Lisbon",
                "address": "Rua dos Remédios 12, 1100-445 Lisboa", "timezone": "Europe/Lisbon",
                "checkInTime": "15:00", "checkOutTime": "10:00",
            },
        },
    }
