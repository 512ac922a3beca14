"""Conversations, messages, edits and read state, black-box through the HTTP API (SPEC §2–§4)."""

from __future__ import annotations

import base64
import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
from sqlalchemy import delete, func, select

from messaging.chat import conversations as svc
from messaging.chat.pagination import encode_cursor
from messaging.chat.resources import offer_id_json
from messaging.store.db import get_session
from messaging.store.models import (
    ConciergeThread,
    Conversation,
    DirectConversation,
    MessageEdit,
    Offer,
    Property,
    User,
)

MESSAGE_KEYS = {"id", "conversationId", "userId", "senderType", "message", "read", "isEdit", "createdAt"}
CONVERSATION_KEYS = {
    "id",
    "name",
    "offerId",
    "createdAt",
    "isConcierge",
    "participants",
    "lastMessage",
    "unreadCount",
}


# --- helpers --------------------------------------------------------------------------------------


def join(client, auth, *subs: str, role: str = "guest") -> None:
    """Bring users into existence (just-in-time) with their name = the sub capitalised."""
    for sub in subs:
        r = client.get("/v1/me", headers=auth(sub, role, name=sub.capitalize()))
        assert r.status_code == 200, r.json


def create(client, auth, sub, participant_ids, **extra):
    return client.post(
        "/v1/conversations", headers=auth(sub, "guest"), json={"participantIds": participant_ids, **extra}
    )


def group(client, auth, owner, others, name="Trip planning") -> str:
    r = create(client, auth, owner, list(others), name=name)
    assert r.status_code == 201, r.json
    return r.json["id"]


def post(client, auth, sub, cid, text):
    return client.post(f"/v1/conversations/{cid}/messages", headers=auth(sub, "guest"), json={"message": text})


def posted(client, auth, sub, cid, text) -> dict:
    r = post(client, auth, sub, cid, text)
    assert r.status_code == 201, r.json
    return r.json


def conversation(client, auth, sub, cid) -> dict:
    r = client.get(f"/v1/conversations/{cid}", headers=auth(sub, "guest"))
    assert r.status_code == 200, r.json
    return r.json


def all_history(client, auth, sub, cid) -> list[dict]:
    r = client.get(f"/v1/conversations/{cid}/messages?limit=100", headers=auth(sub, "guest"))
    assert r.status_code == 200, r.json
    assert r.json["nextCursor"] is None
    return r.json["items"]


def inbox_item(client, auth, sub, cid) -> dict:
    r = client.get("/v1/conversations?limit=100", headers=auth(sub, "guest"))
    assert r.status_code == 200, r.json
    items = [c for c in r.json["items"] if c["id"] == cid]
    assert len(items) == 1, r.json
    return items[0]


def assert_utc_iso(value: str) -> dt.datetime:
    assert isinstance(value, str)
    assert value.endswith("Z") or value.endswith("+00:00"), value
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset() == dt.timedelta(0)
    return parsed


def assert_problem(r, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.get_data(as_text=True))
    assert r.content_type == "application/problem+json"
    assert r.json["status"] == status
    return r.json


# --- create ---------------------------------------------------------------------------------------


def test_create_group_lists_caller_and_named_participants(client, auth):
    join(client, auth, "ana", "bob", "cy")
    r = create(client, auth, "ana", ["bob", "cy"], name="Lisbon trip")
    assert r.status_code == 201, r.json
    body = r.json
    assert set(body) == CONVERSATION_KEYS
    assert body["name"] == "Lisbon trip"
    assert body["offerId"] is None
    assert body["isConcierge"] is False
    assert body["unreadCount"] == 0
    assert body["lastMessage"] is None
    assert_utc_iso(body["createdAt"])
    participants = {p["userId"]: p for p in body["participants"]}
    assert set(participants) == {"ana", "bob", "cy"}
    assert {p["name"] for p in body["participants"]} == {"Ana", "Bob", "Cy"}
    assert all(set(p) == {"userId", "name", "lastReadAt"} for p in body["participants"])
    # Each named person can see it.
    for sub in ("bob", "cy"):
        assert conversation(client, auth, sub, body["id"])["id"] == body["id"]


def test_direct_message_is_created_once_and_returned_from_either_side(client, auth):
    join(client, auth, "ana", "bob")
    first = create(client, auth, "ana", ["bob"])
    assert first.status_code == 201, first.json
    again = create(client, auth, "ana", ["bob"])
    assert again.status_code == 200, again.json
    other_side = create(client, auth, "bob", ["ana"])
    assert other_side.status_code == 200, other_side.json
    # The caller named among the participants changes nothing: still the DM.
    with_self = create(client, auth, "bob", ["ana", "bob"])
    assert with_self.status_code == 200, with_self.json
    ids = {first.json["id"], again.json["id"], other_side.json["id"], with_self.json["id"]}
    assert len(ids) == 1
    assert {p["userId"] for p in first.json["participants"]} == {"ana", "bob"}
    assert first.json["name"] is None


def seed_offer(app, offer_id: int = 17, traveler: str = "ana", host: str = "hal", property_id: int = 10) -> None:
    """Offer ``offer_id`` to ``traveler`` on a property of ``host`` (both users already exist)."""
    with app.app_context():
        session = get_session()
        if session.get(Property, property_id) is None:
            session.add(Property(id=property_id, host_id=host, name="Casa Azul", city="Lisbon"))
            session.flush()
        session.add(Offer(id=offer_id, property_id=property_id, traveler_id=traveler, check_in=dt.date(2026, 12, 1),
                          check_out=dt.date(2026, 12, 5), total_price_cents=100_00, currency="USD",
                          status="Pending"))
        session.commit()


