"""Deleted users: a token of a user the platform deleted is refused instead of re-creating the user.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('deleted_users',
    sa.Column('user_id', sa.Text(), nullable=False),
    sa.Column('deleted_at', sa.TIMESTAMP(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_deleted_users'))
    )


def downgrade() -> None:
    op.drop_table('deleted_users')
