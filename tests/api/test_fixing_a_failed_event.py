"""Fixing a failed event (docs/decisions/0015-fixing-a-failed-event.md): the platform corrects the record that made
it fail (PUT), an admin retries it, and the retry reads the corrected record; a re-delivery of the original body
is still a repeat."""

from __future__ import annotations

from typing import Any

from tasks.concierge_tasks import process_event
from tests.api.test_admin_api import _booked
from tests.api.test_event_notifications import TRIP, event


def test_a_retry_after_the_record_is_corrected_uses_the_corrected_record(app: Any, client: Any, auth: Any) -> None:
    root, service = auth("root", "admin"), auth("platform", "service")
    _booked(app, client, auth)  # the users and the property exist
    backwards = {**TRIP, "id": 99, "checkIn": "2027-03-23", "checkOut": "2027-03-20"}
    body = event("trip.booked", "trip", backwards, "ev-back")
    assert client.post("/v1/events", json=body, headers=service).status_code == 202
    with app.app_context():
        assert process_event.run("ev-back") == "failed"
    # Retried as it is, it fails again: nothing has changed.
    assert client.post("/v1/admin/events/ev-back/retry", headers=root).status_code == 200
    with app.app_context():
        assert process_event.run("ev-back") == "failed"

    fixed = {k: v for k, v in {**backwards, "checkOut": "2027-03-26"}.items() if k != "id"}
    assert client.put("/v1/trips/99", json=fixed, headers=service).status_code == 201  # the bad one was not stored
    retried = client.post("/v1/admin/events/ev-back/retry", headers=root)
    assert retried.status_code == 200 and retried.json["status"] == "pending"
    with app.app_context():
        assert process_event.run("ev-back") == "processed"
    done = client.get("/v1/events/ev-back", headers=service).json
    assert done["status"] == "processed" and done["messages"]
    assert any("26 Mar" in m["message"] for m in done["messages"]), done["messages"]  # the corrected check-out
    # The platform re-delivering the original body is a repeat (200), not a conflict.
    assert client.post("/v1/events", json=body, headers=service).status_code == 200


def test_a_record_not_stored_is_read_as_the_event_carried_it(app: Any, client: Any, auth: Any) -> None:
    root, service = auth("root", "admin"), auth("platform", "service")
    _booked(app, client, auth)
    backwards = {**TRIP, "id": 98, "checkIn": "2027-03-23", "checkOut": "2027-03-20"}
    assert client.post("/v1/events", json=event("trip.booked", "trip", backwards, "ev-gone"),
                       headers=service).status_code == 202
    with app.app_context():
        assert process_event.run("ev-gone") == "failed"
    assert client.get("/v1/trips/98", headers=service).status_code == 404
    assert client.post("/v1/admin/events/ev-gone/retry", headers=root).status_code == 200
    with app.app_context():
        assert process_event.run("ev-gone") == "failed"  # still the carried, backwards record
