"""The concierge's answers from a traveler's own records (SPEC §4, §5.2): every property fact or "not listed",
what was paid and per night, nights and days to go, check-in instructions only within their window, the trip a
question names, the next one otherwise, a list when asked, follow-ups — and never anyone else's booking. Also the
records' new fields (facts, price, locale) as PUT, read back and carried by events."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from messaging.store.db import get_session, session_scope
from messaging.store.models import (
    ConciergeMessageOrigin,
    ConciergeThread,
    Property,
    PropertyConversation,
    PropertyMessage,
    RequestToBook,
    Trip,
    User,
)
from tasks.concierge_tasks import answer_question

NOW = dt.datetime.now(dt.UTC)
TODAY = NOW.date()
ANA_NEXT = TODAY + dt.timedelta(days=2)  # Casa Azul, Lisbon: within 72 h of check-in
ANA_LATER = TODAY + dt.timedelta(days=40)  # Loft Sol, Porto
BEA_TRIP = TODAY + dt.timedelta(days=7)  # Villa Mar, Faro: another host's, another traveler's
PIA_TRIP = TODAY + dt.timedelta(days=20)
SECRET = "SECRET-VILLA-9999"


def seed(app: Any) -> None:
    """Ana has two trips (Casa Azul with every fact, then Loft Sol with none); Bea one at Villa Mar, another
    host's, whose check-in code is secret; Pia (locale pt-PT) one at Casa Azul; Cai leaves Loft Sol tomorrow.
    Bea asked to book Casa Azul and waits for Hal's reply about Loft Sol."""
    with app.app_context(), session_scope() as s:
        s.add_all([
            User(id="ana", name="Ana", role="guest"), User(id="bea", name="Bea", role="guest"),
            User(id="pia", name="Pia", role="guest", locale="pt-PT"), User(id="cai", name="Cai", role="guest"),
            User(id="hal", name="Hal", role="host"), User(id="hoa", name="Hoa", role="host"),
        ])
        s.flush()
        s.add_all([
            Property(id=1, host_id="hal", name="Casa Azul", city="Lisbon", address="Rua das Flores 12",
                     timezone="Europe/Lisbon", check_in_time=dt.time(16, 0), check_out_time=dt.time(11, 0),
                     max_guests=4, bedrooms=2, bathrooms=1.5,
                     amenities=["Wifi", "Washer", "Street parking", "Air conditioning"], pets_allowed=False,
                     smoking_allowed=False, house_rules="Quiet hours from 22:00.", check_in_info="Key box code 4821.",
                     cancellation_policy="Full refund up to 14 days before check-in.",
                     about="A bright flat in Alfama."),
            Property(id=2, host_id="hal", name="Loft Sol", city="Porto", address="Avenida da Boavista 99",
                     timezone="UTC", check_in_time=dt.time(15, 0), check_out_time=dt.time(10, 0)),
            Property(id=3, host_id="hoa", name="Villa Mar", city="Faro", address="Praia 7", timezone="Europe/Lisbon",
                     check_in_time=dt.time(15, 0), check_out_time=dt.time(10, 0), amenities=["Pool", "Wifi"],
                     pets_allowed=True, check_in_info=SECRET),
        ])
        s.flush()
        s.add_all([
            Trip(id=1, property_id=1, traveler_id="ana", check_in=ANA_NEXT, check_out=ANA_NEXT + dt.timedelta(days=3),
                 num_guests=3, status="Booked", total_price_cents=45000, currency="EUR"),
            Trip(id=2, property_id=2, traveler_id="ana", check_in=ANA_LATER,
                 check_out=ANA_LATER + dt.timedelta(days=5), num_guests=2, status="Booked"),
            Trip(id=3, property_id=3, traveler_id="bea", check_in=BEA_TRIP, check_out=BEA_TRIP + dt.timedelta(days=4),
                 num_guests=6, status="Booked", total_price_cents=99900, currency="USD"),
            Trip(id=4, property_id=1, traveler_id="pia", check_in=PIA_TRIP,
                 check_out=PIA_TRIP + dt.timedelta(days=2), num_guests=2, status="Booked", total_price_cents=30000,
                 currency="EUR"),
            Trip(id=5, property_id=2, traveler_id="cai", check_in=TODAY - dt.timedelta(days=2),
                 check_out=TODAY + dt.timedelta(days=1), num_guests=1, status="Booked"),
            RequestToBook(id=1, property_id=1, traveler_id="bea", check_in=TODAY + dt.timedelta(days=60),
                          check_out=TODAY + dt.timedelta(days=63), num_guests=2, total_price_cents=60000,
                          currency="EUR", status="Pending", created_at=NOW - dt.timedelta(hours=2)),
            PropertyConversation(id="pc-bea-loft", traveler_id="bea", property_id=2),
        ])
        s.flush()
        s.add(PropertyMessage(id="pm-bea-1", conversation_id="pc-bea-loft", author_id="bea",
                              message="Is the loft quiet at night?", created_at=NOW - dt.timedelta(hours=3)))