def test_a_name_or_an_offer_id_makes_a_new_conversation_each_time(app, client, auth):
    join(client, auth, "ana", "bob", "hal")
    seed_offer(app)
    dm = create(client, auth, "ana", ["bob"])
    assert dm.status_code == 201
    named = [create(client, auth, "ana", ["bob"], name="Dinner") for _ in range(2)]
    assert [r.status_code for r in named] == [201, 201]
    offered = [create(client, auth, "ana", ["bob"], offerId=17) for _ in range(2)]
    assert [r.status_code for r in offered] == [201, 201]
    assert offered[0].json["offerId"] == 17
    assert offered[0].json["name"] == "Offer · Casa Azul · 1–5 Dec"  # named after the offer when given no name
    named_offer = create(client, auth, "ana", ["bob"], offerId=17, name="Our trip")
    assert named_offer.json["name"] == "Our trip"
    ids = {dm.json["id"], *(r.json["id"] for r in named), *(r.json["id"] for r in offered)}
    assert len(ids) == 5 and named_offer.json["id"] not in ids
    assert conversation(client, auth, "bob", offered[1].json["id"])["offerId"] == 17


def test_an_offer_conversation_is_for_the_offers_traveler_or_its_host(app, client, auth):
    """offerId is an integer naming an offer the caller is party to, and every rendering gives it as one."""
    join(client, auth, "ana", "bob", "hal")
    seed_offer(app)
    by_traveler = create(client, auth, "ana", ["hal"], offerId=17)
    assert by_traveler.status_code == 201, by_traveler.json
    by_host = create(client, auth, "hal", ["ana"], offerId=17)
    assert by_host.status_code == 201, by_host.json
    for r in (by_traveler, by_host):
        cid = r.json["id"]
        assert r.json["offerId"] == 17
        for sub in ("ana", "hal"):
            assert conversation(client, auth, sub, cid)["offerId"] == 17
            assert inbox_item(client, auth, sub, cid)["offerId"] == 17  # the inbox (the fast lane on PostgreSQL)
    # Someone else's offer and an unknown one get the same answer: nothing says whether the offer exists.
    not_party = assert_problem(create(client, auth, "bob", ["ana"], offerId=17), 422)
    unknown = assert_problem(create(client, auth, "ana", ["bob"], offerId=999), 422)
    assert not_party["errors"] == unknown["errors"] == [{"field": "offerId", "message": "no such offer of yours"}]
    assert not_party["detail"] == unknown["detail"]
    for wrong in ("17", 17.0, 0, -1, 2**31, True):
        problem = assert_problem(create(client, auth, "ana", ["bob"], offerId=wrong), 422)
        assert [e["field"] for e in problem["errors"]] == ["offerId"], wrong
    assert client.get("/v1/conversations", headers=auth("bob")).json["items"] == []


def test_the_document_gives_offer_id_as_an_integer(client):
    schemas = client.get("/openapi.json").json["components"]["schemas"]
    for name in ("CreateConversationIn", "ConversationOut"):
        types = {s.get("type") for s in schemas[name]["properties"]["offerId"]["anyOf"]}
        assert types == {"integer", "null"}, name


@pytest.mark.parametrize(("stored", "shown"), [
    (None, None), ("17", 17), ("2147483647", 2**31 - 1), ("offer-17", None), ("", None), ("0", None),
    ("2147483648", None), ("-3", None), ("١٧", None), ("99999999999999999999999", None),
])
def test_a_stored_offer_id_is_shown_as_an_integer_or_null(stored, shown):
    """conversations.offer_id is the seed's varchar: what is not an offer's key (a value stored before offers were
    checked) is shown as null."""
    assert offer_id_json(stored) == shown


def test_unknown_participants_are_named_in_the_422(client, auth):
    join(client, auth, "ana", "bob")
    r = create(client, auth, "ana", ["bob", "ghost-1", "ghost-2"], name="x")
    problem = assert_problem(r, 422)
    text = orjson.dumps(problem).decode()
    assert "ghost-1" in text and "ghost-2" in text
    assert "bob" not in problem["detail"]
    # Nothing was created.
    r = client.get("/v1/conversations", headers=auth("ana"))
    assert r.json["items"] == []


@pytest.mark.parametrize("ids", [[], ["ana"], ["ana", "ana"]])
def test_nobody_but_the_caller_is_422(client, auth, ids):
    join(client, auth, "ana")
    assert_problem(create(client, auth, "ana", ids), 422)


def test_at_most_fifty_participants(client, app, auth):
    join(client, auth, "ana")
    with app.app_context():
        session = get_session()
        session.add_all(User(id=f"user-{i:02d}", name=f"User {i}", role="guest") for i in range(51))
        session.commit()
    # 49 others + the caller = 50: allowed.
    ok = create(client, auth, "ana", [f"user-{i:02d}" for i in range(49)], name="fifty")
    assert ok.status_code == 201, ok.json
    assert len(ok.json["participants"]) == 50
    # 50 others + the caller = 51, and 51 named: refused, although every user exists.
    assert_problem(create(client, auth, "ana", [f"user-{i:02d}" for i in range(50)], name="x"), 422)
    assert_problem(create(client, auth, "ana", [f"user-{i:02d}" for i in range(51)], name="x"), 422)


