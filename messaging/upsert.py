"""Dialect-aware INSERT … ON CONFLICT, for PostgreSQL and the embedded SQLite."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def _insert(session: Session, model: Any) -> Any:
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(model)


def insert_ignore(session: Session, model: Any, values: dict[str, Any]) -> bool:
    """Insert a row unless its key exists; True when this call inserted it."""
    # SQLAlchemy only keeps an INSERT's row count when asked to.
    stmt = _insert(session, model).values(**values).on_conflict_do_nothing().execution_options(preserve_rowcount=True)
    result = session.execute(stmt)
    return result.rowcount == 1  # type: ignore[attr-defined]


def upsert(session: Session, model: Any, values: dict[str, Any], key: list[str]) -> bool:
    """Insert or replace a row by ``key``; True when it was newly created."""
    base = _insert(session, model).values(**values)
    updates = {k: base.excluded[k] for k in values if k not in key}
    # xmax = 0 tells a fresh insert from an update on PostgreSQL; SQLite checks beforehand.
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy import literal_column

        stmt = base.on_conflict_do_update(index_elements=key, set_=updates).returning(
            literal_column("(xmax = 0)")
        )
        return bool(session.execute(stmt).scalar())
    pk = {k: values[k] for k in key}
    existed = session.get(model, pk if len(pk) > 1 else next(iter(pk.values()))) is not None
    session.execute(base.on_conflict_do_update(index_elements=key, set_=updates) if updates
                    else base.on_conflict_do_nothing())
    return not existed
