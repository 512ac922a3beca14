"""Inbox entries carry their conversation's name, offer, creation time and counters.

What the inbox page needs of its conversation besides its participants and last message: the conversation's
name, offer id and creation time (which never change once it exists) and its message count and last message id
(which change with every message). The same triggers keep them: the participation's trigger copies them when the
entry is made, the conversation_stats triggers whenever the counters move (a send already rewrote each
participant's entry for its last activity; the two columns more cost no more rows). A page then reads its
conversations from the index range, with no lookup in conversations or conversation_stats.

Also: ix_users_id_name, users (id) INCLUDE (name), so the participants' names of a page come from the
index alone while the users table's pages are all-visible.

The entries' rows are still locked only by these triggers, after the conversation's stats row.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UP = [
    """CREATE OR REPLACE FUNCTION inbox_entry_for_participant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO inbox_entries (conversation_id, user_id, last_activity_at, message_count, last_message_id,
                               name, offer_id, conversation_created_at)
    SELECT NEW.conversation_id, NEW.user_id, coalesce(s.last_activity_at, now()), coalesce(s.message_count, 0),
           s.last_message_id, c.name, c.offer_id, c.created_at
      FROM conversations c LEFT JOIN conversation_stats s ON s.conversation_id = c.id
     WHERE c.id = NEW.conversation_id
    ON CONFLICT (conversation_id, user_id) DO NOTHING;
    RETURN NULL;
END $$""",
    """CREATE OR REPLACE FUNCTION inbox_entries_follow_activity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE inbox_entries
       SET last_activity_at = NEW.last_activity_at, message_count = NEW.message_count,
           last_message_id = NEW.last_message_id
     WHERE conversation_id = NEW.conversation_id
       AND (last_activity_at, message_count, last_message_id)
           IS DISTINCT FROM (NEW.last_activity_at, NEW.message_count, NEW.last_message_id);
    RETURN NULL;
END $$""",
    "DROP TRIGGER inbox_entries_follow_activity ON conversation_stats",
    """CREATE TRIGGER inbox_entries_follow_activity
AFTER UPDATE OF last_activity_at, message_count, last_message_id ON conversation_stats
FOR EACH ROW WHEN ((OLD.last_activity_at, OLD.message_count, OLD.last_message_id)
                   IS DISTINCT FROM (NEW.last_activity_at, NEW.message_count, NEW.last_message_id))
EXECUTE FUNCTION inbox_entries_follow_activity()""",
]

DOWN = [
    """CREATE OR REPLACE FUNCTION inbox_entry_for_participant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO inbox_entries (conversation_id, user_id, last_activity_at)
    VALUES (NEW.conversation_id, NEW.user_id,
            coalesce((SELECT last_activity_at FROM conversation_stats WHERE conversation_id = NEW.conversation_id),
                     now()))
    ON CONFLICT (conversation_id, user_id) DO NOTHING;
    RETURN NULL;
END $$""",
    """CREATE OR REPLACE FUNCTION inbox_entries_follow_activity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE inbox_entries SET last_activity_at = NEW.last_activity_at
     WHERE conversation_id = NEW.conversation_id AND last_activity_at IS DISTINCT FROM NEW.last_activity_at;
    RETURN NULL;
END $$""",
    "DROP TRIGGER inbox_entries_follow_activity ON conversation_stats",
    """CREATE TRIGGER inbox_entries_follow_activity AFTER UPDATE OF last_activity_at ON conversation_stats
FOR EACH ROW WHEN (OLD.last_activity_at IS DISTINCT FROM NEW.last_activity_at)
EXECUTE FUNCTION inbox_entries_follow_activity()""",
]


def upgrade() -> None:
    op.add_column('inbox_entries', sa.Column('message_count', sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('inbox_entries', sa.Column('last_message_id', sa.String(length=21), nullable=True))
    op.add_column('inbox_entries', sa.Column('name', sa.String(length=255), nullable=True))
    op.add_column('inbox_entries', sa.Column('offer_id', sa.String(), nullable=True))
    op.add_column('inbox_entries', sa.Column('conversation_created_at', sa.TIMESTAMP(timezone=True), nullable=True))
    op.execute(
        'UPDATE inbox_entries SET '
        'message_count = coalesce((SELECT s.message_count FROM conversation_stats s '
        '                          WHERE s.conversation_id = inbox_entries.conversation_id), 0), '
        'last_message_id = (SELECT s.last_message_id FROM conversation_stats s '
        '                   WHERE s.conversation_id = inbox_entries.conversation_id), '
        'name = (SELECT c.name FROM conversations c WHERE c.id = inbox_entries.conversation_id), '
        'offer_id = (SELECT c.offer_id FROM conversations c WHERE c.id = inbox_entries.conversation_id), '
        'conversation_created_at = (SELECT c.created_at FROM conversations c '
        '                           WHERE c.id = inbox_entries.conversation_id)'
    )
    for statement in UP:
        op.execute(statement)
    # the participants' names of a page from the index alone
    op.create_index('ix_users_id_name', 'users', ['id'], unique=False, postgresql_include=['name'])


def downgrade() -> None:
    op.drop_index('ix_users_id_name', table_name='users')
    for statement in DOWN:
        op.execute(statement)
    for column in ('conversation_created_at', 'offer_id', 'name', 'last_message_id', 'message_count'):
        op.drop_column('inbox_entries', column)
