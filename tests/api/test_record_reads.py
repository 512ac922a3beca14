"""Records readable (GET /v1/users|properties|offers|requests-to-book|trips/{id}): what was stored, in the shape
the platform PUT it, for the platform and admins only."""

from __future__ import annotations

from typing import Any

from concierge import records
from tests.api.test_event_notifications import TRIP, event

# In the order their references need them; each is PUT, then read back.
STORED = [
    ("users", records.EXAMPLE_HOST, records.UserRecord),
    ("users", records.EXAMPLE_TRAVELER, records.UserRecord),
    ("properties", records.EXAMPLE_PROPERTY, records.PropertyRecord),
    ("offers", records.EXAMPLE_OFFER, records.OfferRecord),
    ("requests-to-book", records.EXAMPLE_REQUEST_TO_BOOK, records.RequestToBookRecord),
    ("trips", records.EXAMPLE_TRIP, records.TripRecord),
]


def _complete(record: dict[str, Any], model: Any) -> dict[str, Any]:
    """``record`` with every field of its model: what was left out reads as its default (null)."""
    return dict(model.model_validate(record).model_dump(by_alias=True, mode="json"))


def _body(record: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in record.items() if name != "id"}


def test_what_the_platform_put_is_what_it_reads_back(client: Any, auth: Any) -> None:
    service, admin = auth("platform", "service"), auth("root", "admin")
    for kind, record, _model in STORED:
        put = client.put(f"/v1/{kind}/{record['id']}", json=_body(record), headers=service)
        assert put.status_code == 201, (kind, put.json)
    for kind, record, model in STORED:
        for reader in (service, admin):
            read = client.get(f"/v1/{kind}/{record['id']}", headers=reader)
            assert read.status_code == 200, (kind, read.json)
            assert read.json == _complete(record, model), kind
    # A replaced record reads as replaced; an optional field left out reads as null.
    changed = {**_body(records.EXAMPLE_PROPERTY), "name": "Casa Verde", "checkInTime": "14:30"}
    changed.pop("address")
    assert client.put("/v1/properties/7", json=changed, headers=service).status_code == 200
    assert client.get("/v1/properties/7", headers=admin).json == {"id": 7, **changed, "address": None}


def test_records_of_events_read_back_too(client: Any, auth: Any) -> None:
    """An event's records are stored as a PUT stores them."""
    service = auth("platform", "service")
    posted = client.post("/v1/events", json=event("trip.booked", "trip", TRIP, "ev-r"), headers=service)
    assert posted.status_code == 202
    assert client.get(f"/v1/trips/{TRIP['id']}", headers=service).json == _complete(TRIP, records.TripRecord)


def test_unknown_records_are_404_and_only_the_platform_and_admins_read(client: Any, auth: Any) -> None:
    service = auth("platform", "service")
    for kind, missing in (("users", "nobody"), ("properties", 404), ("offers", 404), ("requests-to-book", 404),
                          ("trips", 404)):
        answer = client.get(f"/v1/{kind}/{missing}", headers=service)
        assert answer.status_code == 404 and answer.content_type == "application/problem+json", kind
    assert client.get("/v1/properties/0", headers=service).status_code == 422  # ids are positive
    assert client.put("/v1/users/trav-1", json=_body(records.EXAMPLE_TRAVELER), headers=service).status_code == 201
    for role in ("guest", "host"):
        assert client.get("/v1/users/trav-1", headers=auth("trav-1", role)).status_code == 403
    assert client.get("/v1/users/trav-1").status_code == 401
    # Admins read; only the platform writes.
    admin = auth("root", "admin")
    assert client.put("/v1/users/trav-1", json=_body(records.EXAMPLE_TRAVELER), headers=admin).status_code == 403
    assert client.delete("/v1/users/trav-1", headers=admin).status_code == 403
    assert client.delete("/v1/users/trav-1", headers=service).status_code == 204
    assert client.get("/v1/users/trav-1", headers=admin).status_code == 404  # a deleted user is gone
