"""Concierge: platform events with their state, the outbox, offer threads, one answer per question.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('outbox',
    sa.Column('id', sa.String(length=21), nullable=False),
    sa.Column('task_name', sa.String(length=128), nullable=False),
    sa.Column('args', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.TIMESTAMP(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('dispatched_at', sa.TIMESTAMP(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox'))
    )
    op.create_index('ix_outbox_pending_created_at', 'outbox', ['created_at'], unique=False, postgresql_where=sa.text('dispatched_at IS NULL'))
    op.create_table('platform_events',
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('occurred_at', sa.TIMESTAMP(timezone=True), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('payload_hash', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=16), server_default='platform', nullable=False),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('received_at', sa.TIMESTAMP(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.TIMESTAMP(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('processed_at', sa.TIMESTAMP(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'processing', 'processed', 'failed', 'skipped')", name=op.f('ck_platform_events_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_platform_events'))
    )
    op.create_index('ix_platform_events_received_at', 'platform_events', ['received_at'], unique=False)
    op.create_index('ix_platform_events_status_received_at', 'platform_events', ['status', 'received_at'], unique=False)
    op.create_index('ix_platform_events_type_received_at', 'platform_events', ['type', 'received_at'], unique=False)
    op.create_index('ix_platform_events_unfinished_updated_at', 'platform_events', ['updated_at'], unique=False, postgresql_where=sa.text("status IN ('pending', 'processing')"))
    op.create_table('offer_threads',
    sa.Column('offer_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('conversation_id', sa.String(length=21), nullable=False),
    sa.Column('traveler_id', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_offer_threads_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['traveler_id'], ['users.id'], name=op.f('fk_offer_threads_traveler_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('offer_id', name=op.f('pk_offer_threads')),
    sa.UniqueConstraint('conversation_id', name=op.f('uq_offer_threads_conversation_id'))
    )
    op.create_index('ix_concierge_message_origins_event_id', 'concierge_message_origins', ['event_id'], unique=False)
    op.create_unique_constraint('uq_concierge_message_origins_question_message_id', 'concierge_message_origins',
                                ['question_message_id'])


def downgrade() -> None:
    op.drop_constraint('uq_concierge_message_origins_question_message_id', 'concierge_message_origins', type_='unique')
    op.drop_index('ix_concierge_message_origins_event_id', table_name='concierge_message_origins')
    op.drop_table('offer_threads')
    op.drop_index('ix_platform_events_unfinished_updated_at', table_name='platform_events')
    op.drop_index('ix_platform_events_type_received_at', table_name='platform_events')
    op.drop_index('ix_platform_events_status_received_at', table_name='platform_events')
    op.drop_index('ix_platform_events_received_at', table_name='platform_events')
    op.drop_table('platform_events')
    op.drop_index('ix_outbox_pending_created_at', table_name='outbox', postgresql_where=sa.text('dispatched_at IS NULL'))
    op.drop_table('outbox')
