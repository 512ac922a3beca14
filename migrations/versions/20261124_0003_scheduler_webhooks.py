"""Indexes the scheduler and the unread-message webhook read by, and the webhook deliveries.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('webhook_deliveries',
    sa.Column('id', sa.String(length=21), nullable=False),
    sa.Column('user_id', sa.Text(), nullable=False),
    sa.Column('hour', sa.Integer(), nullable=False),
    sa.Column('unread_count', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.TIMESTAMP(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('delivered_at', sa.TIMESTAMP(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_webhook_deliveries_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
    sa.UniqueConstraint('user_id', 'hour', name='uq_webhook_deliveries_user_id_hour')
    )
    op.create_index('ix_webhook_deliveries_user_id_created_at', 'webhook_deliveries', ['user_id', 'created_at'], unique=False)
    op.create_index(op.f('ix_conversation_stats_last_activity_at'), 'conversation_stats', ['last_activity_at'], unique=False)
    op.create_index('ix_offers_status_expires_at', 'offers', ['status', 'expires_at'], unique=False)
    op.create_index('ix_property_messages_created_at', 'property_messages', ['created_at'], unique=False)
    op.create_index('ix_requests_to_book_status_created_at', 'requests_to_book', ['status', 'created_at'], unique=False)
    op.create_index(op.f('ix_trips_check_in'), 'trips', ['check_in'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_trips_check_in'), table_name='trips')
    op.drop_index('ix_requests_to_book_status_created_at', table_name='requests_to_book')
    op.drop_index('ix_property_messages_created_at', table_name='property_messages')
    op.drop_index('ix_offers_status_expires_at', table_name='offers')
    op.drop_index(op.f('ix_conversation_stats_last_activity_at'), table_name='conversation_stats')
    op.drop_index('ix_webhook_deliveries_user_id_created_at', table_name='webhook_deliveries')
    op.drop_table('webhook_deliveries')
