"""The hottest reads on PostgreSQL, straight on the driver: one statement, plain tuples, no ORM layer.

A history page built through SQLAlchemy Core spends more time in Python than in the database: building the
select, computing its cache key, and running 50 rows through the result processors. Here the statement is
fixed text, run on the psycopg connection under the request's session (so it shares its connection and
transaction state), with binary results; psycopg prepares it server-side after a few runs, so PostgreSQL
does not plan it again. The rows become the API's JSON in one pass with orjson.

Measured against the alternatives (one 50-message page, same connection): having PostgreSQL write the JSON
(``row_to_json`` and ``to_char`` per row) costs the database 3× this statement, more than Python saves;
SQLAlchemy Core costs the web process about twice these tuples.

SQLite (the embedded default) keeps :func:`messaging.conversations.history`; ``tests/test_pg_reads.py`` checks
both give the same JSON for the same rows, page by page.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.orm import Session

from messaging.db import driver_cursor
from messaging.http import JSON_OPTIONS
from messaging.pagination import Position, encode_cursor


def _history_sql(direction: str) -> str:
    """The page's rows in paging order, one more than asked for (there are more when it comes back). Only a
    message without an author looks for a concierge origin, by primary key, to tell the concierge from a
    deleted user. ``direction``: ``newest``, ``before`` or ``after``."""
    bound = {
        "newest": "",
        "before": "AND (m.created_at, m.id) < (%(at)s, %(pid)s)",
        "after": "AND (m.created_at, m.id) > (%(at)s, %(pid)s)",
    }[direction]
    order = "ASC" if direction == "after" else "DESC"
    return f"""
SELECT m.id, m.user_id, m.message, m.read, m.is_edit, m.created_at,
       CASE WHEN m.user_id IS NULL
            THEN EXISTS (SELECT 1 FROM concierge_message_origins o WHERE o.message_id = m.id) END
  FROM messages m
 WHERE m.conversation_id = %(cid)s {bound}
   AND EXISTS (SELECT 1 FROM conversation_participants WHERE conversation_id = %(cid)s AND user_id = %(uid)s)
 ORDER BY m.created_at {order}, m.id {order}
 LIMIT %(limit)s"""


HISTORY_SQL = {d: _history_sql(d) for d in ("newest", "before", "after")}


def history_page(
    session: Session,
    caller_id: str,
    conversation_id: str,
    limit: int,
    before: Position | None = None,
    after: Position | None = None,
) -> tuple[bytes, int]:
    """The history response body and how many messages it holds (0: none, or the caller is not a participant)."""
    params: dict[str, Any] = {"cid": conversation_id, "uid": caller_id, "limit": limit + 1}
    direction = "newest"
    if after is not None:
        direction, (params["at"], params["pid"]) = "after", after
    elif before is not None:
        direction, (params["at"], params["pid"]) = "before", before
    with driver_cursor(session) as cursor:
        rows = cursor.execute(HISTORY_SQL[direction], params).fetchall()
    more = len(rows) > limit
    if more:
        del rows[limit:]
    next_cursor = encode_cursor(rows[-1][5], rows[-1][0]) if more else None
    if direction != "after":
        rows.reverse()
    items = [
        {
            "id": mid,
            "conversationId": conversation_id,
            "userId": user_id,
            "senderType": "user" if user_id is not None else "concierge" if from_concierge else "deleted",
            "message": message,
            "read": bool(read),
            "isEdit": bool(is_edit),
            "createdAt": created_at,
        }
        for mid, user_id, message, read, is_edit, created_at, from_concierge in rows
    ]
    body = orjson.dumps({"items": items, "nextCursor": next_cursor}, option=JSON_OPTIONS)
    return body, len(items)
