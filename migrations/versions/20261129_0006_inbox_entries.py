"""Inbox order: inbox_entries, one row per participation, kept by triggers.

Each entry holds its conversation's last activity; triggers make it with the participation, update it when
conversation_stats.last_activity_at moves, and delete it with the participation through its foreign key. Indexed
by (user, last activity), so a page of anyone's inbox is a range of one index instead of a sort of all their
conversations.

Only these triggers lock the table's rows, and the update always after the conversation's stats row; keeping the
order on read_cursors instead deadlocked a send (which must then lock the other participants' cursors) against
those participants marking the conversation read (which lock their cursor, then the new message's row).

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

CREATE_TRIGGERS = [
    # A new participation starts with its conversation's activity (the stats row exists first when a
    # conversation is made; if not, the stats trigger below sets it once the stats row comes).
    """CREATE FUNCTION inbox_entry_for_participant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO inbox_entries (conversation_id, user_id, last_activity_at)
    VALUES (NEW.conversation_id, NEW.user_id,
            coalesce((SELECT last_activity_at FROM conversation_stats WHERE conversation_id = NEW.conversation_id),
                     now()))
    ON CONFLICT (conversation_id, user_id) DO NOTHING;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER inbox_entry_on_join AFTER INSERT ON conversation_participants
FOR EACH ROW EXECUTE FUNCTION inbox_entry_for_participant()""",
    """CREATE FUNCTION inbox_entries_follow_activity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE inbox_entries SET last_activity_at = NEW.last_activity_at
     WHERE conversation_id = NEW.conversation_id AND last_activity_at IS DISTINCT FROM NEW.last_activity_at;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER inbox_entries_follow_new_stats AFTER INSERT ON conversation_stats
FOR EACH ROW EXECUTE FUNCTION inbox_entries_follow_activity()""",
    """CREATE TRIGGER inbox_entries_follow_activity AFTER UPDATE OF last_activity_at ON conversation_stats
FOR EACH ROW WHEN (OLD.last_activity_at IS DISTINCT FROM NEW.last_activity_at)
EXECUTE FUNCTION inbox_entries_follow_activity()""",
]

TRIGGERS = {'inbox_entry_on_join': 'conversation_participants',
            'inbox_entries_follow_new_stats': 'conversation_stats',
            'inbox_entries_follow_activity': 'conversation_stats'}


def upgrade() -> None:
    op.create_table('inbox_entries',
    sa.Column('conversation_id', sa.String(length=21), nullable=False),
    sa.Column('user_id', sa.Text(), nullable=False),
    sa.Column('last_activity_at', sa.TIMESTAMP(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id', 'user_id'],
                            ['conversation_participants.conversation_id', 'conversation_participants.user_id'],
                            name='fk_inbox_entries_participant', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('conversation_id', 'user_id', name=op.f('pk_inbox_entries'))
    )
    op.execute('INSERT INTO inbox_entries (conversation_id, user_id, last_activity_at) '
               'SELECT p.conversation_id, p.user_id, s.last_activity_at FROM conversation_participants p '
               'JOIN conversation_stats s ON s.conversation_id = p.conversation_id')
    op.create_index('ix_inbox_entries_user_activity', 'inbox_entries', ['user_id', 'last_activity_at',
                                                                         'conversation_id'], unique=False)
    for statement in CREATE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    for name, table in TRIGGERS.items():
        op.execute(f'DROP TRIGGER IF EXISTS {name} ON {table}')
    op.execute('DROP FUNCTION IF EXISTS inbox_entry_for_participant()')
    op.execute('DROP FUNCTION IF EXISTS inbox_entries_follow_activity()')
    op.drop_index('ix_inbox_entries_user_activity', table_name='inbox_entries')
    op.drop_table('inbox_entries')
