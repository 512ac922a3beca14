"""Concierge facts: one message per fact and recipient, whoever reports it.

The primary key (kind, subject_id, version, recipient_id) is the fact told to one person (concierge.facts). The
reminders and expiries told before this revision are recorded from their messages' origins, so a platform event
or scheduler run that reports one of them again after the upgrade tells no one twice; other facts are keyed by a
digest of their record, which only the service computes, and start being recorded now.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The version of each backfilled kind, from the stored event body, exactly as concierge.facts.fact_of writes it.
_BACKFILL = {
    'trip.check_in_reminder': ("e.payload->'data'->'trip'->>'id'", "e.payload->'data'->'trip'->>'checkIn'"),
    'trip.check_out_reminder': ("e.payload->'data'->'trip'->>'id'", "e.payload->'data'->'trip'->>'checkOut'"),
    'offer.expiring': (
        "e.payload->'data'->'offer'->>'id'",
        "to_char(CAST(e.payload->'data'->'offer'->>'expiresAt' AS timestamptz) AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
    ),
    'request_to_book.expired': ("e.payload->'data'->'requestToBook'->>'id'", "''"),
}


def upgrade() -> None:
    op.create_table('concierge_facts',
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('subject_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('recipient_id', sa.Text(), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('told_at', sa.TIMESTAMP(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['recipient_id'], ['users.id'], name=op.f('fk_concierge_facts_recipient_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('kind', 'subject_id', 'version', 'recipient_id', name=op.f('pk_concierge_facts'))
    )
    for kind, (subject_id, version) in _BACKFILL.items():
        op.execute(
            "INSERT INTO concierge_facts (kind, subject_id, version, recipient_id, event_id, told_at) "
            f"SELECT e.type, CAST({subject_id} AS integer), {version}, o.recipient_id, e.id, o.created_at "
            "FROM concierge_message_origins o "
            "JOIN platform_events e ON e.id = o.event_id "
            "JOIN users u ON u.id = o.recipient_id "
            f"WHERE o.kind = 'event' AND e.type = '{kind}' "
            "ORDER BY o.created_at "
            "ON CONFLICT DO NOTHING"
        )


def downgrade() -> None:
    op.drop_table('concierge_facts')
