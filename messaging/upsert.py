"""Dialect-aware INSERT … ON CONFLICT, for PostgreSQL and the embedded SQLite.

SQLAlchemy cannot cache the dialects' ``insert(...).on_conflict_…()`` constructs (they have no cache key), so
using them directly compiles a new statement on every call — several times per request on the intake and
posting paths. Each statement is therefore compiled once per (dialect, table, columns, key) into a ``text()``
with typed bind parameters, which SQLAlchemy does cache; column defaults computed in Python (ids, flags) are
filled in here, as the INSERT construct would have done.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from sqlalchemy import Table, TextClause, bindparam, literal_column, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import psycopg2 as pg_named
from sqlalchemy.dialects.sqlite import pysqlite as sqlite_named
from sqlalchemy.orm import Session


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


@cache
def _text(dialect: str, construct: Any, table: Table, columns: tuple[str, ...]) -> TextClause:
    # Compiled with a named paramstyle and no bind casts, so that text() sees plain ":column" parameters.
    compiler_dialect = pg_named.dialect(paramstyle="named") if dialect == "postgresql" else sqlite_named.dialect(
        paramstyle="named")
    sql = str(construct.compile(dialect=compiler_dialect, column_keys=list(columns)))
    sql = re.sub(r"(?<!:):(\w+)::(\w+)", r"CAST(:\1 AS \2)", sql)  # ":payload::JSONB" is not a text() bind
    return text(sql).bindparams(*[bindparam(c, type_=table.c[c].type) for c in columns])


def _insert(dialect: str, table: Table) -> Any:
    return (postgresql if dialect == "postgresql" else sqlite).insert(table)


@cache
def _insert_ignore_statement(dialect: str, table: Table, columns: tuple[str, ...]) -> TextClause:
    statement = _text(dialect, _insert(dialect, table).on_conflict_do_nothing(), table, columns)
    return statement.execution_options(preserve_rowcount=True)


@cache
def _upsert_statement(
    dialect: str, table: Table, columns: tuple[str, ...], given: tuple[str, ...], key: tuple[str, ...]
) -> TextClause:
    base = _insert(dialect, table)
    updates = {c: base.excluded[c] for c in given if c not in key}  # a default never overwrites a stored value
    if not updates:
        return _text(dialect, base.on_conflict_do_nothing(), table, columns)
    construct = base.on_conflict_do_update(index_elements=list(key), set_=updates)
    if dialect == "postgresql":
        construct = construct.returning(literal_column("(xmax = 0)"))  # xmax = 0: a fresh insert
    return _text(dialect, construct, table, columns)


def _with_defaults(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """The row with the Python-side column defaults an INSERT construct would have added."""
    row = dict(values)
    for column in table.columns:
        default = column.default
        if column.key in row or default is None:
            continue
        if getattr(default, "is_callable", False):
            row[column.key] = default.arg(None)  # type: ignore[attr-defined]
        elif getattr(default, "is_scalar", False):
            row[column.key] = default.arg  # type: ignore[attr-defined]
    return row


def insert_ignore(session: Session, model: Any, values: dict[str, Any]) -> bool:
    """Insert a row unless its key exists; True when this call inserted it."""
    table = model.__table__
    row = _with_defaults(table, values)
    result = session.execute(_insert_ignore_statement(_dialect(session), table, tuple(sorted(row))), row)
    return result.rowcount == 1  # type: ignore[attr-defined]


def upsert(session: Session, model: Any, values: dict[str, Any], key: list[str]) -> bool:
    """Insert or replace a row by ``key``; True when it was newly created."""
    dialect, table = _dialect(session), model.__table__
    row = _with_defaults(table, values)
    stmt = _upsert_statement(dialect, table, tuple(sorted(row)), tuple(sorted(values)), tuple(key))
    if dialect == "postgresql" and any(c not in key for c in values):
        return bool(session.execute(stmt, row).scalar())
    # SQLite checks beforehand.
    pk = {k: values[k] for k in key}
    existed = session.get(model, pk if len(pk) > 1 else next(iter(pk.values()))) is not None
    session.execute(stmt, row)
    return not existed
