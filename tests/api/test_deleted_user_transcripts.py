"""Transcripts outlive their user (SPEC §7, decision 0016): when the platform deletes a user, their concierge
conversation (and an offer conversation of theirs) stays listed and readable by admins — their messages show
``senderType`` ``deleted`` with no user id, the concierge's stay ``concierge`` — while their tokens are refused
and they are no longer a participant."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from sqlalchemy import select

from concierge.models import OfferThread
from messaging.store.db import get_session
from messaging.store.models import ConciergeThread, ConversationParticipant
from tasks.concierge_tasks import answer_question
from tests.api.test_admin_api import _ask, _booked
from tests.api.test_event_notifications import OCCURRED_AT, OFFER, event, run


def _delete(client: Any, auth: Any, user_id: str) -> None:
    assert client.delete(f"/v1/users/{user_id}", headers=auth("platform", "service")).status_code == 204


def test_a_deleted_travelers_concierge_transcript_stays_listed_and_readable(
    app: Any, client: Any, auth: Any
) -> None:
    _booked(app, client, auth)
    tomas, root = auth("trav-1", "guest"), auth("root", "admin")
    question = _ask(app, client, tomas, "hello there!")
    conversation = question["conversationId"]
    staff = client.post(f"/v1/admin/transcripts/{conversation}/messages", json={"message": "Rita here."},
                        headers=root).json
    before = client.get(f"/v1/admin/transcripts/{conversation}", headers=root).json["messages"]

    _delete(client, auth, "trav-1")

    # Their tokens are refused and they are in no conversation.
    assert client.get("/v1/concierge", headers=tomas).status_code == 401
    with app.app_context():
        session = get_session()
        assert session.execute(
            select(ConversationParticipant).where(ConversationParticipant.user_id == "trav-1")
        ).first() is None
        thread = session.get(ConciergeThread, conversation)
        assert thread is not None and thread.user_id is None and thread.needs_human is True
        session.close()

    # The transcript is still listed (latest activity first, with nobody left in it) and readable.
    items = client.get("/v1/admin/transcripts", headers=root).json["items"]
    mine = {i["conversationId"]: i for i in items}[conversation]
    assert mine["kind"] == "concierge" and mine["users"] == [] and mine["messageCount"] == 4
    assert mine["conciergeMessageCount"] == 2 and mine["needsHuman"] is True
    assert [i["conversationId"] for i in
            client.get("/v1/admin/transcripts?needsHuman=true", headers=root).json["items"]] == [conversation]
    assert [i["conversationId"] for i in
            client.get("/v1/admin/transcripts?q=hello%20there", headers=root).json["items"]] == [conversation]

    body = client.get(f"/v1/admin/transcripts/{conversation}", headers=root)
    assert body.status_code == 200
    messages = body.json["messages"]
    assert [m["id"] for m in messages] == [m["id"] for m in before]
    assert [m["senderType"] for m in messages] == ["concierge", "deleted", "concierge", "staff"]
    asked = messages[1]
    assert asked["id"] == question["id"] and asked["userId"] is None and asked["message"] == "hello there!"
    assert messages[0]["origin"]["eventType"] == "trip.booked"
    assert messages[2]["origin"] == {"kind": "reply", "questionMessageId": question["id"], "intent": "greeting"}
    assert messages[3]["id"] == staff["id"] and messages[3]["userId"] == "root"
    assert body.json["conversation"]["participants"] == []

    export = f"/v1/admin/transcripts/{conversation}/export"
    as_json = json.loads(client.get(f"{export}?format=json", headers=root).data)["messages"]
    assert [m["senderType"] for m in as_json] == ["concierge", "deleted", "concierge", "staff"]
    rows = list(csv.DictReader(io.StringIO(client.get(f"{export}?format=csv", headers=root).data.decode())))
    assert [(r["senderType"], r["userId"]) for r in rows] == [
        ("concierge", ""), ("deleted", ""), ("concierge", ""), ("staff", "root")]

    # An admin can still take it over, hand it back and write there; nobody is told.
    assert client.post(f"/v1/admin/transcripts/{conversation}/handback", headers=root).status_code == 200
    assert client.post(f"/v1/admin/transcripts/{conversation}/messages", json={"message": "Closing this."},
                       headers=root).status_code == 201

    # Put back by the platform, the user's tokens work again and they get a new concierge conversation; the old
    # one stays a transcript.
    user = {"name": "Tomás", "email": "t@example.com", "phoneNumber": None, "role": "guest"}
    assert client.put("/v1/users/trav-1", json=user, headers=auth("platform", "service")).status_code == 201
    fresh = client.get("/v1/concierge", headers=tomas)
    assert fresh.status_code == 200 and fresh.json["id"] != conversation
    assert client.get(f"/v1/conversations/{conversation}", headers=tomas).status_code == 404
    assert client.get(f"/v1/admin/transcripts/{conversation}", headers=root).status_code == 200


def test_the_bot_does_not_answer_in_a_deleted_users_transcript(app: Any, client: Any, auth: Any) -> None:
    """A question left unanswered when its author was deleted stays unanswered: the thread has no user."""
    _booked(app, client, auth)
    tomas = auth("trav-1", "guest")
    conversation = client.get("/v1/concierge", headers=tomas).json["id"]
    question = client.post(f"/v1/conversations/{conversation}/messages", json={"message": "hello"}, headers=tomas)
    assert question.status_code == 201
    _delete(client, auth, "trav-1")
    with app.app_context():
        assert answer_question.run(question.json["id"]).startswith("skipped")
    messages = client.get(f"/v1/admin/transcripts/{conversation}", headers=auth("root", "admin")).json["messages"]
    assert [m["senderType"] for m in messages] == ["concierge", "deleted"]


def test_a_deleted_travelers_offer_transcript_stays(app: Any, client: Any, auth: Any) -> None:
    assert client.post("/v1/events", json=event("offer.created", "offer", OFFER),
                       headers=auth("platform", "service")).status_code == 202
    assert run(app, "ev-offer.created", OCCURRED_AT) == "processed"
    root = auth("root", "admin")
    [listed] = client.get("/v1/admin/transcripts", headers=root).json["items"]
    conversation = listed["conversationId"]
    assert listed["kind"] == "offer"

    _delete(client, auth, "trav-1")

    with app.app_context():
        session = get_session()
        thread = session.execute(select(OfferThread).where(OfferThread.conversation_id == conversation)).scalar_one()
        assert thread.traveler_id is None
        session.close()
    [still] = [i for i in client.get("/v1/admin/transcripts", headers=root).json["items"]
               if i["conversationId"] == conversation]
    assert still["kind"] == "offer" and still["users"] == [] and still["conciergeMessageCount"] == 1
    body = client.get(f"/v1/admin/transcripts/{conversation}", headers=root)
    assert body.status_code == 200
    assert {m["senderType"] for m in body.json["messages"]} == {"concierge"}
