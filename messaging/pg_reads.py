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
            THEN (SELECT true FROM concierge_message_origins o WHERE o.message_id = m.id LIMIT 1) END
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


def _inbox_sql(paged: bool) -> str:
    """A page of the caller's conversations by latest activity, each with what the Conversation resource needs
    (SPEC §4): its row, counters, the caller's cursor, its last message and its participants (as three arrays
    in user id order). Every lookup goes from the caller's participations by primary key or index: each LATERAL
    subquery has ``OFFSET 0``, which keeps the planner from flattening it into a join it might answer with a
    hash of the whole table; so the cost follows this user's conversations, whatever the size of the tables."""
    bound = "AND (s.last_activity_at, p.conversation_id) < (%(at)s, %(pid)s)" if paged else ""
    return f"""
WITH page AS (
    SELECT p.conversation_id AS id, s.last_activity_at AS at, s.message_count, s.last_message_id
      FROM conversation_participants p
     CROSS JOIN LATERAL (SELECT last_activity_at, message_count, last_message_id
                           FROM conversation_stats WHERE conversation_id = p.conversation_id OFFSET 0) AS s
     WHERE p.user_id = %(uid)s {bound}
     ORDER BY s.last_activity_at DESC, p.conversation_id DESC
     LIMIT %(limit)s
)
SELECT page.id, c.name, c.offer_id, c.created_at, page.at,
       page.message_count - coalesce((SELECT read_count FROM read_cursors
                                       WHERE conversation_id = page.id AND user_id = %(uid)s), 0),
       coalesce((SELECT true FROM concierge_threads t WHERE t.conversation_id = page.id LIMIT 1), false),
       lm.id, lm.user_id, lm.message, lm.read, lm.is_edit, lm.created_at,
       CASE WHEN lm.user_id IS NULL
            THEN (SELECT true FROM concierge_message_origins o WHERE o.message_id = lm.id LIMIT 1) END,
       pp.user_ids, pp.names, pp.read_ats
  FROM page
 CROSS JOIN LATERAL (SELECT name, offer_id, created_at FROM conversations WHERE id = page.id OFFSET 0) AS c
  LEFT JOIN LATERAL (SELECT id, user_id, message, read, is_edit, created_at
                       FROM messages WHERE id = page.last_message_id OFFSET 0) AS lm ON true
 CROSS JOIN LATERAL (
        SELECT array_agg(p2.user_id ORDER BY p2.user_id) AS user_ids,
               array_agg(u.name ORDER BY p2.user_id) AS names,
               array_agg(rc.last_read_at ORDER BY p2.user_id) AS read_ats
          FROM conversation_participants p2
         CROSS JOIN LATERAL (SELECT name FROM users WHERE id = p2.user_id OFFSET 0) AS u
          LEFT JOIN LATERAL (SELECT last_read_at FROM read_cursors
                              WHERE conversation_id = p2.conversation_id AND user_id = p2.user_id
                             OFFSET 0) AS rc ON true
         WHERE p2.conversation_id = page.id) AS pp
 ORDER BY page.at DESC, page.id DESC"""


INBOX_SQL = {paged: _inbox_sql(paged) for paged in (False, True)}


def inbox_page(session: Session, user_id: str, limit: int, before: Position | None = None) -> bytes:
    """The inbox response body (the caller's conversations, latest activity first)."""
    params: dict[str, Any] = {"uid": user_id, "limit": limit + 1}
    if before is not None:
        params["at"], params["pid"] = before
    with driver_cursor(session) as cursor:
        rows = cursor.execute(INBOX_SQL[before is not None], params).fetchall()
    more = len(rows) > limit
    if more:
        del rows[limit:]
    items = []
    for (cid, name, offer_id, created_at, _at, unread, is_concierge, m_id, m_user_id, m_message, m_read,
         m_is_edit, m_created_at, m_from_concierge, user_ids, names, read_ats) in rows:
        last_message = None
        if m_id is not None:
            last_message = {
                "id": m_id,
                "conversationId": cid,
                "userId": m_user_id,
                "senderType": "user" if m_user_id is not None else "concierge" if m_from_concierge else "deleted",
                "message": m_message,
                "read": bool(m_read),
                "isEdit": bool(m_is_edit),
                "createdAt": m_created_at,
            }
        items.append({
            "id": cid,
            "name": name,
            "offerId": offer_id,
            "createdAt": created_at,
            "isConcierge": is_concierge,
            "participants": [
                {"userId": u, "name": n, "lastReadAt": r}
                for u, n, r in zip(user_ids or (), names or (), read_ats or (), strict=True)
            ],
            "lastMessage": last_message,
            "unreadCount": max(0, unread),
        })
    next_cursor = encode_cursor(rows[-1][4], rows[-1][0]) if more else None
    return orjson.dumps({"items": items, "nextCursor": next_cursor}, option=JSON_OPTIONS)