def ask(app: Any, client: Any, headers: dict[str, str], text: str) -> str | None:
    """Post a question as the owner, run the answering task, return the concierge's reply (None: it stayed
    quiet)."""
    conversation = client.get("/v1/concierge", headers=headers).json["id"]
    posted = client.post(f"/v1/conversations/{conversation}/messages", json={"message": text}, headers=headers)
    assert posted.status_code == 201, posted.json
    with app.app_context():
        answer_question.run(posted.json["id"])
    last = client.get(f"/v1/conversations/{conversation}/messages", headers=headers).json["items"][-1]
    return last["message"] if last["senderType"] == "concierge" else None


def thread_of(app: Any, user_id: str) -> ConciergeThread:
    with app.app_context():
        return get_session().execute(
            select(ConciergeThread).where(ConciergeThread.user_id == user_id)
        ).scalar_one()


def day(value: dt.date) -> str:
    """An English day as the concierge writes it (the year when it is not this one)."""
    text = f"{value:%a} {value.day} {value:%b}"
    return text + f" {value.year}" if value.year != TODAY.year else text


# --- property facts -----------------------------------------------------------------------------------------


def test_every_property_fact_is_told_from_the_listing(app: Any, client: Any, auth: Any) -> None:
    seed(app)
    ana = auth("ana", "guest")
    expected = [
        ("is there wifi?", "Yes", "Wifi"),
        ("do you have parking for our car", "Yes", "Street parking"),
        ("is there AC in the flat", "Yes", "Air conditioning"),
        ("does it have a washing machine?", "Yes", "Washer"),
        ("do they have a swimming pool?", "not listed", "A pool"),
        ("does it have a sauna", "not listed", '"sauna"'),
        ("can we bring our dog?", "not allowed", "Pets"),
        ("am I allowed to smoke on the balcony", "not allowed", "Smoking"),
        ("how many bedrooms does the apartment have", "2 bedrooms", "Casa Azul"),
        ("how many bathrooms are there?", "1.5 bathrooms", "Casa Azul"),
        ("what's the max number of people the place can accommodate", "up to 4 guests", "Casa Azul"),
        ("are there any house rules?", "Quiet hours from 22:00.", "Casa Azul"),
        ("what is the cancellation policy?", "Full refund up to 14 days", "Casa Azul"),
        ("can you describe the property", "A bright flat in Alfama.", "Casa Azul"),
        ("what amenities are there", "Wifi, Washer, Street parking, and Air conditioning", "Casa Azul"),
    ]
    for question, *wanted in expected:
        reply = ask(app, client, ana, question) or ""
        assert all(w in reply for w in wanted), (question, reply)
        assert "Casa Azul" in reply and "Villa Mar" not in reply, (question, reply)


def test_facts_the_listing_lacks_are_not_listed_never_guessed(app: Any, client: Any, auth: Any) -> None:
    seed(app)
    ana = auth("ana", "guest")
    for question, wanted in [
        ("is there wifi at the Porto loft?", "The amenities of Loft Sol are not listed"),
        ("are pets allowed at Loft Sol", "Whether pets are allowed at Loft Sol is not listed"),
        ("can I smoke in the porto flat", "Whether smoking is allowed at Loft Sol is not listed"),
        ("how many bedrooms in Porto?", "The number of bedrooms at Loft Sol is not listed"),
        ("the cancellation policy of Loft Sol?", "The cancellation policy of Loft Sol is not listed"),
        ("how much did I pay for Porto?", "The price of your stay at Loft Sol"),
    ]:
        reply = ask(app, client, ana, question) or ""
        assert wanted in reply, (question, reply)


# --- booking arithmetic and times ----------------------------------------------------------------------------


