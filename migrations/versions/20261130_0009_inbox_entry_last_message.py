"""Inbox entries carry their conversation's last message and concierge flag, kept by triggers.

An inbox page then reads neither ``messages`` nor ``concierge_threads``: its conversations come from the entries'
index range, their participants from the read cursors, and nothing else but (for a last message without an
author) the probe that tells a concierge message from a deleted user's.

The copies are kept by triggers, as the rest of the entry is:

- a participation's entry is made with its conversation's last message and concierge flag;
- when the counters move (``conversation_stats``), every entry of the conversation takes the new last message;
- when a message's author (a deleted user: null), text, ``read`` flag, edit flag or time changes, the entries
  whose last message it is take the change (``messages``, a row trigger that runs only for a real change);
- a ``concierge_threads`` row made or deleted sets or clears the flag.

Locks. The entries of a conversation are now also locked by a statement that changes a message (a read marking
the last message read, an edit, a user's deletion), after that message's row. So every writer takes its locks
in one order, the one-statement send's: the writer's read cursor, message rows, the conversation's counters,
inbox entries. Each statement locks entries last (the triggers run at its end), and the few transactions of
several statements first lock, in that order, what they will change (``post_message``'s general path, leaving a
conversation, deleting a user). Found by a test that runs all of them at once: a user's deletion (which deletes
their entries, then updates their messages) deadlocked against a send (which updates every entry of the
conversation).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COPIED = ('last_message_user_id', 'last_message_text', 'last_message_read', 'last_message_is_edit',
          'last_message_created_at')
SOURCE = ('user_id', 'message', 'read', 'is_edit', 'created_at')  # the messages columns they copy

UP = [
    """CREATE OR REPLACE FUNCTION inbox_entry_for_participant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO inbox_entries (conversation_id, user_id, last_activity_at, message_count, last_message_id,
                               name, offer_id, conversation_created_at, is_concierge,
                               last_message_user_id, last_message_text, last_message_read, last_message_is_edit,
                               last_message_created_at)
    SELECT NEW.conversation_id, NEW.user_id, coalesce(s.last_activity_at, now()), coalesce(s.message_count, 0),
           s.last_message_id, c.name, c.offer_id, c.created_at,
           EXISTS (SELECT 1 FROM concierge_threads t WHERE t.conversation_id = c.id),
           m.user_id, m.message, m.read, m.is_edit, m.created_at
      FROM conversations c
      LEFT JOIN conversation_stats s ON s.conversation_id = c.id
      LEFT JOIN messages m ON m.id = s.last_message_id
     WHERE c.id = NEW.conversation_id
    ON CONFLICT (conversation_id, user_id) DO NOTHING;
    RETURN NULL;
END $$""",
    """CREATE OR REPLACE FUNCTION inbox_entries_follow_activity() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    m record;
BEGIN
    SELECT user_id, message, read, is_edit, created_at INTO m FROM messages WHERE id = NEW.last_message_id;
    UPDATE inbox_entries
       SET last_activity_at = NEW.last_activity_at, message_count = NEW.message_count,
           last_message_id = NEW.last_message_id,
           last_message_user_id = m.user_id, last_message_text = m.message, last_message_read = m.read,
           last_message_is_edit = m.is_edit, last_message_created_at = m.created_at
     WHERE conversation_id = NEW.conversation_id
       AND (last_activity_at, message_count, last_message_id)
           IS DISTINCT FROM (NEW.last_activity_at, NEW.message_count, NEW.last_message_id);
    RETURN NULL;
END $$""",
    """CREATE FUNCTION inbox_entries_follow_last_message() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE inbox_entries
       SET last_message_user_id = NEW.user_id, last_message_text = NEW.message, last_message_read = NEW.read,
           last_message_is_edit = NEW.is_edit, last_message_created_at = NEW.created_at
     WHERE conversation_id = NEW.conversation_id AND last_message_id = NEW.id;
    RETURN NULL;
END $$""",
    # Also run by a deleted user's foreign key (ON DELETE SET NULL updates user_id).
    """CREATE TRIGGER inbox_entries_follow_last_message
AFTER UPDATE OF user_id, message, read, is_edit, created_at ON messages
FOR EACH ROW WHEN ((OLD.user_id, OLD.message, OLD.read, OLD.is_edit, OLD.created_at)
                   IS DISTINCT FROM (NEW.user_id, NEW.message, NEW.read, NEW.is_edit, NEW.created_at))
EXECUTE FUNCTION inbox_entries_follow_last_message()""",
    """CREATE FUNCTION inbox_entries_follow_concierge_thread() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE inbox_entries SET is_concierge = true WHERE conversation_id = NEW.conversation_id AND NOT is_concierge;
    ELSE
        UPDATE inbox_entries SET is_concierge = false WHERE conversation_id = OLD.conversation_id AND is_concierge;
    END IF;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER inbox_entries_follow_concierge_thread AFTER INSERT OR DELETE ON concierge_threads
FOR EACH ROW EXECUTE FUNCTION inbox_entries_follow_concierge_thread()""",
]

# 0007's functions, as they were.
DOWN = [
    "DROP TRIGGER inbox_entries_follow_concierge_thread ON concierge_threads",
    "DROP FUNCTION inbox_entries_follow_concierge_thread()",
    "DROP TRIGGER inbox_entries_follow_last_message ON messages",
    "DROP FUNCTION inbox_entries_follow_last_message()",
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
]


def upgrade() -> None:
    op.add_column('inbox_entries', sa.Column('is_concierge', sa.Boolean(), server_default=sa.false(),
                                             nullable=False))
    op.add_column('inbox_entries', sa.Column('last_message_user_id', sa.Text(), nullable=True))
    op.add_column('inbox_entries', sa.Column('last_message_text', sa.String(length=1500), nullable=True))
    op.add_column('inbox_entries', sa.Column('last_message_read', sa.Boolean(), nullable=True))
    op.add_column('inbox_entries', sa.Column('last_message_is_edit', sa.Boolean(), nullable=True))
    op.add_column('inbox_entries', sa.Column('last_message_created_at', sa.TIMESTAMP(timezone=True), nullable=True))
    copies = ', '.join(f'{column} = (SELECT m.{source} FROM messages m WHERE m.id = inbox_entries.last_message_id)'
                       for column, source in zip(COPIED, SOURCE, strict=True))
    op.execute(f'UPDATE inbox_entries SET {copies}, is_concierge = EXISTS '
               '(SELECT 1 FROM concierge_threads t WHERE t.conversation_id = inbox_entries.conversation_id)')
    for statement in UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWN:
        op.execute(statement)
    for column in (*reversed(COPIED), 'is_concierge'):
        op.drop_column('inbox_entries', column)
