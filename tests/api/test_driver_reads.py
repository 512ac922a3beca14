"""The history and inbox pages are read straight from the driver (the fixed statements of
messaging.chat.conversations); they must be the same JSON that SQLAlchemy reads of the same rows (the tables the pages
are kept from, and the builders of messaging.chat.resources) make of them, whatever the text holds, for every kind of
sender and every way of paging. Sending and marking read are one statement each; the cursors, counts and ``read``
flags they leave must be what the cursors say."""

from __future__ import annotations

import datetime as dt
import re

import orjson
from sqlalchemy import delete, exists, select, text, tuple_

from messaging.api.http import JSON_OPTIONS
from messaging.chat import conversations as svc
from messaging.chat.pagination import decode_cursor, encode_cursor, history_page, position_literal
from messaging.chat.resources import conversations_json, message_json, message_position, select_messages
from messaging.store.db import get_session
from messaging.store.models import ConversationParticipant, ConversationStats, Message, Offer, Property, User

AWKWARD = [
    'quote " and backslash \\ and slash /',
    "new\nline, tab\t, carriage\r return, bell \x07, escape \x1b, unit separator \x1f",
    "accents é ü ß, CJK 漢字, emoji 😀👍🏽, RTL مرحبا, zero width \u200b, line separator \u2028",
    "<script>alert('x')</script> & ampersand",
    "x" * 1490,
]


def _page(session, caller, cid, limit, before=None, after=None):
    """A history page as the API writes it (read by psycopg: messaging.chat.conversations.HISTORY_SQL)."""
    return _json(svc.history(session, caller, cid, limit, before, after))


def _expected_page(session, caller, cid, limit, before=None, after=None):
    """The same page read through SQLAlchemy: the caller's membership, the order and the bounds written out."""
    member = exists().where(ConversationParticipant.conversation_id == cid, ConversationParticipant.user_id == caller)
    key = tuple_(Message.created_at, Message.id)
    query = select_messages().where(Message.conversation_id == cid, member)
    if after is not None:
        query = query.where(key > position_literal(*after)).order_by(Message.created_at, Message.id)
    else:
        if before is not None:
            query = query.where(key < position_literal(*before))
        query = query.order_by(Message.created_at.desc(), Message.id.desc())
    rows = session.execute(query.limit(limit + 1)).all()
    return _json(history_page(rows, limit, after, message_json, message_position))


def _json(page):
    return orjson.loads(orjson.dumps({"items": page.items, "nextCursor": page.next_cursor},
                                     option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC))


