"""Listing facts, trip prices, user locales, and why and when the bot handed a conversation over.

The property's optional facts, the trip's price and the user's locale (SPEC §4) are new nullable columns of the
mirrored records: null is unknown, and existing rows stay unknown until the platform sends them again. Concierge
threads keep why and when the bot handed them to a person (SPEC §5.2, §7) and when it told the user that the team
was alerted; a thread handed over before this revision has no reason and no time, as an admin's takeover has
none. Each answer's origin records the records it was made from and its language, for follow-up questions.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REASONS = "handover_reason IN ('asked', 'not_understood', 'cancellation', 'change', 'refund', 'urgent', " \
    "'other')"
_UNALERTED = sa.text('needs_human AND team_alerted_at IS NULL')


def upgrade() -> None:
    op.add_column('users', sa.Column('locale', sa.String(length=35), nullable=True))
    op.add_column('properties', sa.Column('max_guests', sa.Integer(), nullable=True))
    op.add_column('properties', sa.Column('bedrooms', sa.Integer(), nullable=True))
    op.add_column('properties', sa.Column('bathrooms', postgresql.DOUBLE_PRECISION(), nullable=True))
    op.add_column('properties', sa.Column('amenities', postgresql.ARRAY(sa.Text()), nullable=True))
    op.add_column('properties', sa.Column('pets_allowed', sa.Boolean(), nullable=True))
    op.add_column('properties', sa.Column('smoking_allowed', sa.Boolean(), nullable=True))
    op.add_column('properties', sa.Column('house_rules', sa.Text(), nullable=True))
    op.add_column('properties', sa.Column('check_in_info', sa.Text(), nullable=True))
    op.add_column('properties', sa.Column('cancellation_policy', sa.Text(), nullable=True))
    op.add_column('properties', sa.Column('about', sa.Text(), nullable=True))
    op.add_column('trips', sa.Column('total_price_cents', sa.BigInteger(), nullable=True))
    op.add_column('trips', sa.Column('currency', sa.String(length=3), nullable=True))
    op.add_column('concierge_threads', sa.Column('handover_reason', sa.String(length=32), nullable=True))
    op.add_column('concierge_threads', sa.Column('handed_over_at', sa.TIMESTAMP(timezone=True), nullable=True))
    op.add_column('concierge_threads', sa.Column('team_alerted_at', sa.TIMESTAMP(timezone=True), nullable=True))
    op.create_check_constraint(op.f('ck_concierge_threads_handover_reason'), 'concierge_threads', _REASONS)
    op.create_index('ix_concierge_threads_unalerted_handed_over_at', 'concierge_threads', ['handed_over_at'],
                    unique=False, postgresql_where=_UNALERTED)
    op.add_column('concierge_message_origins',
                  sa.Column('records', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column('concierge_message_origins', sa.Column('language', sa.String(length=8), nullable=True))


def downgrade() -> None:
    op.drop_column('concierge_message_origins', 'language')
    op.drop_column('concierge_message_origins', 'records')
    op.drop_index('ix_concierge_threads_unalerted_handed_over_at', table_name='concierge_threads',
                  postgresql_where=_UNALERTED)
    op.drop_constraint(op.f('ck_concierge_threads_handover_reason'), 'concierge_threads', type_='check')
    op.drop_column('concierge_threads', 'team_alerted_at')
    op.drop_column('concierge_threads', 'handed_over_at')
    op.drop_column('concierge_threads', 'handover_reason')
    op.drop_column('trips', 'currency')
    op.drop_column('trips', 'total_price_cents')
    for column in ('about', 'cancellation_policy', 'check_in_info', 'house_rules', 'smoking_allowed', 'pets_allowed',
                   'amenities', 'bathrooms', 'bedrooms', 'max_guests'):
        op.drop_column('properties', column)
    op.drop_column('users', 'locale')
