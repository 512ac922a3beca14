"""The inbox (GET /v1/conversations): order, keyset pagination, per-item content, and its cost —
a fixed number of SQL statements per page whatever the number of conversations or messages, and
(on PostgreSQL) plans that use indexes rather than scanning the big tables.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, text

from concierge import records
from messaging.chat import conversations as svc
from messaging.chat.conversations import _SEND_SQL
from messaging.chat.pagination import decode_cursor
from messaging.store.db import get_engine, get_session
from messaging.store.models import ConciergeThread, User
from tests.api.test_conversations import assert_problem, conversation, group, join, posted
from tests.conftest import sql_count


def inbox(client, headers, limit: int = 100, before: str | None = None) -> dict:
    url = f"/v1/conversations?limit={limit}" + (f"&before={before}" if before else "")
    r = client.get(url, headers=headers)
    assert r.status_code == 200, r.json
    return r.json


def whole_inbox(client, headers, limit: int) -> list[list[dict]]:
    pages, cursor = [], None
    while True:
        page = inbox(client, headers, limit, cursor)
        pages.append(page["items"])
        cursor = page["nextCursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "pagination does not end"


def ids(items: list[dict]) -> list[str]:
    return [c["id"] for c in items]


# --- order and content ----------------------------------------------------------------------------


def test_latest_activity_first(client, auth):
    join(client, auth, "ana", "bob", "cy")
    c1 = group(client, auth, "ana", ["bob"], name="one")
    c2 = group(client, auth, "bob", ["ana"], name="two")
    c3 = group(client, auth, "ana", ["cy"], name="three")
    # No messages anywhere: by creation, newest first.
    assert ids(inbox(client, auth("ana"))["items"]) == [c3, c2, c1]
    # A message moves its conversation to the top.
    posted(client, auth, "bob", c1, "hello from one")
    assert ids(inbox(client, auth("ana"))["items"]) == [c1, c3, c2]
    # A new conversation (no messages) is newer than that message.
    c4 = group(client, auth, "cy", ["ana"], name="four")
    assert ids(inbox(client, auth("ana"))["items"]) == [c4, c1, c3, c2]
    posted(client, auth, "ana", c2, "up you go")
    assert ids(inbox(client, auth("ana"))["items"]) == [c2, c4, c1, c3]
    # Each participant's inbox holds their conversations only, in the same order.
    assert ids(inbox(client, auth("bob"))["items"]) == [c2, c1]
    assert ids(inbox(client, auth("cy"))["items"]) == [c4, c3]
    # Reading does not reorder; editing does not either.
    client.post(f"/v1/conversations/{c3}/read", headers=auth("ana"), json={})
    assert ids(inbox(client, auth("ana"))["items"]) == [c2, c4, c1, c3]


def test_items_carry_last_message_and_unread_count(client, auth):
    join(client, auth, "ana", "bob", "cy")
    quiet = group(client, auth, "ana", ["bob"], name="quiet")
    busy = group(client, auth, "bob", ["ana", "cy"], name="busy")
    for i in range(3):
        posted(client, auth, "bob", busy, f"bob {i}")
    last = posted(client, auth, "cy", busy, "cy last")
    mine = group(client, auth, "ana", ["cy"], name="mine")
    own = posted(client, auth, "ana", mine, "I wrote this")

    items = {c["id"]: c for c in inbox(client, auth("ana"))["items"]}
    assert items[quiet]["lastMessage"] is None and items[quiet]["unreadCount"] == 0
    assert items[busy]["unreadCount"] == 4
    assert items[busy]["lastMessage"] == last
    assert items[busy]["lastMessage"]["senderType"] == "user"
    assert items[mine]["unreadCount"] == 0
    assert items[mine]["lastMessage"] == own
    # The inbox item is the same resource as GET /v1/conversations/{id}.
    for cid, item in items.items():
        assert item == conversation(client, auth, "ana", cid)
    assert {p["userId"] for p in items[busy]["participants"]} == {"ana", "bob", "cy"}

    # Others see their own counts.
    bob = {c["id"]: c for c in inbox(client, auth("bob"))["items"]}
    assert bob[busy]["unreadCount"] == 1  # cy's message, after bob's own
    cy = {c["id"]: c for c in inbox(client, auth("cy"))["items"]}
    assert cy[mine]["unreadCount"] == 1 and cy[busy]["unreadCount"] == 0

    client.post(f"/v1/conversations/{busy}/read", headers=auth("ana"), json={})
    assert {c["id"]: c for c in inbox(client, auth("ana"))["items"]}[busy]["unreadCount"] == 0
    # An edit shows in lastMessage.
    r = client.patch(f"/v1/messages/{last['id']}", headers=auth("cy"), json={"message": "cy edited"})
    assert r.status_code == 200, r.json
    item = {c["id"]: c for c in inbox(client, auth("ana"))["items"]}[busy]
    assert (item["lastMessage"]["message"], item["lastMessage"]["isEdit"]) == ("cy edited", True)


def test_participant_names_follow_the_platforms_users(client, app, auth):
    """The inbox lists participants' names from copies in their read cursors (migration 0008): a rename by the
    platform reaches every conversation of that user, and only theirs; a participant who joins later, or a
    user without a name, shows as the users table says."""
    join(client, auth, "ana", "bob", "cy")
    service = auth("platform", "service")
    chats = [group(client, auth, "ana", ["bob"], name=f"g{i}") for i in range(3)]
    other = group(client, auth, "cy", ["ana"], name="without bob")

    def names(sub: str) -> dict[str, dict[str, str | None]]:
        return {c["id"]: {p["userId"]: p["name"] for p in c["participants"]} for c in inbox(client, auth(sub))["items"]}

    assert names("ana")[chats[0]] == {"ana": "Ana", "bob": "Bob"}
    r = client.put("/v1/users/bob", json={"name": "Robert", "role": "guest"}, headers=service)
    assert r.status_code == 200, r.json
    late = group(client, auth, "cy", ["bob"], name="after the rename")
    r = client.post(f"/v1/conversations/{other}/participants", headers=auth("cy"), json={"userId": "bob"})
    assert r.status_code in (200, 201), r.json
    for sub in ("ana", "bob", "cy"):
        for cid, participants in names(sub).items():
            assert participants.get("bob", "Robert") == "Robert", (sub, cid)
            assert participants.get("ana", "Ana") == "Ana" and participants.get("cy", "Cy") == "Cy", (sub, cid)
    assert set(names("bob")) == {*chats, late, other}
    # A name taken away is null everywhere; the cursors agree with users row for row.
    r = client.put("/v1/users/ana", json={"name": None, "role": "guest"}, headers=service)
    assert r.status_code == 200, r.json
    assert {n["ana"] for n in names("bob").values() if "ana" in n} == {None}
    with app.app_context():
        mismatched = get_session().execute(text(
            "SELECT rc.conversation_id, rc.user_id FROM read_cursors rc JOIN users u ON u.id = rc.user_id "
            "WHERE CASE WHEN rc.user_name = u.name OR (rc.user_name IS NULL AND u.name IS NULL) THEN 0 ELSE 1 END = 1"
        )).all()
        count = get_session().execute(text("SELECT count(*) FROM read_cursors")).scalar_one()
    assert mismatched == [] and count == 11


def test_keyset_pagination_covers_every_conversation_once(client, auth):
    join(client, auth, "ana", "bob")
    created = [group(client, auth, "ana", ["bob"], name=f"c{i}") for i in range(23)]
    # Some activity so that the order is not just creation order.
    for i in (3, 17, 0, 9):
        posted(client, auth, "bob", created[i], f"bump {i}")
    everything = ids(inbox(client, auth("ana"))["items"])
    assert sorted(everything) == sorted(created)
    assert everything[:4] == [created[9], created[0], created[17], created[3]]

    pages = whole_inbox(client, auth("ana"), limit=5)
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    flat = [c["id"] for p in pages for c in p]
    assert flat == everything  # each exactly once, in order
    pages = whole_inbox(client, auth("ana"), limit=23)
    assert [len(p) for p in pages] == [23]
    assert inbox(client, auth("ana"), limit=22)["nextCursor"] is not None


def test_paging_while_a_conversation_moves_to_the_top(client, auth):
    """A conversation that gets a message between two pages is not shown twice further down."""
    join(client, auth, "ana", "bob")
    created = [group(client, auth, "ana", ["bob"], name=f"c{i}") for i in range(10)]
    first = inbox(client, auth("ana"), limit=4)
    assert ids(first["items"]) == created[::-1][:4]
    posted(client, auth, "bob", created[0], "the oldest wakes up")  # it was on a later page
    rest = whole_inbox(client, auth("ana"), limit=4)  # from the top again: it is first now
    assert ids(rest[0])[0] == created[0]
    after = inbox(client, auth("ana"), limit=100, before=first["nextCursor"])
    assert ids(after["items"]) == created[::-1][4:9]  # the moved one is no longer behind the cursor


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=abc", "before=garbage", "before=", "colour=1"])
def test_bad_inbox_queries_are_422(client, auth, query):
    join(client, auth, "ana", "bob")
    group(client, auth, "ana", ["bob"])
    r = client.get(f"/v1/conversations?{query}", headers=auth("ana"))
    if query == "before=":  # an empty cursor is no cursor
        assert r.status_code == 200, r.json
        return
    assert_problem(r, 422)


def test_inbox_needs_a_user_token(client, auth):
    assert_problem(client.get("/v1/conversations"), 401)
    assert_problem(client.get("/v1/conversations", headers=auth("platform", "service")), 403)


# --- cost: statements per request -----------------------------------------------------------------


def _seed_inbox(app, owner: str, count: int, peers: list[str]) -> list[str]:
    """``count`` conversations of ``owner`` with varied content, through the service functions."""
    created = []
    with app.app_context():
        session = get_session()
        for name in [owner, *peers]:
            if session.get(User, name) is None:
                session.add(User(id=name, name=name.capitalize(), role="guest"))
        session.flush()
        for i in range(count):
            peer = peers[i % len(peers)]
            others = [peer] if i % 3 else [peer, peers[(i + 1) % len(peers)]]
            cid, _ = svc.create_conversation(session, owner, others, name=f"{owner} {i}")
            created.append(cid)
            if i % 4 == 0:
                continue  # no messages
            svc.post_message(session, cid, peer, f"hello {i}")
            if i % 4 == 2:
                svc.post_message(session, cid, owner, f"answer {i}")
            if i % 4 == 3:
                svc.post_message(session, cid, None, f"concierge {i}", origin={"kind": "system"})
        session.commit()
    return created


def _statements_during(app, call, url: str, **kwargs: Any) -> tuple[Any, list[str]]:
    """``call(url, **kwargs)`` (a test client method) and the SQL statements it executed."""
    with sql_count(app)() as statements:
        response = call(url, **kwargs)
    return response, list(statements)


def test_inbox_costs_the_same_statements_for_5_and_200_conversations(client, app, auth):
    peers = [f"peer{i}" for i in range(7)]
    _seed_inbox(app, "small", 5, peers)
    _seed_inbox(app, "big", 200, peers)
    small_h, big_h = auth("small"), auth("big")
    for h in (small_h, big_h):  # the user row exists already; warm up anything lazy
        assert client.get("/v1/conversations?limit=50", headers=h).status_code == 200

    small, small_sql = _statements_during(app, client.get, "/v1/conversations?limit=50", headers=small_h)
    big, big_sql = _statements_during(app, client.get, "/v1/conversations?limit=50", headers=big_h)
    assert small.status_code == big.status_code == 200
    assert len(small.json["items"]) == 5 and small.json["nextCursor"] is None
    assert len(big.json["items"]) == 50 and big.json["nextCursor"] is not None
    assert sum(1 for c in big.json["items"] if c["lastMessage"] is not None) >= 30
    assert len(small_sql) == len(big_sql), (small_sql, big_sql)
    assert len(big_sql) < 10, big_sql

    # Every later page costs the same, down to the last (partial) one.
    cursor, pages = big.json["nextCursor"], 1
    while cursor:
        page, sql = _statements_during(app, client.get, f"/v1/conversations?limit=50&before={cursor}", headers=big_h)
        assert page.status_code == 200, page.json
        assert len(sql) == len(big_sql), sql
        cursor, pages = page.json["nextCursor"], pages + 1
    assert pages == 4


def test_history_and_conversation_cost_does_not_grow_with_messages(client, app, auth):
    join(client, auth, "ana", "bob")
    few = group(client, auth, "ana", ["bob"], name="few")
    many = group(client, auth, "ana", ["bob"], name="many")
    with app.app_context():
        session = get_session()
        for i in range(10):
            svc.post_message(session, few, "bob" if i % 2 else "ana", f"few {i}")
        for i in range(300):
            svc.post_message(session, many, "bob" if i % 2 else "ana", f"many {i}")
        session.commit()
    h = auth("ana")
    client.get("/v1/me", headers=h)

    counts = {}
    for cid in (few, many):
        history, history_sql = _statements_during(
            app, client.get, f"/v1/conversations/{cid}/messages?limit=50", headers=h
        )
        one, one_sql = _statements_during(app, client.get, f"/v1/conversations/{cid}", headers=h)
        read, read_sql = _statements_during(app, client.post, f"/v1/conversations/{cid}/read", headers=h, json={})
        assert history.status_code == one.status_code == read.status_code == 200
        counts[cid] = (len(history_sql), len(one_sql), len(read_sql))
    assert counts[few] == counts[many], counts
    assert len(client.get(f"/v1/conversations/{many}/messages?limit=50", headers=h).json["items"]) == 50
    assert conversation(client, auth, "ana", many)["unreadCount"] == 0


# --- PostgreSQL: the plans are index-backed ---------------------------------------------------------


@contextmanager
def capture_sql(app) -> Iterator[list[tuple[str, Any]]]:
    """Like tests.conftest.sql_count, keeping each statement's parameters."""
    captured: list[tuple[str, Any]] = []

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, executemany: bool) -> None:
        if not executemany:
            captured.append((statement, parameters))

    with app.app_context():
        engine = get_engine()
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield captured
    finally:
        event.remove(engine, "before_cursor_execute", before)


