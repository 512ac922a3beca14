"""Staff replies (SPEC §7, decision 0016): an admin's reply in a transcript — through the admin API or the admin
pages' reply box — is a Message whose author is the admin and whose ``senderType`` is ``staff`` everywhere it is
rendered (the 201, the traveler's history, inbox and conversation, the live event, the transcript, the list and
both exports); it takes a concierge conversation over from the bot, counts as unread for the traveler, and does
not make the admin a participant."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from sqlalchemy import func, select

from messaging.store.db import get_session
from messaging.store.models import ConversationParticipant, InboxEntry, ReadCursor
from tasks.concierge_tasks import answer_question
from tests.api.test_admin_api import _ask, _booked
from tests.api.test_admin_pages import _csrf, _sign_in
from tests.api.test_event_notifications import OCCURRED_AT, OFFER, event, run


def _reply(client: Any, auth: Any, conversation: str, text: str, admin: str = "root") -> dict[str, Any]:
    response = client.post(f"/v1/admin/transcripts/{conversation}/messages", json={"message": text},
                           headers=auth(admin, "admin", name="Rita Root"))
    assert response.status_code == 201, response.json
    return dict(response.json)


def _transcript(client: Any, auth: Any, conversation: str) -> dict[str, Any]:
    response = client.get(f"/v1/admin/transcripts/{conversation}", headers=auth("root", "admin"))
    assert response.status_code == 200, response.json
    return dict(response.json)


def _inbox_item(client: Any, user: dict[str, str], conversation: str) -> dict[str, Any]:
    items = client.get("/v1/conversations", headers=user).json["items"]
    [item] = [c for c in items if c["id"] == conversation]
    return dict(item)


def _admin_rows(app: Any, user_id: str) -> dict[str, int]:
    """How many participations, read cursors and inbox entries ``user_id`` has."""
    with app.app_context():
        session = get_session()
        counts = {
            table.__tablename__: session.execute(
                select(func.count()).select_from(table).where(table.user_id == user_id)
            ).scalar_one()
            for table in (ConversationParticipant, ReadCursor, InboxEntry)
        }
        session.close()
    return counts


def test_a_staff_reply_is_staff_everywhere_and_unread_for_the_traveler_only(
    app: Any, client: Any, auth: Any
) -> None:
    _booked(app, client, auth)
    tomas = auth("trav-1", "guest")
    conversation = _ask(app, client, tomas, "hello there!")["conversationId"]
    unread_before = _inbox_item(client, tomas, conversation)["unreadCount"]
    total_before = client.get("/v1/me/unread", headers=tomas).json["total"]
    bus = app.extensions["live"]
    cursors = {user: bus.start(user, None).cursor for user in ("trav-1", "root")}

    reply = _reply(client, auth, conversation, "  Hi Tomás, Rita from the team here.  ")
    assert reply["senderType"] == "staff" and reply["userId"] == "root"
    assert reply["message"] == "Hi Tomás, Rita from the team here." and reply["read"] is False

    # Live: the traveler gets the same resource; the admin, not a participant, gets nothing.
    told = bus.read("trav-1", cursors["trav-1"], 500)
    assert [(e.type, json.loads(e.data)) for e in told] == [("message.created", reply)]
    assert bus.read("root", cursors["root"], 1) == []

    # The traveler's history, inbox, conversation and unread counts.
    history = client.get(f"/v1/conversations/{conversation}/messages", headers=tomas).json["items"]
    assert [m["senderType"] for m in history] == ["concierge", "user", "concierge", "staff"]
    assert history[-1] == reply
    item = _inbox_item(client, tomas, conversation)
    assert item["lastMessage"] == reply and item["unreadCount"] == unread_before + 1
    assert [p["userId"] for p in item["participants"]] == ["trav-1"]
    assert client.get(f"/v1/conversations/{conversation}", headers=tomas).json == item
    assert client.get("/v1/me/unread", headers=tomas).json["total"] == total_before + 1

    # The admins' views: the transcript, the list's last message, both exports.
    last = _transcript(client, auth, conversation)["messages"][-1]
    assert (last["senderType"], last["userId"], last["message"]) == ("staff", "root", reply["message"])
    assert "origin" not in last
    listed = client.get("/v1/admin/transcripts?userId=trav-1", headers=auth("root", "admin")).json["items"]
    assert [i["lastMessage"]["senderType"] for i in listed] == ["staff"]
    assert [u["userId"] for u in listed[0]["users"]] == ["trav-1"]
    export = f"/v1/admin/transcripts/{conversation}/export"
    as_json = json.loads(client.get(f"{export}?format=json", headers=auth("root", "admin")).data)["messages"]
    assert (as_json[-1]["senderType"], as_json[-1]["userId"]) == ("staff", "root")
    rows = list(csv.DictReader(io.StringIO(client.get(f"{export}?format=csv", headers=auth("root", "admin"))
                                           .data.decode())))
    assert (rows[-1]["senderType"], rows[-1]["userId"], rows[-1]["id"]) == ("staff", "root", reply["id"])

    # The admin is not a participant: no inbox entry, cursor or unread count of theirs.
    root = auth("root", "admin")
    assert _admin_rows(app, "root") == {"conversation_participants": 0, "read_cursors": 0, "inbox_entries": 0}
    assert client.get("/v1/conversations", headers=root).json["items"] == []
    assert client.get("/v1/me/unread", headers=root).json["total"] == 0
    assert client.get(f"/v1/conversations/{conversation}", headers=root).status_code == 404
    assert client.get(f"/v1/conversations/{conversation}/messages", headers=root).status_code == 404

    # Once the traveler, its only participant, has read it, it is read.
    read = client.post(f"/v1/conversations/{conversation}/read", json={}, headers=tomas)
    assert read.status_code == 200 and read.json["unreadCount"] == 0
    seen = client.get(f"/v1/conversations/{conversation}/messages", headers=tomas).json["items"][-1]
    assert seen["id"] == reply["id"] and seen["read"] is True and seen["senderType"] == "staff"
    assert _inbox_item(client, tomas, conversation)["lastMessage"]["read"] is True


def test_a_staff_reply_takes_the_conversation_from_the_bot_until_handed_back(
    app: Any, client: Any, auth: Any
) -> None:
    _booked(app, client, auth)
    tomas, root = auth("trav-1", "guest"), auth("root", "admin")
    conversation = _ask(app, client, tomas, "hello there!")["conversationId"]
    assert _transcript(client, auth, conversation)["needsHuman"] is False

    _reply(client, auth, conversation, "Rita here, I'll look after you.")
    assert _transcript(client, auth, conversation)["needsHuman"] is True
    listed = client.get("/v1/admin/transcripts?needsHuman=true", headers=root).json["items"]
    assert [i["conversationId"] for i in listed] == [conversation]

    # The traveler's next question gets no answer from the bot.
    question = client.post(f"/v1/conversations/{conversation}/messages", json={"message": "when is check in?"},
                           headers=tomas)
    assert question.status_code == 201
    with app.app_context():
        assert answer_question.run(question.json["id"]) == "skipped: a person has this conversation"
    messages = _transcript(client, auth, conversation)["messages"]
    assert messages[-1]["id"] == question.json["id"]

    # A second reply while a person has it changes nothing else; the thread stays taken over.
    assert _reply(client, auth, conversation, "Check-in is from 15:00.", admin="agent-2")["senderType"] == "staff"
    assert _transcript(client, auth, conversation)["needsHuman"] is True
    assert _admin_rows(app, "agent-2")["conversation_participants"] == 0

    # Handed back, the bot answers again.
    assert client.post(f"/v1/admin/transcripts/{conversation}/handback", headers=root).json["needsHuman"] is False
    _ask(app, client, tomas, "thank you so much!")
    last = _transcript(client, auth, conversation)["messages"][-1]
    assert last["senderType"] == "concierge" and last["origin"]["intent"] == "thanks"


def test_a_reply_refused_takes_nothing_over(app: Any, client: Any, auth: Any) -> None:
    _booked(app, client, auth)
    conversation = client.get("/v1/concierge", headers=auth("trav-1", "guest")).json["id"]
    refused = client.post(f"/v1/admin/transcripts/{conversation}/messages", json={"message": "   "},
                          headers=auth("root", "admin"))
    assert refused.status_code == 422
    assert _transcript(client, auth, conversation)["needsHuman"] is False
    assert _admin_rows(app, "root") == {"conversation_participants": 0, "read_cursors": 0, "inbox_entries": 0}


def test_the_pages_reply_box_sends_a_staff_reply(app: Any, client: Any, auth: Any, token: Any) -> None:
    _booked(app, client, auth)
    tomas = auth("trav-1", "guest")
    conversation = client.get("/v1/concierge", headers=tomas).json["id"]
    _sign_in(client, token("root", "admin", name="Rita Root"))
    page = client.get(f"/admin/transcripts/{conversation}").get_data(as_text=True)
    sent = client.post(f"/admin/transcripts/{conversation}/reply",
                       data={"csrf_token": _csrf(page), "message": "Rita from the team here."})
    assert sent.status_code == 303
    html = client.get(f"/admin/transcripts/{conversation}").get_data(as_text=True)
    assert 'class="message staff"' in html and '<span class="badge staff">staff</span>' in html
    assert "Rita Root" in html and "A human has this conversation" in html

    last = client.get(f"/v1/conversations/{conversation}/messages", headers=tomas).json["items"][-1]
    assert (last["senderType"], last["userId"], last["message"]) == ("staff", "root", "Rita from the team here.")
    assert _inbox_item(client, tomas, conversation)["unreadCount"] == 2  # the booking message and the reply
    assert _admin_rows(app, "root") == {"conversation_participants": 0, "read_cursors": 0, "inbox_entries": 0}


def test_a_staff_reply_in_an_offer_conversation_reaches_its_traveler(app: Any, client: Any, auth: Any) -> None:
    """An offer conversation is a transcript too, with no bot to take it from: the reply is staff there, told to
    its participant (the traveler) only, and unread for them."""
    assert client.post("/v1/events", json=event("offer.created", "offer", OFFER),
                       headers=auth("platform", "service")).status_code == 202
    assert run(app, "ev-offer.created", OCCURRED_AT) == "processed"
    [listed] = client.get("/v1/admin/transcripts", headers=auth("root", "admin")).json["items"]
    assert listed["kind"] == "offer"
    conversation = listed["conversationId"]
    tomas = auth("trav-1", "guest")
    before = _inbox_item(client, tomas, conversation)["unreadCount"]
    bus = app.extensions["live"]
    cursors = {user: bus.start(user, None).cursor for user in ("trav-1", "host-1", "root")}

    reply = _reply(client, auth, conversation, "The team here: the offer holds until Friday.")
    assert reply["senderType"] == "staff"
    item = _inbox_item(client, tomas, conversation)
    assert item["lastMessage"] == reply and item["unreadCount"] == before + 1
    told = bus.read("trav-1", cursors["trav-1"], 500)
    assert [(e.type, json.loads(e.data)) for e in told] == [("message.created", reply)]
    assert all(bus.read(user, cursors[user], 1) == [] for user in ("host-1", "root"))
    assert _transcript(client, auth, conversation)["needsHuman"] is False
    assert _admin_rows(app, "root")["inbox_entries"] == 0
