"""Seed schema (SPEC §1), the platform's mirrored records, and the chat's bookkeeping tables.

The nanoid ids also get a database default: a ``nanoid()`` SQL function with the same alphabet and size as
``messaging.store.ids.new_id``, drawing its randomness from core PostgreSQL's ``gen_random_uuid()`` (no extension).

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


NANOID_TABLES = (
    "conversations",
    "messages",
    "property_conversations",
    "property_messages",
    "message_edits",
    "property_message_edits",
)

NANOID_FUNCTION = """
CREATE OR REPLACE FUNCTION nanoid(size int DEFAULT 21)
RETURNS text LANGUAGE plpgsql VOLATILE PARALLEL SAFE AS $$
DECLARE
    alphabet constant text := '_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
    bytes bytea;
    id text := '';
BEGIN
    -- 64 symbols: the low six bits of a random byte pick one, uniformly. A version 4 UUID is 16 random bytes
    -- but for the version in byte 6's high bits (its low six bits would not be uniform: skipped) and the
    -- variant in byte 8's two highest (its low six bits are).
    WHILE length(id) < size LOOP
        bytes := uuid_send(gen_random_uuid());
        FOR i IN 0..15 LOOP
            CONTINUE WHEN i = 6 OR length(id) >= size;
            id := id || substr(alphabet, (get_byte(bytes, i) & 63) + 1, 1);
        END LOOP;
    END LOOP;
    RETURN id;
