"""Property threads (SPEC §4): opening and reusing, validation, lists, history, replies, edits, read state, access."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from sqlalchemy import func, select

from messaging.api.property_threads import PropertyConversationOut, PropertyMessageOut
from messaging.store.db import get_session
from messaging.store.models import (
    Offer,
    Property,
    PropertyConversation,
    PropertyMessage,
    PropertyMessageEdit,
    RequestToBook,
    Trip,
    User,
)
from tests.conftest import sql_count

PROPERTY = 10
OTHER_PROPERTY = 11


def _aliases(model: Any) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def seed(app: Any, *, properties: int = 2, travelers: tuple[str, ...] = ("t1", "t2")) -> None:
    """Host h1 with properties 10, 11, …; host h2 with none; travelers; offers, requests, trips for t1."""
    with app.app_context():
        s = get_session()
        s.add_all([User(id="h1", role="host", name="Hana"), User(id="h2", role="host", name="Hugo")])
        s.add_all([User(id=t, role="guest", name=t.upper()) for t in travelers])
        s.flush()
        s.add_all(
            [Property(id=PROPERTY + i, host_id="h1", name=f"Casa {i}", city="Lisbon") for i in range(properties)]
        )
        s.flush()
        d1, d2 = dt.date(2026, 12, 1), dt.date(2026, 12, 5)
        s.add_all(
            [
                Offer(id=1, property_id=PROPERTY, traveler_id="t1", check_in=d1, check_out=d2,
                      total_price_cents=100_00, currency="USD", status="Pending"),
                Offer(id=2, property_id=PROPERTY, traveler_id="t2", check_in=d1, check_out=d2,
                      total_price_cents=100_00, currency="USD", status="Pending"),
                Offer(id=3, property_id=OTHER_PROPERTY, traveler_id="t1", check_in=d1, check_out=d2,
                      total_price_cents=100_00, currency="USD", status="Pending"),
                RequestToBook(id=5, property_id=PROPERTY, traveler_id="t1", check_in=d1, check_out=d2,
                              num_guests=2, total_price_cents=100_00, currency="USD", status="Pending"),
            ]
        )
        s.flush()
        s.add(Trip(id=7, property_id=PROPERTY, traveler_id="t1", check_in=d1, check_out=d2, num_guests=2,
                   status="Booked"))
        s.commit()


def open_thread(client: Any, auth: Any, user: str = "t1", prop: int = PROPERTY, **body: Any) -> Any:
    body.setdefault("message", "Is the flat quiet at night?")
    return client.post(f"/v1/properties/{prop}/conversations", json=body, headers=auth(user, "guest"))


def count(app: Any, model: Any, *where: Any) -> int:
    with app.app_context():
        return int(get_session().execute(select(func.count()).select_from(model).where(*where)).scalar_one())


# --- opening --------------------------------------------------------------------------------------


def test_open_creates_a_thread_with_its_first_message(app, client, auth):
    seed(app)
    r = open_thread(client, auth, message="  Hello!  ", plannedCheckIn="2026-12-01", plannedCheckOut="2026-12-05",
                    plannedNumGuests=2, offerId=1, requestToBookId=5, tripId=7)
    assert r.status_code == 201, r.json
    t = r.json
    assert set(t) == _aliases(PropertyConversationOut)
    assert t["travelerId"] == "t1" and t["propertyId"] == PROPERTY
    assert (t["offerId"], t["requestToBookId"], t["tripId"]) == (1, 5, 7)
    assert (t["plannedCheckIn"], t["plannedCheckOut"], t["plannedNumGuests"]) == ("2026-12-01", "2026-12-05", 2)
    assert len(t["id"]) == 21
    assert t["createdAt"].endswith(("Z", "+00:00"))
    assert t["unreadCount"] == 0
    m = t["lastMessage"]
    assert set(m) == _aliases(PropertyMessageOut)
    assert (m["message"], m["authorId"], m["conversationId"]) == ("Hello!", "t1", t["id"])
    assert m["readAt"] is None and m["editedAt"] is None
    # The host sees it, with one unread message.
    r = client.get(f"/v1/property-conversations/{t['id']}", headers=auth("h1", "host"))
    assert r.status_code == 200 and r.json["unreadCount"] == 1


def test_open_again_reuses_the_thread_and_appends_the_message(app, client, auth):
    seed(app)
    first = open_thread(client, auth, message="first", plannedCheckIn="2026-12-01", plannedCheckOut="2026-12-05")
    second = open_thread(client, auth, message="second", plannedNumGuests=3)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json["id"] == first.json["id"]
    assert second.json["lastMessage"]["message"] == "second"
    # What was given replaces what was stored; what was omitted stays.
    assert (second.json["plannedCheckIn"], second.json["plannedNumGuests"]) == ("2026-12-01", 3)
    assert count(app, PropertyConversation) == 1
    r = client.get(f"/v1/property-conversations/{first.json['id']}/messages", headers=auth("t1"))
    assert [m["message"] for m in r.json["items"]] == ["first", "second"]
    # Another traveler, or the same traveler on another property, gets a thread of their own.
    assert open_thread(client, auth, user="t2").status_code == 201
    assert open_thread(client, auth, prop=OTHER_PROPERTY).status_code == 201
    assert count(app, PropertyConversation) == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"message": ""}, "message"),
        ({"message": "   \n\t "}, "message"),
        ({"message": "x" * 5001}, "message"),
        ({"message": "a\x00b"}, "message"),
        ({"plannedCheckIn": "2026-12-05", "plannedCheckOut": "2026-12-01"}, "plannedCheckOut"),
        ({"plannedCheckIn": "2026-12-05", "plannedCheckOut": "2026-12-05"}, "plannedCheckOut"),
        ({"plannedCheckIn": "2026-13-45"}, "plannedCheckIn"),
        ({"plannedNumGuests": 0}, "plannedNumGuests"),
        ({"plannedNumGuests": -3}, "plannedNumGuests"),
        ({"plannedNumGuests": "2"}, "plannedNumGuests"),
        ({"plannedNumGuests": 10**12}, "plannedNumGuests"),
        ({"offerId": 999}, "offerId"),
        ({"offerId": 2}, "offerId"),  # another traveler's offer
        ({"offerId": 3}, "offerId"),  # the traveler's offer on another property
        ({"offerId": "abc"}, "offerId"),
        ({"requestToBookId": 404}, "requestToBookId"),
        ({"tripId": 404}, "tripId"),
        ({"nickname": "x"}, "nickname"),
        ({"message": None}, "message"),
        ({"message": 42}, "message"),
    ],
)
def test_open_validation(app, client, auth, body, field):
    seed(app)
    r = open_thread(client, auth, **body)
    assert r.status_code == 422, r.json
    assert r.content_type == "application/problem+json"
    assert field in {e["field"] for e in r.json["errors"]}
    assert count(app, PropertyConversation) == 0


def test_open_without_a_message_is_422(app, client, auth):
    seed(app)
    r = client.post(f"/v1/properties/{PROPERTY}/conversations", json={}, headers=auth("t1"))
    assert r.status_code == 422 and {e["field"] for e in r.json["errors"]} == {"message"}


def test_open_on_an_unknown_or_malformed_property(app, client, auth):
    seed(app)
    assert open_thread(client, auth, prop=999).status_code == 404
    for bad in ("abc", "0", "-1", "1.5", "99999999999999999999"):
        r = client.post(f"/v1/properties/{bad}/conversations", json={"message": "hi"}, headers=auth("t1"))
        assert r.status_code in (404, 422), (bad, r.status_code)
        assert r.content_type == "application/problem+json"


def test_a_host_cannot_open_a_thread_on_their_own_property(app, client, auth):
    seed(app)
    r = client.post(f"/v1/properties/{PROPERTY}/conversations", json={"message": "hi"}, headers=auth("h1", "host"))
    assert r.status_code == 403
    # …but may inquire about someone else's property like any traveler.
    with app.app_context():
        s = get_session()
        s.add(Property(id=99, host_id="h2", name="Elsewhere"))
        s.commit()
    assert client.post("/v1/properties/99/conversations", json={"message": "hi"},
                       headers=auth("h1", "host")).status_code == 201


def test_malformed_json_is_400(app, client, auth):
    seed(app)
    r = client.post(f"/v1/properties/{PROPERTY}/conversations", data=b'{"message": "hi"',
                    content_type="application/json", headers=auth("t1"))
    assert r.status_code == 400 and r.content_type == "application/problem+json"
    r = client.post(f"/v1/properties/{PROPERTY}/conversations", json=["hi"], headers=auth("t1"))
    assert r.status_code == 422


# --- lists ----------------------------------------------------------------------------------------


def test_lists_as_traveler_and_as_host_latest_activity_first_with_unread_counts(app, client, auth):
    seed(app, travelers=("t1", "t2", "t3"))
    a = open_thread(client, auth, user="t1").json["id"]
    b = open_thread(client, auth, user="t2").json["id"]
    c = open_thread(client, auth, user="t1", prop=OTHER_PROPERTY).json["id"]
    # The host answers t1 on property 10: that thread becomes the latest.
    assert client.post(f"/v1/property-conversations/{a}/messages", json={"message": "Very quiet."},
                       headers=auth("h1", "host")).status_code == 201
    assert client.post(f"/v1/property-conversations/{b}/messages", json={"message": "Also…"},
                       headers=auth("t2")).status_code == 201

    r = client.get("/v1/property-conversations?role=host", headers=auth("h1", "host"))
    assert r.status_code == 200
    assert [t["id"] for t in r.json["items"]] == [b, a, c]
    assert {t["id"]: t["unreadCount"] for t in r.json["items"]} == {b: 2, a: 1, c: 1}
    assert r.json["items"][0]["lastMessage"]["message"] == "Also…"
    assert r.json["nextCursor"] is None
    # A host token without ?role= gets its properties' threads, as with role=host; role=traveler, those it opened.
    assert client.get("/v1/property-conversations", headers=auth("h1", "host")).json == r.json
    assert client.get("/v1/property-conversations?role=traveler", headers=auth("h1", "host")).json["items"] == []

    r = client.get("/v1/property-conversations", headers=auth("t1"))  # role defaults to traveler
    assert [t["id"] for t in r.json["items"]] == [a, c]
    assert [t["unreadCount"] for t in r.json["items"]] == [1, 0]
    assert r.json["items"][0]["lastMessage"]["authorId"] == "h1"

    assert client.get("/v1/property-conversations?role=host", headers=auth("t1")).json["items"] == []
    assert client.get("/v1/property-conversations", headers=auth("t3")).json == {"items": [], "nextCursor": None}
    assert client.get("/v1/property-conversations?role=owner", headers=auth("t1")).status_code == 422
    assert client.get("/v1/property-conversations?before=garbage", headers=auth("t1")).status_code == 422
    assert client.get("/v1/property-conversations?limit=0", headers=auth("t1")).status_code == 422

    # Keyset pages: one at a time, each thread exactly once, same order.
    seen, cursor = [], None
    while True:
        url = "/v1/property-conversations?role=host&limit=1" + (f"&before={cursor}" if cursor else "")
        page = client.get(url, headers=auth("h1", "host")).json
        seen += [t["id"] for t in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == [b, a, c]


def test_listing_a_hosts_threads_costs_the_same_statements_for_3_and_30(app, client, auth):
    def statements_for(n: int) -> int:
        with app.app_context():
            s = get_session()
            s.add(User(id=f"host{n}", role="host"))
            s.flush()
            s.add(Property(id=1000 + n, host_id=f"host{n}", name="Big house"))
            s.add_all([User(id=f"g{n}-{i}", role="guest") for i in range(n)])
            s.flush()
            base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
            for i in range(n):
                pc = PropertyConversation(id=f"pc{n:03d}x{i:03d}", traveler_id=f"g{n}-{i}", property_id=1000 + n,
                                          created_at=base)
                s.add(pc)
                s.flush()
                s.add_all([PropertyMessage(id=f"pm{n:03d}x{i:03d}y{j}", conversation_id=pc.id,
                                           author_id=f"g{n}-{i}", message="hi",
                                           created_at=base + dt.timedelta(minutes=i, seconds=j))
                           for j in range(3)])
            s.commit()
        headers = auth(f"host{n}", "host")
        client.get("/v1/me", headers=headers)  # the user exists before counting
        with sql_count(app)() as statements:
            r = client.get("/v1/property-conversations?role=host&limit=100", headers=headers)
        assert r.status_code == 200 and len(r.json["items"]) == n
        assert all(t["unreadCount"] == 3 for t in r.json["items"])
        return len(statements)

    assert statements_for(3) == statements_for(30)


# --- history ---------------------------------------------------------------------------------------


def test_history_pages_120_messages_exactly_once_in_order_both_ways(app, client, auth):
    seed(app)
    thread_id = open_thread(client, auth, message="m000").json["id"]
    with app.app_context():
        s = get_session()
        first_at = s.execute(select(PropertyMessage.created_at)).scalar_one()
        if first_at.tzinfo is None:
            first_at = first_at.replace(tzinfo=dt.UTC)
        s.add_all([PropertyMessage(conversation_id=thread_id, author_id="t1" if i % 2 else "h1", message=f"m{i:03d}",
                                   created_at=first_at + dt.timedelta(seconds=i)) for i in range(1, 120)])
        s.commit()
    expected = [f"m{i:03d}" for i in range(120)]
    url = f"/v1/property-conversations/{thread_id}/messages?limit=50"

    pages, cursor = [], None
    while True:
        r = client.get(url + (f"&before={cursor}" if cursor else ""), headers=auth("t1"))
        assert r.status_code == 200
        pages.append([m["message"] for m in r.json["items"]])
        cursor = r.json["nextCursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [50, 50, 20]
    assert all(p == sorted(p) for p in pages)  # oldest→newest within a page
    assert [m for p in reversed(pages) for m in p] == expected

    # Forward with `after`: from the first message's position, each page's nextCursor passed as `after`.
    forward = ["m000"]
    r = client.get(url + "&after=" + _cursor_of(app, thread_id, "m000"), headers=auth("h1", "host"))
    sizes = []
    while True:
        assert r.status_code == 200
        sizes.append(len(r.json["items"]))
        forward += [m["message"] for m in r.json["items"]]
        cursor = r.json["nextCursor"]
        if cursor is None:
            break
        r = client.get(url + "&after=" + cursor, headers=auth("h1", "host"))
    assert sizes == [50, 50, 19]
    assert forward == expected

    assert client.get(url + "&before=nonsense", headers=auth("t1")).status_code == 422
    assert client.get(url + "&after=%00", headers=auth("t1")).status_code == 422
    assert client.get(url.replace("50", "101"), headers=auth("t1")).status_code == 422


def _cursor_of(app: Any, thread_id: str, text: str) -> str:
    from messaging.chat.pagination import encode_cursor

    with app.app_context():
        row = get_session().execute(
            select(PropertyMessage.created_at, PropertyMessage.id).where(
                PropertyMessage.conversation_id == thread_id, PropertyMessage.message == text
            )
        ).one()
    return encode_cursor(row.created_at, row.id)


# --- replies, edits, read state ------------------------------------------------------------------


def test_replies_by_traveler_and_host(app, client, auth):
    seed(app)
    thread_id = open_thread(client, auth).json["id"]
    url = f"/v1/property-conversations/{thread_id}/messages"
    r = client.post(url, json={"message": " Yes, very. "}, headers=auth("h1", "host"))
    assert r.status_code == 201
    assert set(r.json) == _aliases(PropertyMessageOut)
    assert (r.json["authorId"], r.json["message"], r.json["conversationId"]) == ("h1", "Yes, very.", thread_id)
    assert client.post(url, json={"message": "Thanks"}, headers=auth("t1")).status_code == 201
    assert client.post(url, json={"message": "  "}, headers=auth("t1")).status_code == 422
    assert client.post(url, json={"message": "hi", "extra": 1}, headers=auth("t1")).status_code == 422
    assert count(app, PropertyMessage) == 3


def test_a_reply_is_told_to_the_traveler_and_the_host_only_and_an_outsiders_writes_nothing(app, client, auth):
    """Both paths (PostgreSQL's one statement, committed before the publish; the general one, published after its
    commit): the reply's resource reaches the traveler's and the host's streams, nobody else's; an outsider's
    reply is a 404 that stores and tells nothing."""
    import json

    seed(app)
    thread_id = open_thread(client, auth).json["id"]
    url = f"/v1/property-conversations/{thread_id}/messages"
    bus = app.extensions["live"]
    cursors = {user: bus.start(user, None).cursor for user in ("t1", "h1", "t2")}
    reply = client.post(url, json={"message": "Yes, very."}, headers=auth("h1", "host"))
    assert reply.status_code == 201, reply.json
    for user in ("t1", "h1"):
        told = bus.read(user, cursors[user], 500)
        assert [(e.type, json.loads(e.data)) for e in told] == [("property_message.created", reply.json)], user
        cursors[user] = told[-1].id
    assert client.post(url, json={"message": "me too"}, headers=auth("t2")).status_code == 404
    assert all(bus.read(user, cursors[user], 1) == [] for user in ("t1", "h1", "t2"))
    history = client.get(url, headers=auth("t1")).json["items"]
    assert [m["message"] for m in history] == ["Is the flat quiet at night?", "Yes, very."]
    assert history[-1] == reply.json


def test_edit_by_the_author_keeps_the_previous_text(app, client, auth):
    seed(app)
    thread = open_thread(client, auth, message="Is it quiet?").json
    message_id = thread["lastMessage"]["id"]
    r = client.patch(f"/v1/property-messages/{message_id}", json={"message": "Is it quiet at night?"},
                     headers=auth("t1"))
    assert r.status_code == 200, r.json
    assert r.json["message"] == "Is it quiet at night?" and r.json["editedAt"] is not None
    assert r.json["id"] == message_id
    with app.app_context():
        edits = get_session().scalars(select(PropertyMessageEdit)).all()
        assert [(e.property_message_id, e.previous_message) for e in edits] == [(message_id, "Is it quiet?")]
    # The host may see it but not edit it; an outsider does not know it exists.
    assert client.patch(f"/v1/property-messages/{message_id}", json={"message": "x"},
                        headers=auth("h1", "host")).status_code == 403
    assert client.patch(f"/v1/property-messages/{message_id}", json={"message": "x"},
                        headers=auth("t2")).status_code == 404
    assert client.patch("/v1/property-messages/nope", json={"message": "x"}, headers=auth("t1")).status_code == 404
    assert client.patch(f"/v1/property-messages/{message_id}", json={"message": ""},
                        headers=auth("t1")).status_code == 422
    history = client.get(f"/v1/property-conversations/{thread['id']}/messages", headers=auth("h1", "host")).json
    assert history["items"][0]["message"] == "Is it quiet at night?"


def test_mark_read_sets_read_at_on_the_other_partys_messages_only(app, client, auth):
    seed(app)
    thread_id = open_thread(client, auth, message="one").json["id"]
    url = f"/v1/property-conversations/{thread_id}"
    client.post(url + "/messages", json={"message": "two"}, headers=auth("t1"))
    client.post(url + "/messages", json={"message": "answer"}, headers=auth("h1", "host"))
    assert client.get(url, headers=auth("h1", "host")).json["unreadCount"] == 2
    assert client.get(url, headers=auth("t1")).json["unreadCount"] == 1

    r = client.post(url + "/read", headers=auth("h1", "host"))
    assert r.status_code == 200 and r.json == {"unreadCount": 0}
    items = client.get(url + "/messages", headers=auth("t1")).json["items"]
    assert [(m["message"], m["readAt"] is not None) for m in items] == [
        ("one", True), ("two", True), ("answer", False)
    ]
    assert client.get(url, headers=auth("h1", "host")).json["unreadCount"] == 0
    assert client.get(url, headers=auth("t1")).json["unreadCount"] == 1
    assert client.get("/v1/me/unread", headers=auth("t1")).json["propertyConversations"] == 1
    assert client.post(url + "/read", headers=auth("t1")).json == {"unreadCount": 0}
    assert client.get("/v1/me/unread", headers=auth("t1")).json["propertyConversations"] == 0


# --- who may do what -------------------------------------------------------------------------------


def test_outsiders_get_404_on_every_thread_route(app, client, auth):
    seed(app)
    thread = open_thread(client, auth).json
    tid, mid = thread["id"], thread["lastMessage"]["id"]
    for who, role in (("t2", "guest"), ("h2", "host")):
        h = auth(who, role)
        assert client.get(f"/v1/property-conversations/{tid}", headers=h).status_code == 404
        assert client.get(f"/v1/property-conversations/{tid}/messages", headers=h).status_code == 404
        assert client.post(f"/v1/property-conversations/{tid}/messages", json={"message": "hi"},
                           headers=h).status_code == 404
        assert client.post(f"/v1/property-conversations/{tid}/read", headers=h).status_code == 404
        assert client.patch(f"/v1/property-messages/{mid}", json={"message": "hi"}, headers=h).status_code == 404
    for bad in ("x" * 22, "x" * 64, "x" * 300, "%00", "a%20b", "..."):
        for method, url in (("get", f"/v1/property-conversations/{bad}"),
                            ("get", f"/v1/property-conversations/{bad}/messages"),
                            ("post", f"/v1/property-conversations/{bad}/read")):
            r = getattr(client, method)(url, headers=auth("t1"))
            assert r.status_code in (404, 422), (url, r.status_code)
    assert count(app, PropertyMessage) == 1


def test_roles_service_is_forbidden_admin_reads_only(app, client, auth):
    seed(app)
    thread = open_thread(client, auth).json
    tid, mid = thread["id"], thread["lastMessage"]["id"]
    calls = [
        ("post", f"/v1/properties/{PROPERTY}/conversations", {"message": "hi"}),
        ("get", "/v1/property-conversations", None),
        ("get", f"/v1/property-conversations/{tid}", None),
        ("get", f"/v1/property-conversations/{tid}/messages", None),
        ("post", f"/v1/property-conversations/{tid}/messages", {"message": "hi"}),
        ("patch", f"/v1/property-messages/{mid}", {"message": "hi"}),
        ("post", f"/v1/property-conversations/{tid}/read", None),
    ]
    for method, url, body in calls:
        assert getattr(client, method)(url, json=body, headers=auth("platform", "service")).status_code == 403, url
        assert getattr(client, method)(url, json=body).status_code == 401, url
        status = getattr(client, method)(url, json=body, headers=auth("root", "admin")).status_code
        assert status == (200 if method == "get" else 403), (url, status)
    admin_view = client.get(f"/v1/property-conversations/{tid}", headers=auth("root", "admin")).json
    assert admin_view["id"] == tid and admin_view["lastMessage"]["message"] == "Is the flat quiet at night?"
    assert count(app, PropertyMessage) == 1


def test_the_openapi_document_describes_the_routes(client):
    doc = client.get("/openapi.json").json
    paths = doc["paths"]
    open_op = paths["/v1/properties/{propertyId}/conversations"]["post"]
    assert {"200", "201"} <= set(open_op["responses"])
    assert open_op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/OpenThreadIn")
    assert sorted(p["name"] for p in open_op["parameters"]) == ["Idempotency-Key", "propertyId"]
    schemas = doc["components"]["schemas"]
    assert set(schemas["PropertyConversationOut"]["properties"]) == _aliases(PropertyConversationOut)
    assert set(schemas["PropertyMessageOut"]["properties"]) == _aliases(PropertyMessageOut)
    assert "role" in {p["name"] for p in paths["/v1/property-conversations"]["get"]["parameters"]}
    assert set(paths["/v1/property-conversations/{id}/messages"]) == {"get", "post"}
    assert "patch" in paths["/v1/property-messages/{id}"]
    assert "post" in paths["/v1/property-conversations/{id}/read"]


# --- concurrency (PostgreSQL) ----------------------------------------------------------------------


def test_concurrent_opens_make_one_thread(pg_app, pg_client, auth):
    seed(pg_app)
    n = 8
    barrier = threading.Barrier(n)
    statuses: list[int] = []
    ids: list[str] = []
    lock = threading.Lock()
    headers = auth("t1")

    def open_once(i: int) -> None:
        client = pg_app.test_client()
        barrier.wait(timeout=30)
        r = client.post(f"/v1/properties/{PROPERTY}/conversations", json={"message": f"hello {i}"}, headers=headers)
        with lock:
            statuses.append(r.status_code)
            if r.status_code in (200, 201):
                ids.append(r.json["id"])

    workers = [threading.Thread(target=open_once, args=(i,)) for i in range(n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert len(statuses) == n
    assert all(s < 500 for s in statuses), statuses
    assert sorted(statuses) == [200] * (n - 1) + [201], statuses
    assert len(set(ids)) == 1
    assert count(pg_app, PropertyConversation) == 1
    assert count(pg_app, PropertyMessage) == n
