"""Inbox order: each read cursor (one per participation) carries its conversation's last activity, copied from
conversation_stats by triggers, and read_cursors is indexed by (user, last activity), so a page of anyone's inbox
is a range of one index instead of a sort of all their conversations.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POSTGRESQL_TRIGGERS = [
    # A new cursor starts with its conversation's activity (the stats row exists first when a conversation is
    # made; if not, the stats trigger below sets it once the stats row comes).
    """CREATE FUNCTION read_cursor_takes_activity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.last_activity_at := coalesce(
        (SELECT last_activity_at FROM conversation_stats WHERE conversation_id = NEW.conversation_id),
        NEW.last_activity_at);
    RETURN NEW;
END $$""",
    """CREATE TRIGGER read_cursors_take_activity BEFORE INSERT ON read_cursors
FOR EACH ROW EXECUTE FUNCTION read_cursor_takes_activity()""",
    """CREATE FUNCTION read_cursors_follow_activity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE read_cursors SET last_activity_at = NEW.last_activity_at
     WHERE conversation_id = NEW.conversation_id AND last_activity_at IS DISTINCT FROM NEW.last_activity_at;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER read_cursors_follow_new_stats AFTER INSERT ON conversation_stats
FOR EACH ROW EXECUTE FUNCTION read_cursors_follow_activity()""",
    """CREATE TRIGGER read_cursors_follow_activity AFTER UPDATE OF last_activity_at ON conversation_stats
FOR EACH ROW WHEN (OLD.last_activity_at IS DISTINCT FROM NEW.last_activity_at)
EXECUTE FUNCTION read_cursors_follow_activity()""",
]

SQLITE_TRIGGERS = [
    """CREATE TRIGGER read_cursors_take_activity AFTER INSERT ON read_cursors
WHEN EXISTS (SELECT 1 FROM conversation_stats WHERE conversation_id = NEW.conversation_id)
BEGIN
    UPDATE read_cursors
       SET last_activity_at = (SELECT last_activity_at FROM conversation_stats
                                WHERE conversation_id = NEW.conversation_id)
     WHERE conversation_id = NEW.conversation_id AND user_id = NEW.user_id;
END""",
    """CREATE TRIGGER read_cursors_follow_new_stats AFTER INSERT ON conversation_stats
BEGIN
    UPDATE read_cursors SET last_activity_at = NEW.last_activity_at WHERE conversation_id = NEW.conversation_id;
END""",
    """CREATE TRIGGER read_cursors_follow_activity AFTER UPDATE OF last_activity_at ON conversation_stats
WHEN OLD.last_activity_at IS NOT NEW.last_activity_at
BEGIN
    UPDATE read_cursors SET last_activity_at = NEW.last_activity_at WHERE conversation_id = NEW.conversation_id;
END""",
]

TRIGGERS = ('read_cursors_take_activity', 'read_cursors_follow_new_stats', 'read_cursors_follow_activity')


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == 'postgresql'
    with op.batch_alter_table('read_cursors') as batch:
        batch.add_column(sa.Column('last_activity_at', sa.TIMESTAMP(timezone=True), server_default=sa.func.now(),
                                   nullable=False))
    op.execute('UPDATE read_cursors SET last_activity_at = (SELECT s.last_activity_at FROM conversation_stats s '
               'WHERE s.conversation_id = read_cursors.conversation_id) '
               'WHERE EXISTS (SELECT 1 FROM conversation_stats s WHERE s.conversation_id = read_cursors.conversation_id)')
    op.create_index('ix_read_cursors_user_activity', 'read_cursors', ['user_id', 'last_activity_at', 'conversation_id'],
                    unique=False)
    for statement in POSTGRESQL_TRIGGERS if postgresql else SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == 'postgresql'
    op.execute('DROP TRIGGER IF EXISTS read_cursors_take_activity' + (' ON read_cursors' if postgresql else ''))
    for name in TRIGGERS[1:]:
        op.execute(f'DROP TRIGGER IF EXISTS {name}' + (' ON conversation_stats' if postgresql else ''))
    if postgresql:
        op.execute('DROP FUNCTION IF EXISTS read_cursor_takes_activity()')
        op.execute('DROP FUNCTION IF EXISTS read_cursors_follow_activity()')
    op.drop_index('ix_read_cursors_user_activity', table_name='read_cursors')
    with op.batch_alter_table('read_cursors') as batch:
        batch.drop_column('last_activity_at')