@pytest.mark.parametrize(
    "body",
    [
        {"participantIds": ["bob"], "colour": "red"},
        {"participantIds": "bob"},
        {"participantIds": ["bob"], "name": 42},
        {"participantIds": [42]},
        {"participantIds": ["bob"], "name": ""},
        {"participantIds": ["bob"], "offerId": "7"},
        {},
    ],
)
def test_invalid_bodies_are_422(client, auth, body):
    join(client, auth, "ana", "bob")
    r = client.post("/v1/conversations", headers=auth("ana"), json=body)
    assert_problem(r, 422)
    assert client.get("/v1/conversations", headers=auth("ana")).json["items"] == []


def test_malformed_json_is_400(client, auth):
    join(client, auth, "ana", "bob")
    r = client.post(
        "/v1/conversations", headers=auth("ana"), data='{"participantIds": ["bob"', content_type="application/json"
    )
    assert_problem(r, 400)


def test_no_token_is_401_and_a_service_token_403(client, auth):
    join(client, auth, "bob")
    r = client.post("/v1/conversations", json={"participantIds": ["bob"]})
    assert_problem(r, 401)
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = client.post("/v1/conversations", headers=auth("platform", "service"), json={"participantIds": ["bob"]})
    assert_problem(r, 403)
    assert_problem(client.get("/v1/conversations", headers=auth("platform", "service")), 403)


# --- get ------------------------------------------------------------------------------------------


def test_get_is_for_participants_only_and_404_otherwise(client, auth):
    join(client, auth, "ana", "bob", "eve")
    cid = group(client, auth, "ana", ["bob"])
    assert conversation(client, auth, "bob", cid)["id"] == cid
    outsider = client.get(f"/v1/conversations/{cid}", headers=auth("eve"))
    assert_problem(outsider, 404)
    missing = client.get("/v1/conversations/AAAAAAAAAAAAAAAAAAAAA", headers=auth("eve"))
    assert_problem(missing, 404)
    # The outsider's 404 is indistinguishable from that of a conversation that does not exist.
    assert outsider.json["detail"] == missing.json["detail"]
    # Nor can the outsider read or write its messages.
    assert_problem(client.get(f"/v1/conversations/{cid}/messages", headers=auth("eve")), 404)
    assert_problem(post(client, auth, "eve", cid, "hi"), 404)
    assert_problem(client.post(f"/v1/conversations/{cid}/read", headers=auth("eve"), json={}), 404)


@pytest.mark.parametrize("cid", ["x" * 500, "x" * 22, "%00", "a%00b", "%C3%A9t%C3%A9", "..%2F..%2Fetc"])
def test_odd_ids_are_404_or_422_never_500(client, auth, cid):
    join(client, auth, "ana")
    headers = auth("ana")
    for r in (
        client.get(f"/v1/conversations/{cid}", headers=headers),
        client.get(f"/v1/conversations/{cid}/messages", headers=headers),
        client.post(f"/v1/conversations/{cid}/messages", headers=headers, json={"message": "hi"}),
        client.post(f"/v1/conversations/{cid}/read", headers=headers, json={}),
        client.post(f"/v1/conversations/{cid}/participants", headers=headers, json={"userId": "ana"}),
        client.delete(f"/v1/conversations/{cid}/participants/ana", headers=headers),
        client.patch(f"/v1/messages/{cid}", headers=headers, json={"message": "hi"}),
    ):
        assert r.status_code in (404, 422), (r.request.method, r.request.path, r.status_code, r.get_data())


# --- participants ---------------------------------------------------------------------------------


def test_add_participant(client, auth):
    join(client, auth, "ana", "bob", "cy", "eve")
    cid = group(client, auth, "ana", ["bob"])
    assert_problem(client.get(f"/v1/conversations/{cid}", headers=auth("cy")), 404)
    r = client.post(f"/v1/conversations/{cid}/participants", headers=auth("bob"), json={"userId": "cy"})
    assert r.status_code == 201, r.json
    assert {p["userId"] for p in r.json["participants"]} == {"ana", "bob", "cy"}
    again = client.post(f"/v1/conversations/{cid}/participants", headers=auth("ana"), json={"userId": "cy"})
    assert again.status_code == 200, again.json
    assert len(again.json["participants"]) == 3
    # The newcomer sees it, in GET and in the inbox.
    assert conversation(client, auth, "cy", cid)["id"] == cid
    assert inbox_item(client, auth, "cy", cid)["id"] == cid
    # An outsider cannot add anyone (not even themselves), and learns nothing.
    r = client.post(f"/v1/conversations/{cid}/participants", headers=auth("eve"), json={"userId": "eve"})
    assert_problem(r, 404)
    # An unknown user is 422; a malformed body too.
    r = client.post(f"/v1/conversations/{cid}/participants", headers=auth("ana"), json={"userId": "ghost"})
    assert "ghost" in orjson.dumps(assert_problem(r, 422)).decode()
    r = client.post(f"/v1/conversations/{cid}/participants", headers=auth("ana"), json={"user": "eve"})
    assert_problem(r, 422)
    assert_problem(client.get(f"/v1/conversations/{cid}", headers=auth("eve")), 404)