def test_what_was_paid_nights_and_days_to_go(app: Any, client: Any, auth: Any) -> None:
    seed(app)
    ana = auth("ana", "guest")
    reply = ask(app, client, ana, "how much did I pay?") or ""
    assert "€450.00" in reply and "3 nights" in reply and "€150.00 per night" in reply, reply
    reply = ask(app, client, ana, "what's the nightly rate for lisbon") or ""
    assert "€150.00 per night" in reply, reply
    reply = ask(app, client, ana, "how many nights is the lisbon stay") or ""
    assert "3 nights" in reply and day(ANA_NEXT) in reply, reply
    reply = ask(app, client, ana, "how many days until my lisbon trip?") or ""
    assert "2 days to go" in reply, reply
    reply = ask(app, client, ana, "what time is check out from casa azul") or ""
    assert "11:00" in reply and day(ANA_NEXT + dt.timedelta(days=3)) in reply, reply
    reply = ask(app, client, ana, "how many people did I book for lisbon") or ""
    assert "3 guests" in reply, reply


def test_check_in_instructions_only_in_their_window_and_only_to_the_traveler(
    app: Any, client: Any, auth: Any
) -> None:
    seed(app)
    ana, bea = auth("ana", "guest"), auth("bea", "guest")
    reply = ask(app, client, ana, "what's the door code for casa azul?") or ""
    assert "Key box code 4821." in reply, reply  # check-in in 2 days: within 72 hours
    reply = ask(app, client, ana, "how do I get the keys for the porto loft") or ""
    assert "I'll share the check-in instructions for Loft Sol from" in reply, reply
    assert day(ANA_LATER - dt.timedelta(days=3)) in reply, reply
    # Bea's own trip is a week away: not yet, and never Casa Azul's code.
    reply = ask(app, client, bea, "what's the key box code?") or ""
    assert "I'll share" in reply and SECRET not in reply and "4821" not in reply, reply


# --- several trips, lists and follow-ups ---------------------------------------------------------------------


def test_the_trip_named_else_the_next_one_saying_which(app: Any, client: Any, auth: Any) -> None:
    seed(app)
    ana = auth("ana", "guest")
    reply = ask(app, client, ana, "when is check in?") or ""
    assert reply.startswith("About your next trip, Casa Azul, Lisbon") and "16:00" in reply, reply
    reply = ask(app, client, ana, "what's the address of my trip to Porto") or ""
    assert "Avenida da Boavista 99" in reply and "Rua das Flores" not in reply, reply
    reply = ask(app, client, ana, f"check-in time for my trip in {ANA_LATER:%B}?") or ""
    assert "Loft Sol" in reply and "15:00" in reply, reply
    reply = ask(app, client, ana, f"how many guests on {ANA_NEXT.isoformat()}") or ""
    assert "Casa Azul" in reply and "3 guests" in reply, reply
    reply = ask(app, client, ana, "where is the loft sol") or ""
    assert "Avenida da Boavista 99" in reply, reply


def test_a_follow_up_is_about_the_previous_questions_trip(app: Any, client: Any, auth: Any) -> None:
    seed(app)
    ana = auth("ana", "guest")
    reply = ask(app, client, ana, "when do I arrive in porto?") or ""
    assert "Loft Sol" in reply, reply
    reply = ask(app, client, ana, "and the address?") or ""
    assert "Avenida da Boavista 99" in reply and "Rua das Flores" not in reply, reply
    reply = ask(app, client, ana, "is there wifi?") or ""
    assert "Loft Sol" in reply, reply
    # A question naming only the other trip asks the previous question again, about it.
    reply = ask(app, client, ana, "and for lisbon?") or ""
    assert "Casa Azul" in reply and "Wifi" in reply, reply
    with app.app_context():
        origins = get_session().execute(
            select(ConciergeMessageOrigin.intent, ConciergeMessageOrigin.records)
            .where(ConciergeMessageOrigin.kind == "reply")
        ).all()
    assert ("address", {"trips": [2], "properties": [2]}) in [(o.intent, o.records) for o in origins]


def test_a_list_of_trips_when_asked(app: Any, client: Any, auth: Any) -> None:
    seed(app)
    ana = auth("ana", "guest")
    reply = ask(app, client, ana, "show me all my bookings") or ""
    assert "Casa Azul" in reply and "Loft Sol" in reply and "Villa Mar" not in reply, reply
    assert ask(app, client, auth("newbie", "guest"), "list my trips") == (
        "I don't see an upcoming trip booked for you. If you've just booked, the confirmation will appear here "
        "shortly."
    )


