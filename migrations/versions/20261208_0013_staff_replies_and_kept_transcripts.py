"""Staff replies are marked on their message, and transcripts outlive their user.

An admin's reply (SPEC §7) is a message with ``from_staff`` true; every other message has it null. A new nullable
column with no default is a change of the catalog only: the messages table is not rewritten, and the seed's own
columns stay as they are (SPEC §1 allows new nullable columns). History reads it from the row it already reads.
Inbox entries copy it with the rest of their last message (``last_message_from_staff``), through the triggers of
migration 0009: the participation's trigger and the counters' trigger copy it, and it never changes after the
insert, so the trigger that follows a changed last message needs no change. Existing rows need no backfill: no
message before this revision is a staff reply (an admin who replied then joined the conversation and stays a
participant).

A concierge thread and an offer thread keep their conversation when the platform deletes their user: their user
becomes null (``ON DELETE SET NULL``) instead of the row going with the user, so the transcript stays listed and
readable by admins. Downgrading deletes the threads whose user is gone (their conversations stay, as before this
revision they would have stayed once the user was deleted).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 0009's functions, with the last message's from_staff copied too.
UP = [
    """CREATE OR REPLACE FUNCTION inbox_entry_for_participant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO inbox_entries (conversation_id, user_id, last_activity_at, message_count, last_message_id,
                               name, offer_id, conversation_created_at, is_concierge,
                               last_message_user_id, last_message_text, last_message_read, last_message_is_edit,
                               last_message_created_at, last_message_from_staff)
    SELECT NEW.conversation_id, NEW.user_id, coalesce(s.last_activity_at, now()), coalesce(s.message_count, 0),
           s.last_message_id, c.name, c.offer_id, c.created_at,
           EXISTS (SELECT 1 FROM concierge_threads t WHERE t.conversation_id = c.id),
           m.user_id, m.message, m.read, m.is_edit, m.created_at, m.from_staff
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
    SELECT user_id, message, read, is_edit, created_at, from_staff INTO m
      FROM messages WHERE id = NEW.last_message_id;
    UPDATE inbox_entries
       SET last_activity_at = NEW.last_activity_at, message_count = NEW.message_count,
           last_message_id = NEW.last_message_id,
           last_message_user_id = m.user_id, last_message_text = m.message, last_message_read = m.read,
           last_message_is_edit = m.is_edit, last_message_created_at = m.created_at,
           last_message_from_staff = m.from_staff
     WHERE conversation_id = NEW.conversation_id
       AND (last_activity_at, message_count, last_message_id)
           IS DISTINCT FROM (NEW.last_activity_at, NEW.message_count, NEW.last_message_id);
    RETURN NULL;
END $$""",
]

# 0009's functions, as they were.
DOWN = [
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
]

# (table, column, foreign key): the threads whose user may now be gone.
KEPT = (('concierge_threads', 'user_id', 'fk_concierge_threads_user_id_users'),
        ('offer_threads', 'traveler_id', 'fk_offer_threads_traveler_id_users'))


def _user_key(table: str, column: str, name: str, on_delete: str) -> None:
    op.drop_constraint(name, table, type_='foreignkey')
    op.create_foreign_key(name, table, 'users', [column], ['id'], ondelete=on_delete)


def upgrade() -> None:
    op.add_column('messages', sa.Column('from_staff', sa.Boolean(), nullable=True))
    op.add_column('inbox_entries', sa.Column('last_message_from_staff', sa.Boolean(), nullable=True))
    for statement in UP:
        op.execute(statement)
    for table, column, name in KEPT:
        op.alter_column(table, column, existing_type=sa.Text(), nullable=True)
        _user_key(table, column, name, 'SET NULL')


def downgrade() -> None:
    for table, column, name in KEPT:
        op.execute(f'DELETE FROM {table} WHERE {column} IS NULL')
        _user_key(table, column, name, 'CASCADE')
        op.alter_column(table, column, existing_type=sa.Text(), nullable=False)
    for statement in DOWN:
        op.execute(statement)
    op.drop_column('inbox_entries', 'last_message_from_staff')
    op.drop_column('messages', 'from_staff')