def test_leave(client, auth):
    join(client, auth, "ana", "bob", "cy", "eve")
    cid = group(client, auth, "ana", ["bob", "cy"])
    # Removing someone else: 403, and they stay.
    assert_problem(client.delete(f"/v1/conversations/{cid}/participants/cy", headers=auth("ana")), 403)
    assert len(conversation(client, auth, "cy", cid)["participants"]) == 3
    # An outsider: 404 whoever they name.
    assert_problem(client.delete(f"/v1/conversations/{cid}/participants/eve", headers=auth("eve")), 404)
    assert_problem(client.delete(f"/v1/conversations/{cid}/participants/ana", headers=auth("eve")), 404)
    # Leaving yourself: 204, then the conversation is gone for you, not for the others.
    r = client.delete(f"/v1/conversations/{cid}/participants/bob", headers=auth("bob"))
    assert r.status_code == 204, r.get_data()
    assert r.get_data() == b""
    assert_problem(client.get(f"/v1/conversations/{cid}", headers=auth("bob")), 404)
    assert_problem(post(client, auth, "bob", cid, "still here?"), 404)
    assert cid not in [c["id"] for c in client.get("/v1/conversations", headers=auth("bob")).json["items"]]
    assert {p["userId"] for p in conversation(client, auth, "ana", cid)["participants"]} == {"ana", "cy"}
    assert_problem(client.delete(f"/v1/conversations/{cid}/participants/bob", headers=auth("bob")), 404)


# --- messages -------------------------------------------------------------------------------------


def test_post_message_returns_the_message_shape(client, auth):
    join(client, auth, "ana", "bob")
    cid = group(client, auth, "ana", ["bob"])
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    r = post(client, auth, "ana", cid, "  Hello, Bob!\n ")
    assert r.status_code == 201, r.json
    m = r.json
    assert set(m) == MESSAGE_KEYS
    assert m["conversationId"] == cid
    assert m["userId"] == "ana"
    assert m["senderType"] == "user"
    assert m["message"] == "Hello, Bob!"
    assert m["read"] is False
    assert m["isEdit"] is False
    assert isinstance(m["id"], str) and len(m["id"]) == 21
    created = assert_utc_iso(m["createdAt"])
    assert before <= created <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    # What is stored is the trimmed text, as returned.
    [stored] = all_history(client, auth, "bob", cid)
    assert stored == m


@pytest.mark.parametrize("text", ["", " ", "   \n\t  ", "\u3000"])
def test_blank_messages_are_422(client, auth, text):
    join(client, auth, "ana", "bob")
    cid = group(client, auth, "ana", ["bob"])
    problem = assert_problem(post(client, auth, "ana", cid, text), 422)
    assert any(e["field"] == "message" for e in problem.get("errors", [])), problem
    assert all_history(client, auth, "ana", cid) == []


def test_message_length_limits_apply_after_trimming(client, auth):
    join(client, auth, "ana", "bob")
    cid = group(client, auth, "ana", ["bob"])
    exact = "é" * 1499 + "x"
    r = post(client, auth, "ana", cid, "  " + exact + "  ")
    assert r.status_code == 201, r.json
    assert r.json["message"] == exact
    assert_problem(post(client, auth, "ana", cid, "y" * 1501), 422)
    assert_problem(post(client, auth, "ana", cid, " " + "y" * 1501 + " "), 422)
    assert_problem(post(client, auth, "ana", cid, "y" * 30_000), 422)
    assert_problem(post(client, auth, "ana", cid, "y" * 100_000), 413)  # beyond the body limit
    assert [m["message"] for m in all_history(client, auth, "bob", cid)] == [exact]


@pytest.mark.parametrize(
    "body", [{"message": 42}, {"message": None}, {"message": ["hi"]}, {}, {"message": "hi", "x": 1}]
)
def test_non_string_or_extra_message_fields_are_422(client, auth, body):
    join(client, auth, "ana", "bob")
    cid = group(client, auth, "ana", ["bob"])
    r = client.post(f"/v1/conversations/{cid}/messages", headers=auth("ana"), json=body)
    assert_problem(r, 422)
    assert all_history(client, auth, "ana", cid) == []


def _page_through(client, headers, cid, param: str | None, cursor: str | None = None) -> list[list[dict]]:
    pages = []
    url = f"/v1/conversations/{cid}/messages?limit=50"
    seen_cursors = set()
    while True:
        r = client.get(url + (f"&{param}={cursor}" if cursor else ""), headers=headers)
        assert r.status_code == 200, r.json
        pages.append(r.json["items"])
        cursor = r.json["nextCursor"]
        if cursor is None:
            return pages
        assert cursor not in seen_cursors
        seen_cursors.add(cursor)
        assert len(pages) < 10, "pagination does not end"


def test_history_pages_backward_exactly_once_in_order(client, auth):
    join(client, auth, "ana", "bob")
    cid = group(client, auth, "ana", ["bob"])
    sent = [posted(client, auth, "ana" if i % 3 else "bob", cid, f"message {i}")["id"] for i in range(120)]

    backward = _page_through(client, auth("bob"), cid, "before")
    assert [len(p) for p in backward] == [50, 50, 20]
    for page in backward:  # oldest → newest inside a page
        stamps = [(m["createdAt"], m["id"]) for m in page]
        assert stamps == sorted(stamps)
    # Newest page first: the pages in reverse order are the whole history, each message once, in order.
    assert [m["id"] for page in reversed(backward) for m in page] == sent
    assert [m["message"] for m in backward[0]] == [f"message {i}" for i in range(70, 120)]
    assert [m["message"] for m in backward[2]] == [f"message {i}" for i in range(20)]


