"""Alembic environment: migrates DATABASE_URL (or the URL the caller set) to the models' metadata."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context

import concierge.models  # noqa: F401  - registers the concierge tables on Base.metadata
import messaging.store.models  # noqa: F401
from messaging.config import load_settings
from messaging.store.db import Base, make_engine

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or load_settings()["DATABASE_URL"]
    if not url:
        raise RuntimeError("No database to migrate: set DATABASE_URL to a PostgreSQL URL")
    return str(url)


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
