"""Migrations: one head, up/down/up, no drift from the models, and the seed schema of SPEC §1 exactly as the
specification states it, read back from PostgreSQL's catalog."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

import concierge.models  # noqa: F401  - registers the concierge tables on Base.metadata
import messaging.store.models  # noqa: F401
from messaging.cli import alembic_config
from messaging.store.db import Base, make_engine
from tests.conftest import PG_TEST_DB, recreate_pg_database

SEED_TABLES = (
    "conversations",
    "messages",
    "conversation_participants",
    "property_conversations",
    "property_messages",
)


def _config(url: str) -> Any:
    cfg = alembic_config(url)
    # env.py would otherwise re-run logging.config.fileConfig and reset the root logger mid-suite.
    cfg.attributes["configure_logger"] = False
    return cfg


def _user_tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def _drift(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


@pytest.fixture(scope="module")
def migrated_pg() -> Iterator[Engine]:
    """A fresh PostgreSQL database taken up, down and up again; the engine of its final state."""
    url = recreate_pg_database(f"{PG_TEST_DB}_migrations")
    cfg = _config(url)
    engine = make_engine(url, pool_size=1)
    try:
        command.upgrade(cfg, "head")
        assert _user_tables(engine) >= set(Base.metadata.tables)
        command.downgrade(cfg, "base")
        assert _user_tables(engine) == set(), "downgrade base left tables behind"
        with engine.connect() as conn:
            leftover = conn.execute(text("SELECT count(*) FROM pg_proc WHERE proname = 'nanoid'")).scalar()
        assert leftover == 0, "downgrade base left the nanoid() function behind"
        command.upgrade(cfg, "head")
        yield engine
    finally:
        engine.dispose()


def test_the_script_directory_has_exactly_one_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1, f"several heads, merge them: {heads}"


def test_upgrade_downgrade_upgrade_leaves_no_drift_from_the_models(migrated_pg: Engine) -> None:
    assert _user_tables(migrated_pg) == set(Base.metadata.tables)
    with migrated_pg.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    assert version == ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert _drift(migrated_pg) == []


# --- SPEC §1, written out: this is the specification, so that any drift fails -----------------

# (column, data type, character length, nullable, default)
EXPECTED_COLUMNS: dict[str, list[tuple[str, str, int | None, bool, str | None]]] = {
    "conversations": [
        ("id", "character varying", 21, False, "nanoid()"),
        ("name", "character varying", 255, True, None),
        ("created_at", "timestamp with time zone", None, False, "now()"),
        ("offer_id", "character varying", None, True, None),
    ],
    "messages": [
        ("id", "character varying", 21, False, "nanoid()"),
        ("conversation_id", "character varying", 21, False, None),
        ("user_id", "text", None, True, None),
        ("message", "character varying", 1500, False, None),
        ("read", "boolean", None, True, "false"),
        ("is_edit", "boolean", None, True, "false"),
        ("created_at", "timestamp with time zone", None, False, "now()"),
        # Not the seed's: what it lacks may go into "new nullable columns" (SPEC §1). Staff replies, decision 0016.
        ("from_staff", "boolean", None, True, None),
    ],
    "conversation_participants": [
        ("conversation_id", "character varying", 21, False, None),
        ("user_id", "text", None, False, None),
    ],
    "property_conversations": [
        ("id", "character varying", 21, False, "nanoid()"),
        ("traveler_id", "text", None, False, None),
        ("property_id", "integer", None, False, None),
        ("offer_id", "integer", None, True, None),
        ("request_to_book_id", "integer", None, True, None),
        ("trip_id", "integer", None, True, None),
        ("planned_check_in", "date", None, True, None),
        ("planned_check_out", "date", None, True, None),
        ("planned_num_guests", "integer", None, True, None),
        ("created_at", "timestamp with time zone", None, False, "now()"),
    ],
    "property_messages": [
        ("id", "character varying", 21, False, "nanoid()"),
        ("conversation_id", "character varying", 21, False, None),
        ("author_id", "text", None, False, None),
        ("message", "text", None, False, None),
        ("read_at", "timestamp with time zone", None, True, None),
        ("edited_at", "timestamp with time zone", None, True, None),
        ("created_at", "timestamp with time zone", None, False, "now()"),
    ],
}

# (table, columns, referenced table, referenced columns, on delete)
EXPECTED_FOREIGN_KEYS = {
    ("messages", ("conversation_id",), "conversations", ("id",), "CASCADE"),
    ("messages", ("user_id",), "users", ("id",), "SET NULL"),
    ("conversation_participants", ("conversation_id",), "conversations", ("id",), "CASCADE"),
    ("conversation_participants", ("user_id",), "users", ("id",), "CASCADE"),
    ("property_conversations", ("traveler_id",), "users", ("id",), "CASCADE"),
    ("property_conversations", ("property_id",), "properties", ("id",), "CASCADE"),
    ("property_conversations", ("offer_id",), "offers", ("id",), "SET NULL"),
    ("property_conversations", ("request_to_book_id",), "requests_to_book", ("id",), "SET NULL"),
    ("property_conversations", ("trip_id",), "trips", ("id",), "SET NULL"),
    ("property_messages", ("conversation_id",), "property_conversations", ("id",), "CASCADE"),
    ("property_messages", ("author_id",), "users", ("id",), "CASCADE"),
    # conversations.offer_id links to an offer without a foreign key in the seed: none expected.
}

EXPECTED_PRIMARY_KEYS = {
    "conversations": ("id",),
    "messages": ("id",),
    "conversation_participants": ("conversation_id", "user_id"),
    "property_conversations": ("id",),
    "property_messages": ("id",),
}

# (table, columns in order, unique): each must exist as a plain (non-partial) index.
EXPECTED_INDEXES = {
    ("messages", ("conversation_id", "created_at", "id"), False),
    ("messages", ("user_id",), False),
    ("property_messages", ("conversation_id", "created_at", "id"), False),
    ("property_messages", ("author_id",), False),
    ("conversation_participants", ("user_id",), False),
    ("property_conversations", ("property_id",), False),
    ("property_conversations", ("traveler_id", "property_id"), True),
}

ON_DELETE = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


def test_seed_columns_match_spec_section_1(migrated_pg: Engine) -> None:
    with migrated_pg.connect() as conn:
        rows = conn.execute(
            text(
                """
                SELECT table_name, column_name, data_type, character_maximum_length, is_nullable, column_default
                FROM information_schema.columns
                WHERE table_schema = 'public' AND table_name = ANY(:tables)
                ORDER BY table_name, ordinal_position
                """
            ),
            {"tables": list(SEED_TABLES)},
        ).all()
    actual: dict[str, list[tuple[str, str, int | None, bool, str | None]]] = {}
    for table, column, data_type, length, nullable, default in rows:
        actual.setdefault(table, []).append((column, data_type, length, nullable == "YES", default))
    for table in SEED_TABLES:
        assert actual.get(table) == EXPECTED_COLUMNS[table], table


def test_seed_foreign_keys_and_their_delete_rules_match_spec(migrated_pg: Engine) -> None:
    with migrated_pg.connect() as conn:
        rows = conn.execute(
            text(
                """
                SELECT c.conrelid::regclass::text, c.confrelid::regclass::text, c.confdeltype::text,
                       ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),
                       ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
                             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i)
                FROM pg_constraint c
                WHERE c.contype = 'f' AND c.conrelid::regclass::text = ANY(:tables)
                """
            ),
            {"tables": list(SEED_TABLES)},
        ).all()
    actual = {
        (table, tuple(cols), ref_table, tuple(ref_cols), ON_DELETE[rule])
        for table, ref_table, rule, cols, ref_cols in rows
    }
    assert actual == EXPECTED_FOREIGN_KEYS


def test_seed_primary_keys_match_spec(migrated_pg: Engine) -> None:
    with migrated_pg.connect() as conn:
        rows = conn.execute(
            text(
                """
                SELECT c.conrelid::regclass::text,
                       ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i)
                FROM pg_constraint c
                WHERE c.contype = 'p' AND c.conrelid::regclass::text = ANY(:tables)
                """
            ),
            {"tables": list(SEED_TABLES)},
        ).all()
    assert {table: tuple(cols) for table, cols in rows} == EXPECTED_PRIMARY_KEYS


def test_seed_indexes_match_spec(migrated_pg: Engine) -> None:
    with migrated_pg.connect() as conn:
        rows = conn.execute(
            text(
                """
                SELECT t.relname::text, ix.indisunique, ix.indisprimary, ix.indpred IS NOT NULL,
                       ARRAY(SELECT a.attname::text FROM unnest(ix.indkey) WITH ORDINALITY k(n, i)
                             JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.n ORDER BY k.i)
                FROM pg_index ix
                JOIN pg_class t ON t.oid = ix.indrelid
                JOIN pg_namespace ns ON ns.oid = t.relnamespace
                WHERE ns.nspname = 'public' AND t.relname = ANY(:tables)
                """
            ),
            {"tables": list(SEED_TABLES)},
        ).all()
    plain = {
        (table, tuple(cols), unique) for table, unique, primary, partial, cols in rows if not primary and not partial
    }
    missing = EXPECTED_INDEXES - plain
    assert not missing, f"indexes of SPEC §1 missing: {sorted(missing)}"
    # The one-thread-per-(traveler, property) rule is the only uniqueness beyond the primary keys.
    extra_unique = {(table, cols) for table, cols, unique in plain if unique} - {
        ("property_conversations", ("traveler_id", "property_id"))
    }
    assert not extra_unique, f"unexpected unique indexes on seed tables: {sorted(extra_unique)}"
