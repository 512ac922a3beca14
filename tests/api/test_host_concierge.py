"""A host's concierge conversation (SPEC §5.2): arrivals and departures at their own properties, the requests to
book waiting for their answer and the property threads waiting for their reply — in their language, never as if
they were a traveler, and never about another host's properties."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.api.test_concierge_answers import ANA_NEXT, BEA_TRIP, PIA_TRIP, ask, day, seed

TOMORROW = dt.date.today() + dt.timedelta(days=1)


def test_the_next_arrivals_at_the_hosts_own_properties(app: Any, client: Any, auth: Any) -> None:
    seed(app)
    hal = auth("hal", "host")
    reply = ask(app, client, hal, "who is arriving next?") or ""
    assert reply.startswith("Next arrivals at your properties: Ana at Casa Azul, " + day(ANA_NEXT)), reply
    assert "from 16:00 (3 nights, 3 guests)" in reply and "Pia at Casa Azul, " + day(PIA_TRIP) in reply, reply
    assert "Bea" not in reply and "Villa Mar" not in reply, reply  # another host's booking
    # A host asking about "my trip" hears about their bookings, not that they have no trip.
    reply = ask(app, client, hal, "when is my next booking?") or ""
    assert reply.startswith("Next arrivals at your properties"), reply
    reply = ask(app, client, auth("hoa", "host"), "next guest arriving?") or ""
    assert "Bea at Villa Mar, " + day(BEA_TRIP) in reply and "Ana" not in reply, reply


def test_who_leaves_today_or_tomorrow(app: Any, client: Any, auth: Any) -> None:
    seed(app)
    hal = auth("hal", "host")
    reply = ask(app, client, hal, "who checks out tomorrow?") or ""
    assert reply.startswith("Leaving tomorrow: Cai from Loft Sol") and "by 10:00" in reply, reply
    reply = ask(app, client, hal, "who is leaving today") or ""
    assert reply == "No guest is booked to leave your properties today.", reply
    reply = ask(app, client, hal, "¿quién sale mañana?") or ""
    assert reply.startswith("Se van mañana: Cai de Loft Sol"), reply
    reply = ask(app, client, hal, "quem chega amanhã?") or ""
    assert reply == "Nenhum hóspede tem chegada marcada aos seus alojamentos amanhã.", reply


def test_pending_requests_with_their_deadline(app: Any, client: Any, auth: Any) -> None:
    seed(app)
    reply = ask(app, client, auth("hal", "host"), "any pending booking requests?") or ""
    assert reply.startswith("Requests to book waiting for your answer: Bea for Casa Azul"), reply
    assert "2 guests" in reply and "€600.00" in reply and "answer by" in reply, reply
    reply = ask(app, client, auth("hoa", "host"), "des demandes de réservation en attente ?") or ""
    assert reply == "Aucune demande de réservation n'attend votre réponse.", reply


def test_threads_waiting_for_the_hosts_reply(app: Any, client: Any, auth: Any) -> None:
    seed(app)
    hal = auth("hal", "host")
    reply = ask(app, client, hal, "who is waiting for my reply?") or ""
    assert reply.startswith("Travelers waiting for your reply: Bea about Loft Sol, since"), reply
    # Once Hal answers in the thread, nobody waits.
    answered = client.post("/v1/property-conversations/pc-bea-loft/messages", json={"message": "Very quiet!"},
                           headers=hal)
    assert answered.status_code == 201, answered.json
    assert ask(app, client, hal, "hay consultas sin responder?") == "Ningún viajero espera tu respuesta."


@pytest.mark.parametrize(("question", "wanted"), [
    ("is there parking at loft sol?", "The amenities of Loft Sol are not listed"),
    ("is there wifi at casa azul", "Yes: Casa Azul lists Wifi"),
    ("what's the check-in code?", "Check-in instructions are shared only with your guests"),
    ("hello", "Hi Hal! I can tell you about arrivals and departures"),
    ("blah blah", "Sorry, I didn't catch that. I can tell you about arrivals and departures"),
])
def test_a_host_is_answered_as_a_host(app: Any, client: Any, auth: Any, question: str, wanted: str) -> None:
    seed(app)
    reply = ask(app, client, auth("hal", "host"), question) or ""
    assert reply.startswith(wanted), reply