BULK_SQL = [
    # 500 other users
    "INSERT INTO users (id, name, role) SELECT 'other' || n, 'Other ' || n, 'guest' FROM generate_series(0, 499) n",
    # :count conversations, each of two or three of them, with five messages (three read by all)
    "INSERT INTO conversations (id, name, created_at) SELECT 'bulk' || lpad(n::text, 17, '0'), 'bulk ' || n, "
    " now() - make_interval(mins => n) FROM generate_series(0, :count - 1) n",
    "INSERT INTO conversation_participants (conversation_id, user_id) "
    " SELECT 'bulk' || lpad(n::text, 17, '0'), 'other' || ((n + k * 7) % 500) "
    " FROM generate_series(0, :count - 1) n, generate_series(0, 2) k WHERE k < 2 + n % 2",
    "INSERT INTO messages (id, conversation_id, user_id, message, read, is_edit, created_at) "
    " SELECT 'm' || lpad(n::text, 10, '0') || lpad(k::text, 10, '0'), 'bulk' || lpad(n::text, 17, '0'), "
    " 'other' || (n % 500), 'bulk message ' || k, k < 3, false, "
    " now() - make_interval(mins => n) + make_interval(secs => k) "
    " FROM generate_series(0, :count - 1) n, generate_series(0, 4) k",
    "INSERT INTO conversation_stats (conversation_id, message_count, last_message_id, last_activity_at) "
    " SELECT 'bulk' || lpad(n::text, 17, '0'), 5, 'm' || lpad(n::text, 10, '0') || lpad('4', 10, '0'), "
    " now() - make_interval(mins => n) + make_interval(secs => 4) FROM generate_series(0, :count - 1) n",
    "INSERT INTO read_cursors (conversation_id, user_id, read_count) "
    " SELECT conversation_id, user_id, 3 FROM conversation_participants WHERE conversation_id LIKE 'bulk%'",
]