def test_history_pages_forward_exactly_once_in_order(client, auth):
    join(client, auth, "ana", "bob")
    cid = group(client, auth, "ana", ["bob"])
    sent = [posted(client, auth, "bob" if i % 4 else "ana", cid, f"message {i}")["id"] for i in range(120)]
    headers = auth("ana")

    # From the very beginning: a position before every message (the cursor format is the service's own).
    start = encode_cursor(dt.datetime(2000, 1, 1, tzinfo=dt.UTC), "")
    forward = _page_through(client, headers, cid, "after", start)
    assert [len(p) for p in forward] == [50, 50, 20]
    for page in forward:
        stamps = [(m["createdAt"], m["id"]) for m in page]
        assert stamps == sorted(stamps)
    assert [m["id"] for page in forward for m in page] == sent

    # With only the API's own cursors: the oldest item of a backward page is where `after` resumes.
    r = client.get(f"/v1/conversations/{cid}/messages?limit=100", headers=headers)
    assert [m["id"] for m in r.json["items"]] == sent[20:]
    at = r.json["nextCursor"]  # the position of sent[20]
    older = client.get(f"/v1/conversations/{cid}/messages?limit=100&before={at}", headers=headers).json
    assert [m["id"] for m in older["items"]] == sent[:20]
    assert older["nextCursor"] is None
    newer = _page_through(client, headers, cid, "after", at)
    assert [len(p) for p in newer] == [50, 49]
    assert [m["id"] for page in newer for m in page] == sent[21:]


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=abc", "limit=-1", "limit=1.5", "colour=red"])
def test_history_bad_limits_are_422(client, auth, query):
    join(client, auth, "ana", "bob")
    cid = group(client, auth, "ana", ["bob"])
    assert_problem(client.get(f"/v1/conversations/{cid}/messages?{query}", headers=auth("ana")), 422)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


GARBAGE_CURSORS = [
    "garbage",
    "!!!!",
    "%00",
    _b64(b"not json"),
    _b64(b"[]"),
    _b64(b"[1, 2]"),
    _b64(b'["2026-01-01T00:00:00", "abc"]'),  # naive
    _b64(b'["2026-01-01T00:00:00+00:00"]'),
    _b64(b'["2026-01-01T00:00:00+00:00", 5]'),
    _b64(b'"2026-01-01T00:00:00+00:00"'),
    _b64(b"42"),
    _b64(b"null"),
    "x" * 201,
]


@pytest.mark.parametrize("cursor", GARBAGE_CURSORS)
@pytest.mark.parametrize("param", ["before", "after"])
def test_garbage_history_cursors_are_422(client, auth, cursor, param):
    join(client, auth, "ana", "bob")
    cid = group(client, auth, "ana", ["bob"])
    posted(client, auth, "ana", cid, "hi")
    problem = assert_problem(client.get(f"/v1/conversations/{cid}/messages?{param}={cursor}", headers=auth("ana")), 422)
    # Named as the parameter (or, for a NUL, the query string as a whole).
    assert any(param in e["field"] or e["field"] == "query" for e in problem["errors"]), problem


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param(_b64(b'{"0": "2026-01-01T00:00:00+00:00", "1": "abc"}'), id="json-object"),
        pytest.param(_b64(b'["2026-01-01T00:00:00+00:00", "a\\u0000b"]'), id="nul-in-id"),
    ],
)
def test_crafted_history_cursors_are_422(client, auth, cursor):
    join(client, auth, "ana", "bob")
    cid = group(client, auth, "ana", ["bob"])
    posted(client, auth, "ana", cid, "hi")
    for param in ("before", "after"):
        r = client.get(f"/v1/conversations/{cid}/messages?{param}={cursor}", headers=auth("ana"))
        problem = assert_problem(r, 422)
        assert any(e["field"] == param for e in problem["errors"]), problem


# --- edits ----------------------------------------------------------------------------------------


def test_author_edits_and_every_previous_text_is_kept(client, app, auth):
    join(client, auth, "ana", "bob")
    cid = group(client, auth, "ana", ["bob"])
    m = posted(client, auth, "ana", cid, "first")
    r = client.patch(f"/v1/messages/{m['id']}", headers=auth("ana"), json={"message": "  second "})
    assert r.status_code == 200, r.json
    assert set(r.json) == MESSAGE_KEYS
    assert r.json["isEdit"] is True
    assert r.json["message"] == "second"
    assert r.json["id"] == m["id"]
    assert r.json["createdAt"] == m["createdAt"]
    r = client.patch(f"/v1/messages/{m['id']}", headers=auth("ana"), json={"message": "third"})
    assert r.status_code == 200, r.json
    assert r.json["message"] == "third"
    [seen] = all_history(client, auth, "bob", cid)
    assert (seen["message"], seen["isEdit"]) == ("third", True)
    with app.app_context():
        edits = (
            get_session()
            .execute(
                select(MessageEdit.previous_message, MessageEdit.edited_at)
                .where(MessageEdit.message_id == m["id"])
                .order_by(MessageEdit.edited_at, MessageEdit.id)
            )
            .all()
        )
    assert [e.previous_message for e in edits] == ["first", "second"]
    assert edits[0].edited_at <= edits[1].edited_at


