"""The operators' CLI (concierge/cli.py, messaging/cli.py): flask events post|show|retry, flask transcripts export
and flask token --role service — the same service functions as the API, JSON out, refusals on stderr with exit 1."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from tasks.concierge_tasks import process_event
from tests.api.test_admin_api import _booked
from tests.api.test_event_notifications import TRIP, event


def test_events_post_show_and_repeat_as_the_api_does(app: Any, runner: Any, tmp_path: Path) -> None:
    source = tmp_path / "booked.json"
    source.write_text(json.dumps(event("trip.booked", "trip", TRIP, "ev-cli")))
    posted = runner.invoke(args=["events", "post", str(source)])
    assert posted.exit_code == 0, posted.output
    stored = json.loads(posted.stdout)
    assert stored["id"] == "ev-cli" and stored["status"] == "pending" and "accepted" in posted.stderr

    again = runner.invoke(args=["events", "post", "-"], input=source.read_text())  # stdin
    assert again.exit_code == 0 and "a repeat" in again.stderr and json.loads(again.stdout)["id"] == "ev-cli"

    with app.app_context():
        assert process_event.run("ev-cli") == "processed"
    shown = runner.invoke(args=["events", "show", "ev-cli"])
    assert shown.exit_code == 0
    resource = json.loads(shown.stdout)
    assert resource["status"] == "processed" and len(resource["messages"]) == 2  # the traveler's and the host's


def test_events_post_refuses_what_the_api_refuses(runner: Any, tmp_path: Path) -> None:
    cases = {
        "not json": ("{", "400"),
        "not an object": ("[1]", "422"),
        "no record": (json.dumps({"id": "ev-x", "type": "trip.booked", "occurredAt": "2026-12-01T10:00:00Z",
                                  "data": {}}), "422"),
        "unknown type": (json.dumps({**event("trip.booked", "trip", TRIP, "ev-y"), "type": "trip.exploded"}), "422"),
    }
    for name, (text, status) in cases.items():
        refused = runner.invoke(args=["events", "post", "-"], input=text)
        assert refused.exit_code == 1 and f"Error: {status}" in refused.output, (name, refused.output)
    booked = event("trip.booked", "trip", TRIP, "ev-z")
    assert runner.invoke(args=["events", "post", "-"], input=json.dumps(booked)).exit_code == 0
    changed = {**booked, "occurredAt": "2026-12-02T10:00:00Z"}
    conflict = runner.invoke(args=["events", "post", "-"], input=json.dumps(changed))
    assert conflict.exit_code == 1 and "Error: 409" in conflict.output
    missing = runner.invoke(args=["events", "show", "nope"])
    assert missing.exit_code == 1 and "Error: 404" in missing.output


def test_events_retry_sends_a_failed_event_again_and_refuses_others(app: Any, client: Any, auth: Any,
                                                                     runner: Any) -> None:
    backwards = event("trip.booked", "trip", {**TRIP, "id": 99, "checkIn": "2026-12-23", "checkOut": "2026-12-20"},
                      "ev-back")
    assert client.post("/v1/events", json=backwards, headers=auth("platform", "service")).status_code == 202
    with app.app_context():
        assert process_event.run("ev-back") == "failed"
    retried = runner.invoke(args=["events", "retry", "ev-back"])
    assert retried.exit_code == 0, retried.output
    assert json.loads(retried.stdout)["status"] == "pending"
    again = runner.invoke(args=["events", "retry", "ev-back"])
    assert again.exit_code == 1 and "Error: 409" in again.output
    assert "Error: 404" in runner.invoke(args=["events", "retry", "nope"]).output


def test_transcripts_export_as_json_and_csv(app: Any, client: Any, auth: Any, runner: Any) -> None:
    _booked(app, client, auth)
    traveler = client.get("/v1/concierge", headers=auth("trav-1", "guest")).json["id"]
    as_json = runner.invoke(args=["transcripts", "export", traveler])
    assert as_json.exit_code == 0, as_json.output
    [message] = json.loads(as_json.stdout)["messages"]
    assert message["senderType"] == "concierge" and message["origin"]["eventId"] == "ev-booked"
    as_csv = runner.invoke(args=["transcripts", "export", traveler, "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert as_csv.exit_code == 0 and [r["id"] for r in rows] == [message["id"]] and rows[0]["eventId"] == "ev-booked"
    assert rows[0]["createdAt"] == message["createdAt"] and message["createdAt"].endswith("Z")  # the same time
    assert "Error: 404" in runner.invoke(args=["transcripts", "export", "nope"]).output


def test_token_for_the_platform(app: Any, client: Any, runner: Any) -> None:
    minted = runner.invoke(args=["token", "--sub", "platform", "--role", "service"])
    assert minted.exit_code == 0
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {minted.stdout.strip()}"})
    assert me.status_code == 200 and me.json["role"] == "service"