def _bulk_other_conversations(app, count: int) -> None:
    """``count`` conversations of other users, in bulk (PostgreSQL), then ANALYZE."""
    with app.app_context():
        with get_engine().begin() as conn:
            for statement in BULK_SQL:
                conn.execute(text(statement), {"count": count} if ":count" in statement else {})
        with get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))


BIG_TABLES = ("messages", "conversation_participants", "conversation_stats", "read_cursors")


def test_inbox_plans_use_indexes(pg_client, pg_app, auth):
    """EXPLAIN the inbox's own statements (captured with their parameters) over enough data that
    the planner has a real choice: 20,000 conversations of other users (with 2,000 the tables fit
    in a few dozen pages and a sequential scan is the planner's cheapest, and correct, choice)."""
    _bulk_other_conversations(pg_app, 20_000)
    peers = [f"peer{i}" for i in range(7)]
    _seed_inbox(pg_app, "big", 200, peers)
    with pg_app.app_context():
        with get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
            assert conn.execute(text("SELECT count(*) FROM messages")).scalar() > 100_000
            assert conn.execute(text("SELECT count(*) FROM conversation_participants")).scalar() > 50_000
    h = auth("big")
    assert pg_client.get("/v1/me", headers=h).status_code == 200

    r = pg_client.get("/v1/conversations?limit=50", headers=h)
    assert r.status_code == 200 and len(r.json["items"]) == 50
    before = decode_cursor(r.json["nextCursor"])
    second = pg_client.get(f"/v1/conversations?limit=50&before={r.json['nextCursor']}", headers=h)
    assert second.status_code == 200 and len(second.json["items"]) == 50

    # The page is one statement run on the driver (messaging.chat.conversations.INBOX_SQL): EXPLAIN it as it runs.
    # The page is a range of the caller's inbox entries by activity (not a sort of all 200 conversations);
    # everything else is looked up by key.
    pages = [(svc.INBOX_SQL[False], {"uid": "big", "limit": 51}),
             (svc.INBOX_SQL[True], {"uid": "big", "limit": 51, "at": before[0], "pid": before[1]})]
    for statement, parameters in pages:
        plan = _driver_plan(pg_app, statement, parameters)
        page_range = r"Limit[^\n]*\n\s*->  Index (Only )?Scan Backward using ix_inbox_entries_user_activity"
        assert re.search(page_range, plan), plan
        for table in (*BIG_TABLES, "users", "conversations"):
            assert not re.search(rf"Seq Scan on {table}\b", plan), plan

    # History, each way of paging, in a conversation among 20,000 others.
    cid = r.json["items"][0]["id"]
    last = r.json["items"][0]["lastMessage"]
    at = dt.datetime.fromisoformat(last["createdAt"].replace("Z", "+00:00"))
    for direction, statement in svc.HISTORY_SQL.items():
        parameters = {"cid": cid, "uid": "big", "limit": 51, "at": at, "pid": last["id"]}
        plan = _driver_plan(pg_app, statement, parameters)
        assert "ix_messages_conversation_id_created_at_id" in plan, (direction, plan)
        for table in BIG_TABLES:
            assert not re.search(rf"Seq Scan on {table}\b", plan), (direction, plan)


    # Sending, in the same conversation: every part by key, and the read flags it may settle only from the
    # author's old position on (a range of the partial index of unread messages, not all of them).

    parameters = {"cid": cid, "uid": "big", "mid": "planned", "body": "hi", "now": dt.datetime.now(dt.UTC)}
    plan = _driver_plan(pg_app, _SEND_SQL, parameters)
    for table in BIG_TABLES:
        assert not re.search(rf"Seq Scan on {table}\b", plan), plan
    unread_range = r"ix_messages_unread_conversation_id_created_at_id[^\n]*\n\s*Index Cond: \(.*ROW\(created_at"
    assert re.search(unread_range, plan), plan