END
$$
"""


def upgrade() -> None:
    op.create_table('conversations',
    sa.Column('id', sa.String(length=21), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.TIMESTAMP(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('offer_id', sa.String(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conversations'))
    )
    op.create_table('idempotency_keys',
    sa.Column('owner_id', sa.Text(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('request_fingerprint', sa.String(length=64), nullable=False),
    sa.Column('response_status', sa.Integer(), nullable=True),
    sa.Column('response_body', sa.Text(), nullable=True),
    sa.Column('created_at', sa.TIMESTAMP(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('owner_id', 'key', name=op.f('pk_idempotency_keys'))
    )
    op.create_index(op.f('ix_idempotency_keys_created_at'), 'idempotency_keys', ['created_at'], unique=False)
    op.create_table('users',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('email', sa.Text(), nullable=True),
    sa.Column('phone_number', sa.Text(), nullable=True),
    sa.Column('role', sa.String(length=16), server_default='guest', nullable=False),
    sa.Column('created_at', sa.TIMESTAMP(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.CheckConstraint("role IN ('guest', 'host', 'admin')", name=op.f('ck_users_role')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users'))
    )
    op.create_table('concierge_threads',
    sa.Column('conversation_id', sa.String(length=21), nullable=False),
    sa.Column('user_id', sa.Text(), nullable=False),
    sa.Column('needs_human', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('misunderstandings', sa.Integer(), server_default='0', nullable=False),
    sa.Column('updated_at', sa.TIMESTAMP(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_concierge_threads_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_concierge_threads_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('conversation_id', name=op.f('pk_concierge_threads')),
    sa.UniqueConstraint('user_id', name=op.f('uq_concierge_threads_user_id'))
    )
    op.create_table('conversation_participants',
    sa.Column('conversation_id', sa.String(length=21), nullable=False),
    sa.Column('user_id', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_conversation_participants_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_conversation_participants_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('conversation_id', 'user_id', name=op.f('pk_conversation_participants'))
    )
    op.create_index(op.f('ix_conversation_participants_user_id'), 'conversation_participants', ['user_id'], unique=False)
    op.create_table('conversation_stats',
    sa.Column('conversation_id', sa.String(length=21), nullable=False),
    sa.Column('message_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('last_message_id', sa.String(length=21), nullable=True),
    sa.Column('last_activity_at', sa.TIMESTAMP(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_conversation_stats_conversation_id_conversations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('conversation_id', name=op.f('pk_conversation_stats'))
    )
    op.create_table('messages',
    sa.Column('id', sa.String(length=21), nullable=False),
    sa.Column('conversation_id', sa.String(length=21), nullable=False),
    sa.Column('user_id', sa.Text(), nullable=True),
    sa.Column('message', sa.String(length=1500), nullable=False),
    sa.Column('read', sa.Boolean(), server_default=sa.false(), nullable=True),
    sa.Column('is_edit', sa.Boolean(), server_default=sa.false(), nullable=True),
    sa.Column('created_at', sa.TIMESTAMP(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_messages_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_messages_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messages'))
    )
    op.create_index('ix_messages_conversation_id_created_at_id', 'messages', ['conversation_id', 'created_at', 'id'], unique=False)
    op.create_index('ix_messages_unread_conversation_id_created_at_id', 'messages', ['conversation_id', 'created_at', 'id'], unique=False, postgresql_where=sa.text('NOT read'))
    op.create_index(op.f('ix_messages_user_id'), 'messages', ['user_id'], unique=False)
    op.create_table('properties',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('host_id', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('city', sa.Text(), nullable=True),
    sa.Column('address', sa.Text(), nullable=True),
    sa.Column('timezone', sa.String(length=64), server_default='UTC', nullable=False),
    sa.Column('check_in_time', sa.Time(), server_default=sa.text("'15:00:00'"), nullable=False),
    sa.Column('check_out_time', sa.Time(), server_default=sa.text("'10:00:00'"), nullable=False),
    sa.ForeignKeyConstraint(['host_id'], ['users.id'], name=op.f('fk_properties_host_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_properties'))
    )
    op.create_index(op.f('ix_properties_host_id'), 'properties', ['host_id'], unique=False)
    op.create_table('message_edits',
    sa.Column('id', sa.String(length=21), nullable=False),
    sa.Column('message_id', sa.String(length=21), nullable=False),
    sa.Column('previous_message', sa.String(length=1500), nullable=False),
    sa.Column('edited_at', sa.TIMESTAMP(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_message_edits_message_id_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_edits'))
    )
    op.create_index(op.f('ix_message_edits_message_id'), 'message_edits', ['message_id'], unique=False)
    op.create_table('offers',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('property_id', sa.Integer(), nullable=False),
    sa.Column('traveler_id', sa.Text(), nullable=False),
    sa.Column('check_in', sa.Date(), nullable=False),
    sa.Column('check_out', sa.Date(), nullable=False),
    sa.Column('total_price_cents', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('expires_at', sa.TIMESTAMP(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('Pending', 'Accepted', 'Withdrawn', 'Denied', 'Expired')", name=op.f('ck_offers_status')),
    sa.ForeignKeyConstraint(['property_id'], ['properties.id'], name=op.f('fk_offers_property_id_properties'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['traveler_id'], ['users.id'], name=op.f('fk_offers_traveler_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_offers'))
    )
    op.create_index(op.f('ix_offers_property_id'), 'offers', ['property_id'], unique=False)
    op.create_index(op.f('ix_offers_traveler_id'), 'offers', ['traveler_id'], unique=False)
    op.create_table('read_cursors',
    sa.Column('conversation_id', sa.String(length=21), nullable=False),
    sa.Column('user_id', sa.Text(), nullable=False),
    sa.Column('read_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('last_read_message_id', sa.String(length=21), nullable=True),
    sa.Column('last_read_message_created_at', sa.TIMESTAMP(timezone=True), nullable=True),
    sa.Column('last_read_at', sa.TIMESTAMP(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['conversation_id', 'user_id'], ['conversation_participants.conversation_id', 'conversation_participants.user_id'], name='fk_read_cursors_participant', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('conversation_id', 'user_id', name=op.f('pk_read_cursors'))
    )
    op.create_table('requests_to_book',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('property_id', sa.Integer(), nullable=False),
    sa.Column('traveler_id', sa.Text(), nullable=False),
    sa.Column('check_in', sa.Date(), nullable=False),
    sa.Column('check_out', sa.Date(), nullable=False),
    sa.Column('num_guests', sa.Integer(), nullable=False),
    sa.Column('total_price_cents', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.TIMESTAMP(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('resolved_at', sa.TIMESTAMP(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('Pending', 'Accepted', 'Withdrawn', 'Denied', 'Expired')", name=op.f('ck_requests_to_book_status')),
    sa.ForeignKeyConstraint(['property_id'], ['properties.id'], name=op.f('fk_requests_to_book_property_id_properties'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['traveler_id'], ['users.id'], name=op.f('fk_requests_to_book_traveler_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_requests_to_book'))
    )
    op.create_index(op.f('ix_requests_to_book_property_id'), 'requests_to_book', ['property_id'], unique=False)
    op.create_index(op.f('ix_requests_to_book_traveler_id'), 'requests_to_book', ['traveler_id'], unique=False)
    op.create_table('trips',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('property_id', sa.Integer(), nullable=False),
    sa.Column('traveler_id', sa.Text(), nullable=False),
    sa.Column('offer_id', sa.Integer(), nullable=True),
    sa.Column('request_to_book_id', sa.Integer(), nullable=True),
    sa.Column('check_in', sa.Date(), nullable=False),
    sa.Column('check_out', sa.Date(), nullable=False),
    sa.Column('num_guests', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.CheckConstraint("status IN ('Booked', 'Needs attention', 'Cancelled')", name=op.f('ck_trips_status')),
    sa.ForeignKeyConstraint(['offer_id'], ['offers.id'], name=op.f('fk_trips_offer_id_offers'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['property_id'], ['properties.id'], name=op.f('fk_trips_property_id_properties'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['request_to_book_id'], ['requests_to_book.id'], name=op.f('fk_trips_request_to_book_id_requests_to_book'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['traveler_id'], ['users.id'], name=op.f('fk_trips_traveler_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trips'))
    )
    op.create_index(op.f('ix_trips_property_id'), 'trips', ['property_id'], unique=False)
    op.create_index(op.f('ix_trips_traveler_id'), 'trips', ['traveler_id'], unique=False)
    op.create_table('property_conversations',
    sa.Column('id', sa.String(length=21), nullable=False),
    sa.Column('traveler_id', sa.Text(), nullable=False),
    sa.Column('property_id', sa.Integer(), nullable=False),
    sa.Column('offer_id', sa.Integer(), nullable=True),
    sa.Column('request_to_book_id', sa.Integer(), nullable=True),
    sa.Column('trip_id', sa.Integer(), nullable=True),
    sa.Column('planned_check_in', sa.Date(), nullable=True),
    sa.Column('planned_check_out', sa.Date(), nullable=True),
    sa.Column('planned_num_guests', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.TIMESTAMP(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['offer_id'], ['offers.id'], name=op.f('fk_property_conversations_offer_id_offers'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['property_id'], ['properties.id'], name=op.f('fk_property_conversations_property_id_properties'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['request_to_book_id'], ['requests_to_book.id'], name=op.f('fk_property_conversations_request_to_book_id_requests_to_book'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['traveler_id'], ['users.id'], name=op.f('fk_property_conversations_traveler_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['trip_id'], ['trips.id'], name=op.f('fk_property_conversations_trip_id_trips'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_property_conversations'))
    )
    op.create_index(op.f('ix_property_conversations_property_id'), 'property_conversations', ['property_id'], unique=False)
    op.create_index('uq_property_conversations_traveler_id_property_id', 'property_conversations', ['traveler_id', 'property_id'], unique=True)
    op.create_table('property_messages',
    sa.Column('id', sa.String(length=21), nullable=False),
    sa.Column('conversation_id', sa.String(length=21), nullable=False),
    sa.Column('author_id', sa.Text(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('read_at', sa.TIMESTAMP(timezone=True), nullable=True),
    sa.Column('edited_at', sa.TIMESTAMP(timezone=True), nullable=True),
    sa.Column('created_at', sa.TIMESTAMP(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_property_messages_author_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['conversation_id'], ['property_conversations.id'], name=op.f('fk_property_messages_conversation_id_property_conversations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_property_messages'))
    )
    op.create_index(op.f('ix_property_messages_author_id'), 'property_messages', ['author_id'], unique=False)
    op.create_index('ix_property_messages_conversation_id_created_at_id', 'property_messages', ['conversation_id', 'created_at', 'id'], unique=False)
    op.create_table('property_message_edits',
    sa.Column('id', sa.String(length=21), nullable=False),
    sa.Column('property_message_id', sa.String(length=21), nullable=False),
    sa.Column('previous_message', sa.Text(), nullable=False),
    sa.Column('edited_at', sa.TIMESTAMP(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['property_message_id'], ['property_messages.id'], name=op.f('fk_property_message_edits_property_message_id_property_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_property_message_edits'))
    )
    op.create_index(op.f('ix_property_message_edits_property_message_id'), 'property_message_edits', ['property_message_id'], unique=False)
    op.create_table('direct_conversations',
    sa.Column('user_low', sa.Text(), nullable=False),
    sa.Column('user_high', sa.Text(), nullable=False),
    sa.Column('conversation_id', sa.String(length=21), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_direct_conversations_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_high'], ['users.id'], name=op.f('fk_direct_conversations_user_high_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_low'], ['users.id'], name=op.f('fk_direct_conversations_user_low_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_low', 'user_high', name=op.f('pk_direct_conversations')),
    sa.UniqueConstraint('conversation_id', name=op.f('uq_direct_conversations_conversation_id'))
    )
    op.create_index(op.f('ix_direct_conversations_user_high'), 'direct_conversations', ['user_high'], unique=False)
    op.create_table('concierge_message_origins',
    sa.Column('message_id', sa.String(length=21), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=True),
    sa.Column('recipient_id', sa.Text(), nullable=True),
    sa.Column('question_message_id', sa.String(length=21), nullable=True),
    sa.Column('intent', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.TIMESTAMP(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_concierge_message_origins_message_id_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('message_id', name=op.f('pk_concierge_message_origins')),
    sa.UniqueConstraint('event_id', 'recipient_id', name='uq_concierge_message_origins_event_recipient')
    )
    op.execute(NANOID_FUNCTION)
    for table in NANOID_TABLES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN id SET DEFAULT nanoid()")


def downgrade() -> None:
    op.drop_table('concierge_message_origins')
    op.drop_index(op.f('ix_direct_conversations_user_high'), table_name='direct_conversations')
    op.drop_table('direct_conversations')
    op.drop_index(op.f('ix_property_message_edits_property_message_id'), table_name='property_message_edits')
    op.drop_table('property_message_edits')
    op.drop_index('ix_property_messages_conversation_id_created_at_id', table_name='property_messages')
    op.drop_index(op.f('ix_property_messages_author_id'), table_name='property_messages')
    op.drop_table('property_messages')
    op.drop_index('uq_property_conversations_traveler_id_property_id', table_name='property_conversations')
    op.drop_index(op.f('ix_property_conversations_property_id'), table_name='property_conversations')
    op.drop_table('property_conversations')
    op.drop_index(op.f('ix_trips_traveler_id'), table_name='trips')
    op.drop_index(op.f('ix_trips_property_id'), table_name='trips')
    op.drop_table('trips')
    op.drop_index(op.f('ix_requests_to_book_traveler_id'), table_name='requests_to_book')
    op.drop_index(op.f('ix_requests_to_book_property_id'), table_name='requests_to_book')
    op.drop_table('requests_to_book')
    op.drop_table('read_cursors')
    op.drop_index(op.f('ix_offers_traveler_id'), table_name='offers')
    op.drop_index(op.f('ix_offers_property_id'), table_name='offers')
    op.drop_table('offers')
    op.drop_index(op.f('ix_message_edits_message_id'), table_name='message_edits')
    op.drop_table('message_edits')
    op.drop_index(op.f('ix_properties_host_id'), table_name='properties')
    op.drop_table('properties')
    op.drop_index(op.f('ix_messages_user_id'), table_name='messages')
    op.drop_index('ix_messages_unread_conversation_id_created_at_id', table_name='messages', postgresql_where=sa.text('NOT read'))
    op.drop_index('ix_messages_conversation_id_created_at_id', table_name='messages')
    op.drop_table('messages')
    op.drop_table('conversation_stats')
    op.drop_index(op.f('ix_conversation_participants_user_id'), table_name='conversation_participants')
    op.drop_table('conversation_participants')
    op.drop_table('concierge_threads')
    op.drop_table('users')
    op.drop_index(op.f('ix_idempotency_keys_created_at'), table_name='idempotency_keys')
    op.drop_table('idempotency_keys')
    op.drop_table('conversations')
    op.execute("DROP FUNCTION IF EXISTS nanoid(int)")