def test_edit_permissions_and_validation(client, app, auth):
    join(client, auth, "ana", "bob", "eve")
    cid = group(client, auth, "ana", ["bob"])
    m = posted(client, auth, "ana", cid, "original")
    assert_problem(client.patch(f"/v1/messages/{m['id']}", headers=auth("bob"), json={"message": "hacked"}), 403)
    assert_problem(client.patch(f"/v1/messages/{m['id']}", headers=auth("eve"), json={"message": "hacked"}), 404)
    assert_problem(client.patch("/v1/messages/AAAAAAAAAAAAAAAAAAAAA", headers=auth("ana"), json={"message": "x"}), 404)
    assert_problem(client.patch(f"/v1/messages/{m['id']}", headers=auth("ana"), json={"message": "   "}), 422)
    assert_problem(client.patch(f"/v1/messages/{m['id']}", headers=auth("ana"), json={"message": "z" * 1501}), 422)
    assert_problem(client.patch(f"/v1/messages/{m['id']}", headers=auth("ana"), json={"message": 5}), 422)
    with app.app_context():
        session = get_session()
        concierge = svc.post_message(session, cid, None, "The concierge speaks.", origin={"kind": "system"})
        session.commit()
    for who in ("ana", "bob"):
        r = client.patch(f"/v1/messages/{concierge['id']}", headers=auth(who), json={"message": "rewritten"})
        assert_problem(r, 403)
    history = all_history(client, auth, "ana", cid)
    assert [(h["message"], h["isEdit"]) for h in history] == [("original", False), ("The concierge speaks.", False)]
    with app.app_context():
        assert get_session().scalar(select(func.count()).select_from(MessageEdit)) == 0


# --- read state -----------------------------------------------------------------------------------


def _unread(client, auth, sub, cid) -> tuple[int, int]:
    return conversation(client, auth, sub, cid)["unreadCount"], inbox_item(client, auth, sub, cid)["unreadCount"]


def _read(client, auth, sub, cid, up_to=None):
    body = {} if up_to is None else {"upTo": up_to}
    return client.post(f"/v1/conversations/{cid}/read", headers=auth(sub), json=body)


def test_read_state_in_a_three_person_group(client, auth):
    join(client, auth, "a", "b", "c")
    cid = group(client, auth, "a", ["b", "c"])
    m = [posted(client, auth, "a", cid, f"news {i}") for i in range(3)]
    assert _unread(client, auth, "a", cid) == (0, 0)  # posting marks the author's own cursor
    assert _unread(client, auth, "b", cid) == (3, 3)
    assert _unread(client, auth, "c", cid) == (3, 3)
    participants = {p["userId"]: p for p in conversation(client, auth, "b", cid)["participants"]}
    assert participants["b"]["lastReadAt"] is None and participants["c"]["lastReadAt"] is None
    assert participants["a"]["lastReadAt"] is not None

    # b reads everything; c has not, so nothing is `read` yet.
    r = _read(client, auth, "b", cid)
    assert r.status_code == 200, r.json
    assert r.json == {"unreadCount": 0}
    assert _unread(client, auth, "b", cid) == (0, 0)
    assert _unread(client, auth, "c", cid) == (3, 3)
    assert [x["read"] for x in all_history(client, auth, "a", cid)] == [False, False, False]
    participants = {p["userId"]: p for p in conversation(client, auth, "a", cid)["participants"]}
    assert_utc_iso(participants["b"]["lastReadAt"])
    assert participants["c"]["lastReadAt"] is None

    # c reads up to the second message: one left for c, and the first two are read by everyone.
    r = _read(client, auth, "c", cid, m[1]["id"])
    assert r.status_code == 200, r.json
    assert r.json == {"unreadCount": 1}
    assert _unread(client, auth, "c", cid) == (1, 1)
    assert [x["read"] for x in all_history(client, auth, "b", cid)] == [True, True, False]
    participants = {p["userId"]: p for p in conversation(client, auth, "a", cid)["participants"]}
    assert_utc_iso(participants["c"]["lastReadAt"])
    assert conversation(client, auth, "a", cid)["lastMessage"]["read"] is False

    # c reads the rest: all read; the inbox's lastMessage says so.
    assert _read(client, auth, "c", cid).json == {"unreadCount": 0}
    assert [x["read"] for x in all_history(client, auth, "c", cid)] == [True, True, True]
    assert inbox_item(client, auth, "a", cid)["lastMessage"]["read"] is True

    # The cursor never moves backward.
    r = _read(client, auth, "c", cid, m[0]["id"])
    assert r.status_code == 200, r.json
    assert r.json == {"unreadCount": 0}
    assert _unread(client, auth, "c", cid) == (0, 0)


def test_read_cursor_does_not_move_backward_from_a_partial_position(client, auth):
    join(client, auth, "a", "b")
    cid = group(client, auth, "a", ["b"])
    m = [posted(client, auth, "a", cid, f"n{i}") for i in range(4)]
    assert _read(client, auth, "b", cid, m[2]["id"]).json == {"unreadCount": 1}
    assert _read(client, auth, "b", cid, m[0]["id"]).json == {"unreadCount": 1}
    assert _unread(client, auth, "b", cid) == (1, 1)
    assert [x["read"] for x in all_history(client, auth, "a", cid)] == [True, True, True, False]


def test_a_backward_read_keeps_the_position_for_everyone(client, auth):
    """c reads everything, then "reads" up to the first message: c's position stays at the end,
    so when b reads too, every message is read by everyone."""
    join(client, auth, "a", "b", "c")
    cid = group(client, auth, "a", ["b", "c"])
    m = [posted(client, auth, "a", cid, f"n{i}") for i in range(3)]
    assert _read(client, auth, "c", cid).json == {"unreadCount": 0}
    read_at = {p["userId"]: p["lastReadAt"] for p in conversation(client, auth, "a", cid)["participants"]}["c"]
    assert _read(client, auth, "c", cid, m[0]["id"]).json == {"unreadCount": 0}
    after = {p["userId"]: p["lastReadAt"] for p in conversation(client, auth, "a", cid)["participants"]}["c"]
    assert after == read_at  # nothing moved
    assert [x["read"] for x in all_history(client, auth, "a", cid)] == [False, False, False]
    assert _read(client, auth, "b", cid).json == {"unreadCount": 0}
    assert [x["read"] for x in all_history(client, auth, "a", cid)] == [True, True, True]


