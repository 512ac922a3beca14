"""The hottest reads on PostgreSQL, straight on the driver: one statement, plain tuples, no ORM layer.

A history page built through SQLAlchemy Core spends more time in Python than in the database: building the
select, computing its cache key, and running 50 rows through the result processors. Here the statement is
fixed text, run on a binary psycopg cursor the caller hands over — the request's session's connection inside
a transaction, else one from the autocommit pool (:func:`messaging.db.driver_cursor`; the fast lane's
:func:`messaging.db.autocommit_cursor`); psycopg prepares it server-side after a few runs, so PostgreSQL
does not plan it again. The rows come back as plain tuples with the columns of the SQLAlchemy reads in
:mod:`messaging.resources` (``select_messages``, ``conversations_json``: the admin pages, one conversation) in
their order, so the same builders and the same paging shape both.

JSON is built in Python from the tuples, not by PostgreSQL (``row_to_json``), which costs the database more
than it saves Python (``bench/README.md``). A statement error is the driver's, raised to the caller.

``tests/api/test_pg_reads.py`` checks these pages against the same rows read through SQLAlchemy, page by page.
"""

from __future__ import annotations

from typing import Any

from messaging.pagination import Position


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
SELECT m.id, m.conversation_id, m.user_id, m.message, m.read, m.is_edit, m.created_at,
       CASE WHEN m.user_id IS NULL
            THEN (SELECT true FROM concierge_message_origins o WHERE o.message_id = m.id LIMIT 1) END
            AS from_concierge
  FROM messages m
 WHERE m.conversation_id = %(cid)s {bound}
   AND EXISTS (SELECT 1 FROM conversation_participants WHERE conversation_id = %(cid)s AND user_id = %(uid)s)
 ORDER BY m.created_at {order}, m.id {order}
 LIMIT %(limit)s"""


HISTORY_SQL = {d: _history_sql(d) for d in ("newest", "before", "after")}


def history_rows(
    cursor: Any,
    caller_id: str,
    conversation_id: str,
    count: int,
    before: Position | None = None,
    after: Position | None = None,
) -> list[Any]:
    """Up to ``count`` messages in paging order (none when the caller is not a participant), as plain tuples of
    the columns of :data:`messaging.resources.MESSAGE_COLUMNS` in their order, read on ``cursor`` (a binary psycopg
    cursor: :func:`messaging.db.driver_cursor`)."""
    params: dict[str, Any] = {"cid": conversation_id, "uid": caller_id, "limit": count}
    direction = "newest"
    if after is not None:
        direction, (params["at"], params["pid"]) = "after", after
    elif before is not None:
        direction, (params["at"], params["pid"]) = "before", before
    return cursor.execute(HISTORY_SQL[direction], params).fetchall()  # type: ignore[no-any-return]


PARTICIPANT_SQL = "SELECT 1 FROM conversation_participants WHERE conversation_id = %s AND user_id = %s"


def is_participant(cursor: Any, conversation_id: str, user_id: str) -> bool:
    """Whether ``user_id`` takes part in the conversation (one primary-key lookup)."""
    return cursor.execute(PARTICIPANT_SQL, (conversation_id, user_id)).fetchone() is not None


def _inbox_sql(paged: bool) -> str:
    """A page of the caller's conversations by latest activity, each with what the Conversation resource needs
    (SPEC §4): its row, counters, the caller's cursor, its last message and its participants (as three arrays
    in user id order). The page is a backward range of ``ix_inbox_entries_user_activity`` (one entry per
    participation, kept by triggers: :class:`messaging.models.InboxEntry`), whose rows also carry the
    conversation's name, offer, creation time, counters, concierge flag and last message, so its cost is the 50
    conversations on it, not all of the caller's, and no lookup in ``conversations``, ``conversation_stats``,
    ``messages`` or ``concierge_threads``. The rest is looked up by key: the participants from their read cursors
    (every participation has its cursor, made and deleted with it, and each cursor carries its participant's
    name: migration 0008), with the caller's read count among them; the cursors come in primary-key order, so the
    arrays need no sort. Only a last message without an author asks ``concierge_message_origins`` whether the
    concierge wrote it (else its author was deleted)."""
    bound = "AND (e.last_activity_at, e.conversation_id) < (%(at)s, %(pid)s)" if paged else ""
    return f"""
WITH page AS (
    SELECT e.conversation_id AS id, e.last_activity_at AS at, e.name, e.offer_id, e.conversation_created_at,
           e.message_count, e.is_concierge, e.last_message_id, e.last_message_user_id, e.last_message_text,
           e.last_message_read, e.last_message_is_edit, e.last_message_created_at
      FROM inbox_entries e
     WHERE e.user_id = %(uid)s {bound}
     ORDER BY e.last_activity_at DESC, e.conversation_id DESC
     LIMIT %(limit)s
)
SELECT page.id, page.name, page.offer_id, page.conversation_created_at AS created_at, page.message_count,
       pp.read_count, page.is_concierge,
       page.last_message_id AS m_id, page.last_message_user_id AS m_user_id, page.last_message_text AS m_message,
       page.last_message_read AS m_read, page.last_message_is_edit AS m_is_edit,
       page.last_message_created_at AS m_created_at,
       CASE WHEN page.last_message_id IS NOT NULL AND page.last_message_user_id IS NULL
            THEN (SELECT true FROM concierge_message_origins o WHERE o.message_id = page.last_message_id LIMIT 1)
       END AS m_from_concierge,
       page.at AS last_activity_at, pp.user_ids, pp.names, pp.read_ats
  FROM page
 CROSS JOIN LATERAL (
        SELECT array_agg(p.user_id) AS user_ids, array_agg(p.name) AS names, array_agg(p.last_read_at) AS read_ats,
               max(p.read_count) FILTER (WHERE p.user_id = %(uid)s) AS read_count
          FROM (SELECT rc.user_id, rc.user_name AS name, rc.last_read_at, rc.read_count
                  FROM read_cursors rc
                 WHERE rc.conversation_id = page.id
                 ORDER BY rc.user_id) AS p) AS pp
 ORDER BY page.at DESC, page.id DESC"""


INBOX_SQL = {paged: _inbox_sql(paged) for paged in (False, True)}
# Positions in an inbox row after the 14 columns of messaging.resources.conversation_json.
INBOX_LAST_ACTIVITY = 14
INBOX_PARTICIPANTS = slice(15, 18)  # user ids, names, read times


def inbox_rows(cursor: Any, user_id: str, count: int, before: Position | None = None) -> list[tuple[Any, ...]]:
    """Up to ``count`` of the caller's conversations, latest activity first, read on ``cursor`` as plain tuples
    (positions, not names): the columns of
    :func:`messaging.resources.conversation_json` in its order, then ``last_activity_at`` and the participants'
    user ids, names and read times."""
    params: dict[str, Any] = {"uid": user_id, "limit": count}
    if before is not None:
        params["at"], params["pid"] = before
    return cursor.execute(INBOX_SQL[before is not None], params).fetchall()  # type: ignore[no-any-return]
