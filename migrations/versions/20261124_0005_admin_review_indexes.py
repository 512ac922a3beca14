"""Indexes for the admin review: trigram text search in messages, concierge threads taken over.

A trigram index for text search in messages (with the pg_trgm extension, which is trusted and ships with
PostgreSQL), and a partial index of the concierge threads a human has taken over.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
    op.create_index('ix_messages_message_trgm', 'messages', ['message'], unique=False,
                    postgresql_using='gin', postgresql_ops={'message': 'gin_trgm_ops'})
    op.create_index('ix_concierge_threads_needs_human', 'concierge_threads', ['conversation_id'], unique=False,
                    postgresql_where=sa.text('needs_human'))


def downgrade() -> None:
    op.drop_index('ix_concierge_threads_needs_human', table_name='concierge_threads')
    op.drop_index('ix_messages_message_trgm', table_name='messages')
    # The extension stays: other objects in the database may use it, and it holds no data.
