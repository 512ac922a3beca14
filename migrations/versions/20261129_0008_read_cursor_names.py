"""Read cursors carry their participant's name (read_cursors.user_name), kept by triggers.

An inbox page takes its conversations' participants from their cursors alone instead of looking each one up in
``users`` (one index lookup per participant fewer).

The name is the user's, copied by triggers: set from ``users`` whenever a cursor is made (whatever the insert
says), and rewritten in all of a user's cursors when their name changes. Renaming a user therefore writes one
row per conversation they are in, found through their participations (``ix_conversation_participants_user_id``,
then each cursor by primary key): renames are rare, inbox pages are not. The rename locks the user's row, then
their cursors; nothing locks a cursor and then a user's row, so it cannot deadlock with a send or a read.

``ix_users_id_name`` (0007), which served those lookups from the index alone, goes: nothing else needs it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UP = [
    """CREATE FUNCTION read_cursor_user_name() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.user_name := (SELECT name FROM users WHERE id = NEW.user_id);
    RETURN NEW;
END $$""",
    """CREATE TRIGGER read_cursor_user_name BEFORE INSERT ON read_cursors
FOR EACH ROW EXECUTE FUNCTION read_cursor_user_name()""",
    """CREATE FUNCTION read_cursors_follow_user_name() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE read_cursors rc SET user_name = NEW.name
      FROM conversation_participants p
     WHERE p.user_id = NEW.id AND rc.conversation_id = p.conversation_id AND rc.user_id = NEW.id;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER read_cursors_follow_user_name AFTER UPDATE OF name ON users
FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name) EXECUTE FUNCTION read_cursors_follow_user_name()""",
]

DOWN = [
    "DROP TRIGGER read_cursors_follow_user_name ON users",
    "DROP FUNCTION read_cursors_follow_user_name()",
    "DROP TRIGGER read_cursor_user_name ON read_cursors",
    "DROP FUNCTION read_cursor_user_name()",
]


def upgrade() -> None:
    op.add_column('read_cursors', sa.Column('user_name', sa.Text(), nullable=True))
    op.execute('UPDATE read_cursors SET user_name = (SELECT u.name FROM users u WHERE u.id = read_cursors.user_id)')
    for statement in UP:
        op.execute(statement)
    op.drop_index('ix_users_id_name', table_name='users')


def downgrade() -> None:
    op.create_index('ix_users_id_name', 'users', ['id'], unique=False, postgresql_include=['name'])
    for statement in DOWN:
        op.execute(statement)
    op.drop_column('read_cursors', 'user_name')
