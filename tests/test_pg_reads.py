"""On PostgreSQL the history page comes straight from the driver (messaging.pg_reads); it must be the same JSON
the general path (SQLAlchemy, also SQLite's) makes from the same rows, whatever the text holds, for every kind
of sender and every way of paging."""

from __future__ import annotations

import datetime as dt
import re

import orjson
from sqlalchemy import delete, text

from messaging import conversations as svc
from messaging.db import get_session
from messaging.models import User
from messaging.pagination import decode_cursor

AWKWARD = [
    'quote " and backslash \\ and slash /',
    "new\nline, tab\t, carriage\r return, bell \x07, escape \x1b, unit separator \x1f",
    "accents é ü ß, CJK 漢字, emoji 😀👍🏽, RTL مرحبا, zero width \u200b, line separator \u2028",
    "<script>alert('x')</script> & ampersand",
    "x" * 1490,
]


def _python_page(session, caller, cid, limit, before=None, after=None):
    page = svc.history(session, caller, cid, limit, before, after)
    return orjson.loads(orjson.dumps({"items": page.items, "nextCursor": page.next_cursor},
                                     option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC))


def test_database_json_equals_python_json_on_every_page(pg_app):
    with pg_app.app_context():
        session = get_session()
        session.add_all([User(id=u, name=u, role="guest") for u in ("ana", "bob", "gone")])
        session.flush()
        cid, _ = svc.create_conversation(session, "ana", ["bob", "gone"], name="trip")
        for i, body in enumerate(AWKWARD * 3):
            svc.post_message(session, cid, ("ana", "bob", "gone")[i % 3], f"{i}: {body}")
        svc.post_message(session, cid, None, "Your booking is confirmed.", origin={"kind": "system"})
        svc.edit_message(session, "ana", _first_of(session, cid, "ana"), "edited ✓")
        # Whole seconds (no microseconds) are written without a fraction; some rows share a timestamp, so
        # the id breaks the tie.
        session.execute(text("UPDATE messages SET created_at = date_trunc('second', created_at) "
                             "WHERE conversation_id = :cid AND message LIKE '1%'"), {"cid": cid})
        session.execute(text("UPDATE messages SET created_at = '2026-03-01 10:00:00.000120+00' "
                             "WHERE conversation_id = :cid AND message LIKE '2%'"), {"cid": cid})
        session.execute(delete(User).where(User.id == "gone"))
        session.commit()

        total = len(AWKWARD) * 3 + 1
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
                    expected = _python_page(session, "ana", cid, limit, **kwargs)
                    actual = orjson.loads(svc.history_json(session, "ana", cid, limit, **kwargs))
                    assert actual == expected, (limit, direction, pages)
                    pages += 1
                    cursor = actual["nextCursor"]
                    if cursor is None:
                        break
                assert pages == -(-total // limit), (limit, direction)
        senders = {m["senderType"] for m in orjson.loads(svc.history_json(session, "ana", cid, 100))["items"]}
        assert senders == {"user", "deleted", "concierge"}
        stamps = [m["createdAt"] for m in orjson.loads(svc.history_json(session, "ana", cid, 100))["items"]]
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
                svc.history_json(session, caller, conversation, 50)
            except NotFound:
                continue
            raise AssertionError(f"{caller} read {conversation}")
        empty, _ = svc.create_conversation(session, "ana", ["bob"], name="quiet")
        session.commit()
        assert orjson.loads(svc.history_json(session, "bob", empty, 50)) == {"items": [], "nextCursor": None}
