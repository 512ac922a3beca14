"""An offer's conversation is named after the offer when it is given no name: "Offer · Casa Azul · 10–14 Apr"."""

from __future__ import annotations

import datetime as dt
from typing import Any

from messaging.chat.conversations import offer_conversation_name
from messaging.store.db import session_scope
from messaging.store.models import Offer, Property, User


def test_the_stay_is_written_as_briefly_as_its_dates_allow(app: Any) -> None:
    stays = {
        1: (dt.date(2027, 4, 10), dt.date(2027, 4, 14), "Offer · Casa Azul · 10–14 Apr"),
        2: (dt.date(2027, 4, 28), dt.date(2027, 5, 2), "Offer · Casa Azul · 28 Apr – 2 May"),
        3: (dt.date(2027, 12, 30), dt.date(2028, 1, 2), "Offer · Casa Azul · 30 Dec 2027 – 2 Jan 2028"),
    }
    with app.app_context(), session_scope() as session:
        session.add_all([User(id="hal", name="Hal", role="host"), User(id="ana", name="Ana", role="guest")])
        session.flush()
        session.add(Property(id=10, host_id="hal", name="Casa Azul", city="Lisbon"))
        session.flush()
        for offer_id, (check_in, check_out, _name) in stays.items():
            session.add(Offer(id=offer_id, property_id=10, traveler_id="ana", check_in=check_in, check_out=check_out,
                              total_price_cents=100_00, currency="EUR", status="Pending"))
        session.flush()
        for offer_id, (_in, _out, name) in stays.items():
            assert offer_conversation_name(session, offer_id) == name
        assert offer_conversation_name(session, 404) is None