def test_read_up_to_a_message_of_another_conversation_is_422(client, auth):
    join(client, auth, "a", "b")
    cid = group(client, auth, "a", ["b"], name="one")
    other = group(client, auth, "a", ["b"], name="two")
    posted(client, auth, "a", cid, "here")
    foreign = posted(client, auth, "a", other, "there")
    problem = assert_problem(_read(client, auth, "b", cid, foreign["id"]), 422)
    assert any(e["field"] == "upTo" for e in problem["errors"]), problem
    assert_problem(_read(client, auth, "b", cid, "AAAAAAAAAAAAAAAAAAAAA"), 422)
    assert_problem(client.post(f"/v1/conversations/{cid}/read", headers=auth("b"), json={"upTo": 5}), 422)
    assert _unread(client, auth, "b", cid) == (1, 1)
    assert _unread(client, auth, "b", other) == (1, 1)


def test_reading_an_empty_conversation(client, auth):
    join(client, auth, "a", "b")
    cid = group(client, auth, "a", ["b"])
    r = _read(client, auth, "b", cid)
    assert r.status_code == 200, r.json
    assert r.json == {"unreadCount": 0}


def test_posting_reads_everything_before_for_the_author(client, auth):
    join(client, auth, "a", "b")
    cid = group(client, auth, "a", ["b"])
    posted(client, auth, "a", cid, "one")
    posted(client, auth, "a", cid, "two")
    assert _unread(client, auth, "b", cid) == (2, 2)
    posted(client, auth, "b", cid, "reply")
    assert _unread(client, auth, "b", cid) == (0, 0)
    assert _unread(client, auth, "a", cid) == (1, 1)
    # b's reply marked what b had answered as read (a is the author of those).
    assert [x["read"] for x in all_history(client, auth, "a", cid)] == [True, True, False]


def test_me_unread_totals(client, auth):
    join(client, auth, "a", "b", "c")
    g1 = group(client, auth, "a", ["b", "c"], name="g1")
    g2 = group(client, auth, "c", ["b"], name="g2")
    for _ in range(3):
        posted(client, auth, "a", g1, "x")
    posted(client, auth, "c", g2, "y")
    posted(client, auth, "b", g2, "z")  # b's own: marks g2 read for b
    expected = {"a": 0, "b": 3, "c": 4}
    for sub, n in expected.items():
        r = client.get("/v1/me/unread", headers=auth(sub))
        assert r.status_code == 200, r.json
        assert r.json["conversations"] == n, (sub, r.json)
        assert r.json["total"] == r.json["conversations"] + r.json["propertyConversations"]
    _read(client, auth, "c", g1)
    r = client.get("/v1/me/unread", headers=auth("c"))
    assert r.json["conversations"] == 1


def test_sender_types_user_concierge_and_deleted(client, app, auth):
    join(client, auth, "a", "b")
    cid = group(client, auth, "a", ["b"])
    from_b = posted(client, auth, "b", cid, "I am leaving the platform")
    with app.app_context():
        session = get_session()
        svc.post_message(session, cid, None, "Your booking is confirmed.", origin={"kind": "system"})
        session.commit()
    history = all_history(client, auth, "a", cid)
    assert [(m["senderType"], m["userId"]) for m in history] == [("user", "b"), ("concierge", None)]
    assert conversation(client, auth, "a", cid)["lastMessage"]["senderType"] == "concierge"
    with app.app_context():
        session = get_session()
        session.execute(delete(User).where(User.id == "b"))
        session.commit()
    history = all_history(client, auth, "a", cid)
    assert [(m["id"], m["senderType"], m["userId"]) for m in history] == [
        (from_b["id"], "deleted", None),
        (history[1]["id"], "concierge", None),
    ]
    assert history[0]["message"] == "I am leaving the platform"
    body = conversation(client, auth, "a", cid)
    assert [p["userId"] for p in body["participants"]] == ["a"]
    # Now the deleted user's message is the last one: the inbox tells it apart too.
    posted(client, auth, "a", cid, "anyone?")
    with app.app_context():
        session = get_session()
        session.execute(delete(User).where(User.id == "a"))
        session.commit()
    join(client, auth, "a")  # back as a new user with the same id: not in the conversation any more
    assert_problem(client.get(f"/v1/conversations/{cid}", headers=auth("a")), 404)


def test_inbox_last_message_of_a_deleted_user(client, app, auth):
    join(client, auth, "a", "b", "c")
    cid = group(client, auth, "a", ["b", "c"])
    posted(client, auth, "b", cid, "bye")
    with app.app_context():
        session = get_session()
        session.execute(delete(User).where(User.id == "b"))
        session.commit()
    item = inbox_item(client, auth, "a", cid)
    assert item["lastMessage"]["senderType"] == "deleted"
    assert item["lastMessage"]["userId"] is None
    assert item["unreadCount"] == 1


# --- the concierge conversation -------------------------------------------------------------------