def test_database_json_equals_python_json_on_every_page(pg_app):
    with pg_app.app_context():
        session = get_session()
        session.add_all([User(id=u, name=u, role="guest") for u in ("ana", "bob", "gone")])
        session.add(User(id="root", name="Root", role="admin"))
        session.flush()
        cid, _ = svc.create_conversation(session, "ana", ["bob", "gone"], name="trip")
        for i, body in enumerate(AWKWARD * 3):
            svc.post_message(session, cid, ("ana", "bob", "gone")[i % 3], f"{i}: {body}")
        svc.post_message(session, cid, None, "Your booking is confirmed.", origin={"kind": "system"})
        svc.post_staff_message(session, cid, "root", "Staff here: " + AWKWARD[0])
        svc.edit_message(session, "ana", _first_of(session, cid, "ana"), "edited ✓")
        # Whole seconds (no microseconds) are written without a fraction; some rows share a timestamp, so
        # the id breaks the tie.
        session.execute(text("UPDATE messages SET created_at = date_trunc('second', created_at) "
                             "WHERE conversation_id = :cid AND message LIKE '1%'"), {"cid": cid})
        session.execute(text("UPDATE messages SET created_at = '2026-03-01 10:00:00.000120+00' "
                             "WHERE conversation_id = :cid AND message LIKE '2%'"), {"cid": cid})
        session.execute(delete(User).where(User.id == "gone"))
        session.commit()

        total = len(AWKWARD) * 3 + 2
        for limit in (1, 4, 7, 16, 50, 100):
            # Backwards from the newest, then forwards from the oldest: every page, cursors included.
            for direction in ("before", "after"):
                cursor = None
                pages = 0
                while True:
                    if cursor:
                        position = decode_cursor(cursor, direction)
                    else:  # the newest page, or forwards from before the first message
                        position = None if direction == "before" else (dt.datetime(2000, 1, 1, tzinfo=dt.UTC), "")
                    kwargs = {direction: position}
                    expected = _expected_page(session, "ana", cid, limit, **kwargs)
                    actual = _page(session, "ana", cid, limit, **kwargs)
                    assert actual == expected, (limit, direction, pages)
                    pages += 1
                    cursor = actual["nextCursor"]
                    if cursor is None:
                        break
                assert pages == -(-total // limit), (limit, direction)
        senders = {m["senderType"] for m in _page(session, "ana", cid, 100)["items"]}
        assert senders == {"user", "deleted", "concierge", "staff"}
        stamps = [m["createdAt"] for m in _page(session, "ana", cid, 100)["items"]]
        assert any(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", s) for s in stamps), stamps
        assert "2026-03-01T10:00:00.000120Z" in stamps


def _first_of(session, cid, author):
    return session.execute(
        text("SELECT id FROM messages WHERE conversation_id = :cid AND user_id = :u ORDER BY created_at LIMIT 1"),
        {"cid": cid, "u": author},
    ).scalar_one()


def test_outsiders_and_unknown_conversations_are_404_on_the_database_path(pg_app):
    from messaging.errors import NotFound

    with pg_app.app_context():
        session = get_session()
        session.add_all([User(id=u, name=u, role="guest") for u in ("ana", "bob", "eve")])
        session.flush()
        cid, _ = svc.create_conversation(session, "ana", ["bob"], name="pair")
        svc.post_message(session, cid, "ana", "hello")
        session.commit()
        for caller, conversation in (("eve", cid), ("ana", "nope"), ("ana", "x" * 30)):
            try:
                svc.history(session, caller, conversation, 50)
            except NotFound:
                continue
            raise AssertionError(f"{caller} read {conversation}")
        empty, _ = svc.create_conversation(session, "ana", ["bob"], name="quiet")
        session.commit()
        assert _page(session, "bob", empty, 50) == {"items": [], "nextCursor": None}


def test_read_flags_and_unread_counts_follow_the_cursors_through_sends_and_reads(pg_client, pg_app, auth):
    """The one-statement send moves the author's cursor and the seed's ``read`` flag itself: after
    every step of a random mix of sends and reads in a group, each message's ``read`` is exactly "every other
    participant's cursor is at or past it", and each unread count is what the cursors say."""
    import random

    from tests.api.test_conversations import group, join, posted

    users = ["ana", "bob", "cy"]
    join(pg_client, auth, *users)
    cid = group(pg_client, auth, "ana", ["bob", "cy"])
    rng = random.Random(7)
    sent: list[dict] = []
    for step in range(60):
        who = rng.choice(users)
        if rng.random() < 0.55 or not sent:
            sent.append(posted(pg_client, auth, who, cid, f"step {step}"))
        else:
            body = {"upTo": rng.choice(sent)["id"]} if rng.random() < 0.4 else {}
            assert pg_client.post(f"/v1/conversations/{cid}/read", json=body, headers=auth(who)).status_code == 200
        with pg_app.app_context():
            rows = get_session().execute(text(
                """SELECT m.id, m.read, m.user_id,
                          NOT EXISTS (SELECT 1 FROM conversation_participants p
                                        JOIN read_cursors rc USING (conversation_id, user_id)
                                       WHERE p.conversation_id = m.conversation_id
                                         AND p.user_id <> coalesce(m.user_id, '')
                                         AND (rc.last_read_message_created_at IS NULL
                                              OR (rc.last_read_message_created_at, rc.last_read_message_id)
                                                 < (m.created_at, m.id))) AS everyone_read
                     FROM messages m WHERE m.conversation_id = :cid ORDER BY m.created_at, m.id"""),
                {"cid": cid}).all()
            get_session().close()
        assert [(r.id, r.read) for r in rows] == [(r.id, r.everyone_read) for r in rows], step
        for user in users:
            item = pg_client.get(f"/v1/conversations/{cid}", headers=auth(user)).json
            history = pg_client.get(f"/v1/conversations/{cid}/messages?limit=100", headers=auth(user)).json["items"]
            assert [m["read"] for m in history] == [r.read for r in rows]
            with pg_app.app_context():
                behind = get_session().execute(text(
                    """SELECT count(*) FROM messages m, read_cursors rc
                        WHERE m.conversation_id = :cid AND rc.conversation_id = :cid AND rc.user_id = :u
                          AND (rc.last_read_message_created_at IS NULL OR (m.created_at, m.id)
                               > (rc.last_read_message_created_at, rc.last_read_message_id))"""),
                    {"cid": cid, "u": user}).scalar_one()
                get_session().close()
            assert item["unreadCount"] == behind, (step, user)
    # Alone in a conversation, your message has been read by every other participant at once: there is none.
    alone = group(pg_client, auth, "ana", ["bob"], name="left behind")
    assert pg_client.delete(f"/v1/conversations/{alone}/participants/bob", headers=auth("bob")).status_code == 204
    posted(pg_client, auth, "ana", alone, "anyone?")
    history = pg_client.get(f"/v1/conversations/{alone}/messages", headers=auth("ana")).json["items"]
    assert [m["read"] for m in history] == [True]


def test_one_statement_read_follows_the_cursors(pg_app):
    """Marking read is one statement (``advance_cursor_in_one_statement``). A random script of sends and reads in a
    group is checked, step by step, against a model of the cursors (each participant's last message read): the
    answers — unread count, whether the cursor moved, 404, 422 — and the cursors, read counts and ``read`` flags it
    leaves, for reading up to the newest, to an older message than the cursor, to an unknown id or another
    conversation's message, and by a non-participant."""
    import random

    from messaging.chat.read_state import advance_cursor_in_one_statement
    from messaging.errors import NotFound, Unprocessable
    from messaging.store.db import driver_cursor

    users = ["ana", "bob", "cy"]
    with pg_app.app_context():
        session = get_session()
        session.add_all([User(id=u, name=u, role="guest") for u in [*users, "dee"]])
        session.flush()
        cid, _ = svc.create_conversation(session, "ana", ["bob", "cy"], name="one statement")
        elsewhere, _ = svc.create_conversation(session, "ana", ["dee"], name="elsewhere")
        session.commit()
        foreign = svc.send_user_message(session, elsewhere, "dee", "not here").message["id"]
        sent: list[tuple[str, str]] = []  # (id, author), in the conversation's order
        # The model: the position in ``sent`` of each participant's last message read (None: none yet), and
        # whether their cursor ever moved (its last_read_at is set).
        cursor: dict[str, int | None] = dict.fromkeys(users)
        moved_once = dict.fromkeys(users, False)
        rng = random.Random(11)

        def outcome(up_to, who):
            try:
                result, _audience = advance_cursor_in_one_statement(driver_cursor(session), cid, who, up_to)
            except NotFound:
                return "404"
            except Unprocessable:
                return "422"
            return result.unread_count, result.moved, result.last_read_at is None

        def expected_outcome(pick, who):
            if who not in users:
                return "404"
            if pick in ("unknown", "foreign"):
                return "422"
            target = len(sent) - 1 if pick is None else pick
            at = cursor[who]
            if at is not None and at >= target:
                return len(sent) - (at + 1), False, not moved_once[who]
            cursor[who], moved_once[who] = target, True
            return len(sent) - (target + 1), True, False

        def state():
            rows = session.execute(text(
                "SELECT user_id, read_count, last_read_message_id FROM read_cursors "
                "WHERE conversation_id = :c ORDER BY user_id"), {"c": cid}).all()
            flags = session.scalars(text(
                "SELECT read FROM messages WHERE conversation_id = :c ORDER BY created_at, id"), {"c": cid}).all()
            session.commit()
            where = {mid: n for n, (mid, _author) in enumerate(sent)}
            return [(u, count, where.get(last)) for u, count, last in rows], flags

        def expected_state():
            cursors = [(u, 0 if cursor[u] is None else cursor[u] + 1, cursor[u]) for u in users]
            # The seed's rule: read once every other participant (the author aside) is at or past it.
            flags = [all(cursor[u] is not None and cursor[u] >= n for u in users if u != author)
                     for n, (_mid, author) in enumerate(sent)]
            return cursors, flags

        for step in range(120):
            who = rng.choice([*users, "dee"] if rng.random() < 0.1 else users)
            if who != "dee" and (rng.random() < 0.45 or not sent):
                sent.append((svc.send_user_message(session, cid, who, f"step {step}").message["id"], who))
                cursor[who], moved_once[who] = len(sent) - 1, True
                assert state() == expected_state(), (step, who, "send")
                continue
            roll = rng.random()
            if roll < 0.4:
                pick = None
            elif roll < 0.85 and sent:
                pick = rng.randrange(len(sent))
            else:
                pick = rng.choice(["unknown", "foreign"])
            if isinstance(pick, int):
                up_to = sent[pick][0]
            else:  # the newest (None), an unknown id, another conversation's message
                up_to = {"unknown": "no-such-message", "foreign": foreign}.get(pick)
            got = outcome(up_to, who)
            session.rollback()
            assert got == expected_outcome(pick, who), (step, who, pick)
            assert state() == expected_state(), (step, who, pick)
        assert any(state()[1]) and not all(state()[1])  # the script reached both kinds


def test_concurrent_reads_by_one_user_only_move_their_cursor_forward(pg_client, pg_app, auth):
    """Many reads by the same person at once, each up to some message or the newest: the cursor ends at the
    furthest one asked for, its read count is the messages up to there, and no answer is an error."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.api.test_conversations import group, join, posted

    join(pg_client, auth, "ana", "bob")
    cid = group(pg_client, auth, "ana", ["bob"])
    ids = [posted(pg_client, auth, "ana", cid, f"m{i}")["id"] for i in range(40)]

    def read(n: int) -> int:
        body = {"upTo": ids[(n * 7) % 39]} if n % 5 else {"upTo": ids[n % 30]}
        r = pg_client.post(f"/v1/conversations/{cid}/read", json=body, headers=auth("bob"))
        assert r.status_code == 200, r.json
        return r.json["unreadCount"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(read, range(64)))
    furthest = max(((n * 7) % 39) if n % 5 else n % 30 for n in range(64))
    assert all(0 <= a <= 40 for a in answers) and min(answers) == 39 - furthest
    with pg_app.app_context():
        row = get_session().execute(text(
            "SELECT read_count, last_read_message_id FROM read_cursors WHERE conversation_id = :c AND user_id = 'bob'"),
            {"c": cid}).one()
        flags = get_session().scalars(text(
            "SELECT read FROM messages WHERE conversation_id = :c ORDER BY created_at, id"), {"c": cid}).all()
        get_session().close()
    assert (row.read_count, row.last_read_message_id) == (furthest + 1, ids[furthest])
    assert flags == [n <= furthest for n in range(40)]  # bob was the only one behind ana's messages
    assert pg_client.get(f"/v1/conversations/{cid}", headers=auth("bob")).json["unreadCount"] == 39 - furthest


def test_database_inbox_equals_python_inbox_on_every_page(pg_app):
    """The inbox page run on the driver (from inbox_entries, kept by triggers) and the same page read through
    SQLAlchemy from conversation_stats give the same JSON, page by page: groups and DMs, no messages, a concierge or
    a deleted user's last message, an offer, the concierge chat."""
    from tests.api.test_inbox import _seed_inbox

    groups = _seed_inbox(pg_app, "ana", 23, ["bob", "cy", "dee"])  # named groups: anyone may join or leave them
    with pg_app.app_context():
        session = get_session()
        session.add(User(id="gone", name="Gone", role="guest"))
        session.add(Property(id=70, host_id="bob", name="Casa", city="Lisbon"))
        session.flush()
        session.add(Offer(id=7, property_id=70, traveler_id="ana", check_in=dt.date(2026, 12, 1),
                          check_out=dt.date(2026, 12, 5), total_price_cents=100_00, currency="USD", status="Pending"))
        session.flush()
        offer, _ = svc.create_conversation(session, "ana", ["bob", "gone"], offer_id=7)
        svc.post_message(session, offer, "gone", 'last words "quoted" \\ 😀')
        svc.concierge_conversation_id(session, "ana")
        session.execute(delete(User).where(User.id == "gone"))
        # Joining late, leaving, coming back, sending through the one-statement path (the page's order is kept by
        # triggers in inbox_entries; the expected page reads conversation_stats).
        session.add(User(id="eve", name="Eve", role="guest"))
        session.flush()
        svc.add_participant(session, "ana", groups[0], "eve")
        svc.add_participant(session, "ana", groups[1], "eve")
        svc.leave_conversation(session, "ana", groups[2], "ana")
        svc.leave_conversation(session, "eve", groups[1], "eve")
        session.commit()
        svc.send_user_message(session, groups[3], "ana", "from the one statement")
        back = next(c for c in groups[4:] if svc.is_participant(session, c, "bob"))
        svc.leave_conversation(session, "ana", back, "ana")
        svc.add_participant(session, "bob", back, "ana")  # back in, with a new cursor
        session.commit()
        # Equal activity times: the id breaks the tie, the same way in both reads.
        session.execute(text("UPDATE conversation_stats SET last_activity_at = date_trunc('minute', last_activity_at)"))
        session.commit()


        total = len(session.execute(text("SELECT 1 FROM conversation_participants WHERE user_id = 'ana'")).all())
        assert total >= 23
        for user in ("bob", "eve"):
            assert orjson.loads(svc.inbox_json(session, user, 100, None)) == _expected_inbox(
                session, user, 100, None), user
        for limit in (1, 3, 7, 25, 50):
            cursor, pages, seen = None, 0, 0
            while True:
                before = decode_cursor(cursor) if cursor else None
                expected = _expected_inbox(session, "ana", limit, before)
                actual = orjson.loads(svc.inbox_json(session, "ana", limit, before))
                assert actual == expected, (limit, pages)
                seen += len(actual["items"])
                pages += 1
                cursor = actual["nextCursor"]
                if cursor is None:
                    break
            assert seen == total and pages == -(-total // limit), (limit, seen, pages)
        everything = orjson.loads(svc.inbox_json(session, "ana", 50, None))["items"]
        kinds = {(c["lastMessage"] or {}).get("senderType") for c in everything}
        assert kinds == {None, "user", "concierge", "deleted"}
        assert any(c["isConcierge"] for c in everything) and any(c["offerId"] == 7 for c in everything)


def _expected_inbox(session, user_id, limit, before):
    """The inbox page read through SQLAlchemy: the user's participations by their conversation's activity in
    conversation_stats, newest first, shaped by messaging.chat.resources.conversations_json."""
    p, s = ConversationParticipant, ConversationStats
    activity = select(s.last_activity_at).where(s.conversation_id == p.conversation_id).scalar_subquery()
    query = (
        select(p.conversation_id, activity.label("last_activity_at"))
        .where(p.user_id == user_id)
        .order_by(activity.desc(), p.conversation_id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(tuple_(activity, p.conversation_id) < position_literal(*before))
    rows = session.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].last_activity_at, rows[-1].conversation_id) if more else None
    items = conversations_json(session, user_id, [r.conversation_id for r in rows])
    return orjson.loads(orjson.dumps({"items": items, "nextCursor": next_cursor}, option=JSON_OPTIONS))


def test_every_session_runs_in_utc_and_reads_times_as_utc(pg_app):
    """Both pools start their sessions in TimeZone=UTC (messaging.store.db._utc_options), so psycopg reads timestamptz
    values with datetime.timezone.utc — the cheap path — whatever the server's default zone."""
    state = pg_app.extensions["db"]
    for engine in (state["engine"], state["autocommit_engine"]):
        with engine.connect() as conn:
            assert conn.execute(text("SHOW TimeZone")).scalar_one() == "UTC"
            now = conn.execute(text("SELECT now()")).scalar_one()
            assert now.tzinfo is dt.UTC