def _driver_plan(app, statement: str, parameters: Any) -> str:
    """EXPLAIN a statement the way psycopg runs it (server-side parameters, as once prepared)."""
    with app.app_context():
        url = get_engine().url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as conn:
        rows = conn.execute("EXPLAIN " + statement, parameters).fetchall()
    return "\n".join(r[0] for r in rows)


def test_sends_reads_and_inbox_pages_at_once_in_one_conversation_never_deadlock(pg_client, auth):
    """Keeping the inbox order locks every participant's inbox entry on each send. Kept on the read cursors, it
    deadlocked: a send (holding its new message) waited for another participant's cursor while that participant,
    marking the conversation read (holding their cursor), waited for the new message. Six callers hammering one
    conversation with sends, reads and inbox pages must all succeed, and the inbox must end in the right order."""
    users = ["ana", "bob", "cy"]
    join(pg_client, auth, *users)
    cid = group(pg_client, auth, "ana", ["bob", "cy"])
    other = group(pg_client, auth, "bob", ["ana", "cy"], name="elsewhere")

    def hammer(seed: int) -> list[int]:
        rng = random.Random(seed)
        statuses = []
        for step in range(60):
            who, roll = rng.choice(users), rng.random()
            if roll < 0.45:
                r = pg_client.post(f"/v1/conversations/{cid}/messages", json={"message": f"{seed}/{step}"},
                                   headers=auth(who))
            elif roll < 0.9:
                r = pg_client.post(f"/v1/conversations/{cid}/read", json={}, headers=auth(who))
            else:
                r = pg_client.get("/v1/conversations?limit=5", headers=auth(who))
            statuses.append(r.status_code)
        return statuses

    with ThreadPoolExecutor(6) as pool:
        statuses = [s for batch in pool.map(hammer, range(6)) for s in batch]
    assert set(statuses) <= {200, 201}, sorted(set(statuses))
    assert statuses.count(201) > 50
    posted(pg_client, auth, "cy", other, "last word")
    for user in users:
        assert ids(inbox(pg_client, auth(user))["items"]) == [other, cid]