def test_another_travelers_booking_never_leaks(app: Any, client: Any, auth: Any) -> None:
    """Ana names Bea's city, property, dates and trip id: she only ever hears about her own trips."""
    seed(app)
    ana = auth("ana", "guest")
    bea_bits = (SECRET, "Villa Mar", "Praia 7", "6 guests", "$999.00", "Pool")
    for question in [
        "what's the address of my trip to Faro?", "check in at Villa Mar?", "how do I get in at the villa in faro",
        f"how many guests on {BEA_TRIP.isoformat()}?", f"my trip on {BEA_TRIP.day}/{BEA_TRIP.month}",
        "details of trip 3 please", "how much did I pay for trip #3", "is there a pool at villa mar",
        "what's the door code of trip 3",
    ]:
        reply = ask(app, client, ana, question) or ""
        assert not any(bit in reply for bit in bea_bits), (question, reply)
    reply = ask(app, client, ana, f"when is my trip on {BEA_TRIP.isoformat()}?") or ""
    assert reply.startswith("I don't see a trip of yours matching that."), reply


# --- the records' new fields ---------------------------------------------------------------------------------


FACTS = {"maxGuests": 6, "bedrooms": 3, "bathrooms": 2.5, "amenities": ["Pool", "Wifi"], "petsAllowed": True,
         "smokingAllowed": False, "houseRules": "No parties.", "checkInInfo": "Code 1234.",
         "cancellationPolicy": "Flexible.", "about": "Sea view."}


def test_records_carry_facts_price_and_locale(client: Any, auth: Any) -> None:
    service = auth("platform", "service")
    assert client.put("/v1/users/h9", json={"role": "host", "locale": "fr-FR"}, headers=service).status_code == 201
    assert client.put("/v1/users/t9", json={"role": "guest"}, headers=service).status_code == 201
    body = {"hostId": "h9", "name": "Mas Bleu", "timezone": "Europe/Paris", **FACTS}
    assert client.put("/v1/properties/9", json=body, headers=service).status_code == 201
    assert {k: v for k, v in client.get("/v1/properties/9", headers=service).json.items() if k in FACTS} == FACTS
    trip = {"propertyId": 9, "travelerId": "t9", "checkIn": "2027-06-01", "checkOut": "2027-06-04", "numGuests": 2,
            "status": "Booked", "totalPriceCents": 90000, "currency": "EUR"}
    assert client.put("/v1/trips/9", json=trip, headers=service).status_code == 201
    read = client.get("/v1/trips/9", headers=service).json
    assert (read["totalPriceCents"], read["currency"]) == (90000, "EUR")
    assert client.get("/v1/users/h9", headers=service).json["locale"] == "fr-FR"
    # A price needs its currency; a locale is a BCP 47 tag; counts are not negative.
    assert client.put("/v1/trips/9", json={**trip, "currency": None}, headers=service).status_code == 422
    assert client.put("/v1/users/h9", json={"role": "host", "locale": "not a tag"},
                      headers=service).status_code == 422
    assert client.put("/v1/properties/9", json={**body, "bedrooms": -1}, headers=service).status_code == 422
    # A PUT replaces: facts left out are unknown again.
    assert client.put("/v1/properties/9", json={"hostId": "h9", "name": "Mas Bleu", "timezone": "Europe/Paris"},
                      headers=service).status_code == 200
    assert client.get("/v1/properties/9", headers=service).json["amenities"] is None


def test_an_events_record_keeps_the_facts_it_leaves_out(app: Any, client: Any, auth: Any) -> None:
    from tests.api.test_event_notifications import TRIP, event

    service = auth("platform", "service")
    posted = client.post("/v1/events", json=event("trip.booked", "trip", TRIP, "ev-facts-1"), headers=service)
    assert posted.status_code == 202
    property_id = TRIP["propertyId"]
    stored = client.get(f"/v1/properties/{property_id}", headers=service).json
    body = {k: v for k, v in stored.items() if k != "id"}
    assert client.put(f"/v1/properties/{property_id}", json={**body, **FACTS}, headers=service).status_code == 200
    again = event("trip.booked", "trip", {**TRIP, "numGuests": TRIP["numGuests"] + 1}, "ev-facts-2")
    assert client.post("/v1/events", json=again, headers=service).status_code == 202
    kept = client.get(f"/v1/properties/{property_id}", headers=service).json
    assert {k: v for k, v in kept.items() if k in FACTS} == FACTS
    with app.app_context():
        assert get_session().get(Trip, TRIP["id"]).num_guests == TRIP["numGuests"] + 1
