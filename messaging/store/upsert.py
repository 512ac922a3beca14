"""INSERT … ON CONFLICT, compiled once per shape.

SQLAlchemy cannot cache PostgreSQL's ``insert(...).on_conflict_…()`` constructs (they have no cache key), so
using them directly compiles a new statement on every call — several times per request on the intake and
posting paths. Each statement is therefore compiled once per (table, columns, key) into a ``text()`` with typed
bind parameters, which SQLAlchemy does cache; column defaults computed in Python (ids, flags) are filled in here,
as the INSERT construct would have done.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from sqlalchemy import Table, TextClause, bindparam, literal_column, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.dialects.postgresql import psycopg2 as pg_named
from sqlalchemy.orm import Session

# Compiled with a named paramstyle and no bind casts, so that text() sees plain ":column" parameters.
_COMPILER = pg_named.dialect(paramstyle="named")


@cache
def _text(construct: Any, table: Table, columns: tuple[str, ...]) -> TextClause:
    sql = str(construct.compile(dialect=_COMPILER, column_keys=list(columns)))
    # ":payload::JSONB" and ":amenities::TEXT[]" are not text() binds
    sql = re.sub(r"(?<!:):(\w+)::(\w+(?:\[\])?)", r"CAST(:\1 AS \2)", sql)
    return text(sql).bindparams(*[bindparam(c, type_=table.c[c].type) for c in columns])


@cache
def _insert_ignore_statement(table: Table, columns: tuple[str, ...]) -> TextClause:
    statement = _text(insert(table).on_conflict_do_nothing(), table, columns)
    return statement.execution_options(preserve_rowcount=True)


@cache
def _upsert_statement(
    table: Table, columns: tuple[str, ...], given: tuple[str, ...], key: tuple[str, ...]
) -> TextClause:
    base = insert(table)
    updates = {c: base.excluded[c] for c in given if c not in key}  # a default never overwrites a stored value
    construct = base.on_conflict_do_update(index_elements=list(key), set_=updates)
    return _text(construct.returning(literal_column("(xmax = 0)")), table, columns)  # xmax = 0: a fresh insert


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
    result = session.execute(_insert_ignore_statement(table, tuple(sorted(row))), row)
    return result.rowcount == 1  # type: ignore[attr-defined]


def upsert(session: Session, model: Any, values: dict[str, Any], key: list[str]) -> bool:
    """Insert or replace a row by ``key``; True when it was newly created. ``values`` naming only the key
    columns replace nothing (:func:`insert_ignore`)."""
    if all(c in key for c in values):
        return insert_ignore(session, model, values)
    table = model.__table__
    row = _with_defaults(table, values)
    stmt = _upsert_statement(table, tuple(sorted(row)), tuple(sorted(values)), tuple(key))
    return bool(session.execute(stmt, row).scalar())