# --- the inbox entries' copies ----------------------------------------------------------------------

# Every participation's entry against what it copies (migrations 0006-0009, 0013): the counters and last message
# id from conversation_stats, the name, offer and creation time from conversations, the concierge flag from
# concierge_threads and the last message's author, text, flags, time and staff mark from messages. A row per
# difference.
ENTRY_MISMATCHES = """
SELECT p.conversation_id, p.user_id
  FROM conversation_participants p
  JOIN conversations c ON c.id = p.conversation_id
  JOIN conversation_stats s ON s.conversation_id = p.conversation_id
  LEFT JOIN inbox_entries e ON e.conversation_id = p.conversation_id AND e.user_id = p.user_id
  LEFT JOIN messages m ON m.id = s.last_message_id
 WHERE e.user_id IS NULL
    OR e.last_activity_at IS DISTINCT FROM s.last_activity_at OR e.message_count IS DISTINCT FROM s.message_count
    OR e.last_message_id IS DISTINCT FROM s.last_message_id
    OR e.name IS DISTINCT FROM c.name OR e.offer_id IS DISTINCT FROM c.offer_id
    OR e.conversation_created_at IS DISTINCT FROM c.created_at
    OR e.is_concierge IS DISTINCT FROM EXISTS (SELECT 1 FROM concierge_threads t WHERE t.conversation_id = c.id)
    OR e.last_message_user_id IS DISTINCT FROM m.user_id OR e.last_message_text IS DISTINCT FROM m.message
    OR e.last_message_read IS DISTINCT FROM m.read OR e.last_message_is_edit IS DISTINCT FROM m.is_edit
    OR e.last_message_created_at IS DISTINCT FROM m.created_at
    OR e.last_message_from_staff IS DISTINCT FROM m.from_staff
"""