def test_concierge_conversation(client, auth):
    join(client, auth, "ana", "bob")
    first = client.get("/v1/concierge", headers=auth("ana"))
    assert first.status_code == 200, first.json
    again = client.get("/v1/concierge", headers=auth("ana"))
    assert again.status_code == 200
    assert first.json["id"] == again.json["id"]
    assert first.json["isConcierge"] is True
    assert [p["userId"] for p in first.json["participants"]] == ["ana"]
    cid = first.json["id"]
    assert conversation(client, auth, "ana", cid)["isConcierge"] is True
    assert inbox_item(client, auth, "ana", cid)["isConcierge"] is True
    # Nobody can be added, not even by its owner.
    r = client.post(f"/v1/conversations/{cid}/participants", headers=auth("ana"), json={"userId": "bob"})
    assert_problem(r, 403)
    assert [p["userId"] for p in conversation(client, auth, "ana", cid)["participants"]] == ["ana"]
    # Someone else's concierge chat does not exist for you.
    bobs = client.get("/v1/concierge", headers=auth("bob")).json["id"]
    assert bobs != cid
    assert_problem(client.get(f"/v1/conversations/{bobs}", headers=auth("ana")), 404)
    assert_problem(post(client, auth, "ana", bobs, "hi"), 404)
    assert_problem(client.get(f"/v1/conversations/{bobs}/messages", headers=auth("ana")), 404)
    # An ordinary group is not a concierge conversation.
    assert group(client, auth, "ana", ["bob"]) != cid
    r = client.get("/v1/concierge", headers=auth("platform", "service"))
    assert_problem(r, 403)


# --- PostgreSQL: concurrency ----------------------------------------------------------------------


def _concurrently(app, n: int, call) -> list:
    barrier = threading.Barrier(n)

    def run(i: int):
        client = app.test_client()
        barrier.wait(timeout=30)
        return call(client, i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def test_concurrent_direct_message_creation_makes_one(pg_client, pg_app, auth):
    pairs = [("ana", "bob"), ("cy", "dee"), ("eve", "fay")]  # a fresh race each round
    join(pg_client, auth, *(u for pair in pairs for u in pair))
    for round_number, (x, y) in enumerate(pairs, start=1):

        def create_dm(client, i, x=x, y=y):
            me, other = (x, y) if i % 2 == 0 else (y, x)  # from both sides at once
            r = client.post("/v1/conversations", headers=auth(me), json={"participantIds": [other]})
            return r.status_code, r.get_json()

        results = _concurrently(pg_app, 8, create_dm)
        statuses = sorted(s for s, _ in results)
        assert statuses == [200] * 7 + [201], results
        ids = {body["id"] for _, body in results}
        assert len(ids) == 1, results
        assert all({p["userId"] for p in body["participants"]} == {x, y} for _, body in results)
        with pg_app.app_context():
            session = get_session()
            assert session.scalar(select(func.count()).select_from(DirectConversation)) == round_number
            assert session.scalar(select(func.count()).select_from(Conversation)) == round_number
            assert (
                session.scalar(
                    select(DirectConversation.conversation_id).where(DirectConversation.user_low == min(x, y))
                )
                == ids.pop()
            )


def test_concurrent_concierge_creation_makes_one(pg_client, pg_app, auth):
    users = ["ana", "bob", "cy"]
    join(pg_client, auth, *users)
    for round_number, user in enumerate(users, start=1):

        def concierge(client, _i, user=user):
            r = client.get("/v1/concierge", headers=auth(user))
            return r.status_code, r.get_json()

        results = _concurrently(pg_app, 8, concierge)
        assert [s for s, _ in results] == [200] * 8, results
        assert len({body["id"] for _, body in results}) == 1, results
        assert all([p["userId"] for p in body["participants"]] == [user] for _, body in results)
        with pg_app.app_context():
            session = get_session()
            assert session.scalar(select(func.count()).select_from(ConciergeThread)) == round_number
            assert session.scalar(select(func.count()).select_from(Conversation)) == round_number


def test_nul_characters_never_500(client, auth):
    """PostgreSQL text cannot hold NUL: wherever one is sent, the answer is a 4xx."""
    join(client, auth, "ana", "bob")
    cid = group(client, auth, "ana", ["bob"])
    m = posted(client, auth, "ana", cid, "hello")
    headers = auth("ana")
    for r in (
        client.post("/v1/conversations", headers=headers, json={"participantIds": ["bo\x00b"]}),
        client.post("/v1/conversations", headers=headers, json={"participantIds": ["bob"], "name": "a\x00b"}),
        client.post("/v1/conversations", headers=headers, json={"participantIds": ["bob"], "offerId": "o\x00"}),
        client.post(f"/v1/conversations/{cid}/participants", headers=headers, json={"userId": "x\x00"}),
        client.post(f"/v1/conversations/{cid}/messages", headers=headers, json={"message": "a\x00b"}),
        client.patch(f"/v1/messages/{m['id']}", headers=headers, json={"message": "a\x00b"}),
        client.post(f"/v1/conversations/{cid}/read", headers=headers, json={"upTo": "a\x00b"}),
        client.delete(f"/v1/conversations/{cid}/participants/a%00b", headers=headers),
        client.get("/v1/conversations?before=%00", headers=headers),
    ):
        assert 400 <= r.status_code < 500, (r.request.method, r.request.path, r.status_code, r.get_data())
    assert [x["message"] for x in all_history(client, auth, "bob", cid)] == ["hello"]
