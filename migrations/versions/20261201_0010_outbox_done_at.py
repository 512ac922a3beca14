"""Outbox rows stay unfinished until their task reports done (outbox.done_at).

So the sweeper can send again what the broker lost after it was sent (Redis emptied, a worker killed).

The partial index the sweeper reads by now holds the rows not done (it held the rows not sent): those are the
rows it looks at, and a row leaves the index once its task is over rather than once it is sent. Rows sent before
this revision are taken as done (until now a sent row was the broker's; the stale-event sweeper covers an event
whose task was lost), so the sweeper does not send the whole history again.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('outbox', sa.Column('done_at', sa.TIMESTAMP(timezone=True), nullable=True))
    op.execute('UPDATE outbox SET done_at = dispatched_at WHERE dispatched_at IS NOT NULL')
    op.drop_index('ix_outbox_pending_created_at', table_name='outbox', postgresql_where=sa.text('dispatched_at IS NULL'))
    op.create_index('ix_outbox_unfinished_created_at', 'outbox', ['created_at'], unique=False, postgresql_where=sa.text('done_at IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_outbox_unfinished_created_at', table_name='outbox', postgresql_where=sa.text('done_at IS NULL'))
    op.create_index('ix_outbox_pending_created_at', 'outbox', ['created_at'], unique=False, postgresql_where=sa.text('dispatched_at IS NULL'))
    op.drop_column('outbox', 'done_at')