def entry_mismatches(app) -> list[tuple[str, str]]:
    with app.app_context():
        session = get_session()
        rows = [tuple(r) for r in session.execute(text(ENTRY_MISMATCHES)).all()]
        session.close()
    return rows


def test_inbox_entries_follow_the_last_message_and_the_concierge_flag(app, client, auth):
    """The inbox page on PostgreSQL shows each conversation's last message and concierge flag from its inbox
    entries, copied by triggers (on both databases). After every step of a script that changes them every way
    — a send, a read that marks the last message read, an edit, the concierge's messages, a user deleted after
    writing the last message, a concierge chat made, a participant leaving and joining — every entry equals what
    it copies, and each inbox item equals the conversation read on its own."""
    join(client, auth, "ana", "bob", "cy", "gone")
    pair = group(client, auth, "ana", ["bob"], name="pair")
    trio = group(client, auth, "ana", ["bob", "cy", "gone"], name="trio")

    def check(step: str) -> None:
        assert entry_mismatches(app) == [], step
        for user in ("ana", "bob", "cy"):
            for item in inbox(client, auth(user))["items"]:
                assert item == conversation(client, auth, user, item["id"]), (step, user)

    check("made")
    last = posted(client, auth, "bob", pair, "hello ana")
    check("sent")
    assert client.post(f"/v1/conversations/{pair}/read", json={}, headers=auth("ana")).status_code == 200
    item = {c["id"]: c for c in inbox(client, auth("bob"))["items"]}[pair]
    assert item["lastMessage"]["id"] == last["id"] and item["lastMessage"]["read"] is True  # marked by ana's read
    check("read")
    assert client.patch(f"/v1/messages/{last['id']}", json={"message": "hello, ana"},
                        headers=auth("bob")).status_code == 200
    item = {c["id"]: c for c in inbox(client, auth("ana"))["items"]}[pair]
    assert (item["lastMessage"]["message"], item["lastMessage"]["isEdit"]) == ("hello, ana", True)
    check("edited")
    posted(client, auth, "ana", trio, "who is coming?")
    words = posted(client, auth, "gone", trio, "not me")
    for reader in ("ana", "bob", "cy"):
        assert client.post(f"/v1/conversations/{trio}/read", json={}, headers=auth(reader)).status_code == 200
    check("read by all")
    with app.app_context():
        session = get_session()
        records.delete_user(session, "gone")
        session.commit()
    item = {c["id"]: c for c in inbox(client, auth("ana"))["items"]}[trio]
    assert item["lastMessage"]["id"] == words["id"] and item["lastMessage"]["senderType"] == "deleted"
    assert item["lastMessage"]["userId"] is None and item["lastMessage"]["read"] is True
    check("author deleted")
    with app.app_context():
        session = get_session()
        svc.post_message(session, trio, None, "Your trip starts tomorrow.", origin={"kind": "system"})
        session.commit()
    item = {c["id"]: c for c in inbox(client, auth("bob"))["items"]}[trio]
    assert item["lastMessage"]["senderType"] == "concierge" and item["lastMessage"]["read"] is False
    check("concierge message")
    chat = client.get("/v1/concierge", headers=auth("cy")).json["id"]
    assert {c["id"]: c for c in inbox(client, auth("cy"))["items"]}[chat]["isConcierge"] is True
    posted(client, auth, "cy", chat, "hello concierge")  # the general path: a concierge chat
    check("concierge chat")
    assert client.post(f"/v1/admin/transcripts/{chat}/messages", json={"message": "Staff here"},
                       headers=auth("root", "admin")).status_code == 201
    item = {c["id"]: c for c in inbox(client, auth("cy"))["items"]}[chat]
    assert item["lastMessage"]["senderType"] == "staff" and item["lastMessage"]["userId"] == "root"
    assert item["unreadCount"] == 1
    check("staff reply")
    assert client.delete(f"/v1/conversations/{trio}/participants/bob", headers=auth("bob")).status_code == 204
    assert client.post(f"/v1/conversations/{trio}/participants", json={"userId": "bob"},
                       headers=auth("ana")).status_code in (200, 201)
    check("left and came back")
    with app.app_context():  # a thread's row gone (as an admin tool might): the conversation is no longer one
        session = get_session()
        session.execute(ConciergeThread.__table__.delete().where(ConciergeThread.conversation_id == chat))
        session.commit()
    assert {c["id"]: c for c in inbox(client, auth("cy"))["items"]}[chat]["isConcierge"] is False
    check("thread deleted")


def test_entries_stay_true_and_nothing_deadlocks_when_every_kind_of_write_meets(pg_app, pg_client, auth):
    """Reads lock the inbox entries of the message they mark read (migration 0009), after that message's row.
    Writers of several statements must not hold an entry while waiting for a message row: here, at once in
    shared conversations, one-statement sends and reads, a traveler's messages in their concierge chat (the
    general path) from two devices while they mark it read, an admin replying there, participants leaving and
    coming back, and users deleted just after writing a conversation's last message while the others read it.
    Every request succeeds (a deadlock would be a 503), and every entry ends equal to what it copies."""
    users = ["ana", "bob", "cy", "tom"]
    join(pg_client, auth, *users)
    trio = group(pg_client, auth, "ana", ["bob", "cy"], name="trio")
    chat = pg_client.get("/v1/concierge", headers=auth("tom")).json["id"]
    service, admin = auth("platform", "service"), auth("root", "admin")
    doomed: list[str] = []

    def hammer(seed: int) -> list[tuple[str, int]]:
        rng = random.Random(f"{doomed[0]}/{seed}")  # another script each round
        done = []
        for step in range(50):
            roll = rng.random()
            if seed == 0 and step < len(doomed):  # one caller: a doomed user's last word, then their deletion
                r = pg_client.post(f"/v1/conversations/{trio}/messages", json={"message": "bye"},
                                   headers=auth(doomed[step]))
                done.append(("last word", r.status_code))
                r = pg_client.delete(f"/v1/users/{doomed[step]}", headers=service)
                done.append(("delete user", r.status_code))
                continue
            if seed == 1:  # the traveler and the admin in the concierge chat
                if roll < 0.35:
                    r = pg_client.post(f"/v1/conversations/{chat}/messages", json={"message": f"q{step}"},
                                       headers=auth("tom"))
                elif roll < 0.7:
                    r = pg_client.post(f"/v1/conversations/{chat}/read", json={}, headers=auth("tom"))
                else:
                    r = pg_client.post(f"/v1/admin/transcripts/{chat}/messages", json={"message": f"a{step}"},
                                       headers=admin)
                done.append(("concierge", r.status_code))
                continue
            who = rng.choice(["ana", "bob", "cy"])
            if seed == 2 and roll < 0.3:  # leaving and coming back
                r = pg_client.delete(f"/v1/conversations/{trio}/participants/cy", headers=auth("cy"))
                done.append(("leave", r.status_code))
                r = pg_client.post(f"/v1/conversations/{trio}/participants", json={"userId": "cy"},
                                   headers=auth("ana"))
                done.append(("rejoin", r.status_code))
            elif roll < 0.4:
                r = pg_client.post(f"/v1/conversations/{trio}/messages", json={"message": f"{seed}/{step}"},
                                   headers=auth(who))
                done.append(("send", r.status_code))
            else:
                r = pg_client.post(f"/v1/conversations/{chat if seed == 3 else trio}/read", json={},
                                   headers=auth("tom" if seed == 3 else who))
                done.append(("read", r.status_code))
        return done

    results: list[tuple[str, int]] = []
    for round_ in range(3):  # the collisions are a matter of timing: three rounds catch more of them
        doomed[:] = [f"gone{round_}-{i}" for i in range(20)]
        join(pg_client, auth, *doomed)
        for who in doomed:
            assert pg_client.post(f"/v1/conversations/{trio}/participants", json={"userId": who},
                                  headers=auth("ana")).status_code in (200, 201)
        with ThreadPoolExecutor(6) as pool:
            results += [x for batch in pool.map(hammer, range(6)) for x in batch]
    failed = [(what, status) for what, status in results if status >= 500]
    assert failed == [], failed
    # cy's sends and reads between leaving and coming back are 404; nothing else fails.
    assert {s for what, s in results if what not in ("send", "read")} <= {200, 201, 204}, sorted(set(results))
    assert {s for what, s in results if what in ("send", "read")} <= {200, 201, 404}, sorted(set(results))
    assert sum(1 for what, status in results if what == "delete user" and status == 204) == 3 * len(doomed)
    assert entry_mismatches(pg_app) == []
