"""Database wiring: the declarative base, the engine and one session per request or task."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, cast

from flask import Flask, current_app, g
from psycopg import Error as DBAPI_ERRORS  # the driver's error base class, for driver_cursor
from sqlalchemy import TIMESTAMP, MetaData, create_engine, event, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: TIMESTAMP(timezone=True)}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long a PostgreSQL connection may wait, in seconds; 0 means no bound (for keepalives: the system's
    default). ``connect``: opening it (libpq's ``connect_timeout``, whole seconds, at least 2). ``statement``,
    ``lock``: the server ends a statement that runs, or waits for a lock, that long with an error (its
    transaction fails and commits nothing; the connection stays usable). ``keepalives_idle`` / ``_interval`` /
    ``_count``: TCP keepalives at both ends (libpq's and the server's settings), so a peer that vanished (host
    down, network cut) is noticed on a quiet connection: quiet seconds before the first probe, seconds between
    probes, probes unanswered before the connection is dropped.

    None of these ends a wait on a server that is stopped while its kernel still accepts connections and
    acknowledges what is sent: the server's timers do not run, and keepalives are answered. That bound is the
    client's, the web tier's request deadline (:mod:`messaging.api.deadline`)."""

    connect: float = 3
    statement: float = 5
    lock: float = 2
    keepalives_idle: int = 30
    keepalives_interval: int = 10
    keepalives_count: int = 3

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Timeouts:
        """From the ``DB_*`` settings (docs/settings.md); a missing one keeps its default."""
        default = cls()
        return cls(
            connect=float(config.get("DB_CONNECT_TIMEOUT", default.connect)),
            statement=float(config.get("DB_STATEMENT_TIMEOUT", default.statement)),
            lock=float(config.get("DB_LOCK_TIMEOUT", default.lock)),
            keepalives_idle=int(config.get("DB_KEEPALIVES_IDLE", default.keepalives_idle)),
            keepalives_interval=int(config.get("DB_KEEPALIVES_INTERVAL", default.keepalives_interval)),
            keepalives_count=int(config.get("DB_KEEPALIVES_COUNT", default.keepalives_count)),
        )

    def connect_params(self) -> dict[str, Any]:
        """libpq connection parameters (the client's side)."""
        params: dict[str, Any] = {"keepalives": 1, "keepalives_idle": self.keepalives_idle,
                                  "keepalives_interval": self.keepalives_interval,
                                  "keepalives_count": self.keepalives_count}
        if self.connect > 0:
            params["connect_timeout"] = max(2, math.ceil(self.connect))
        return params

    def server_options(self) -> str:
        """Settings for the server's side of each session, as libpq ``options``: set at connection start, so they
        cost no round trip."""
        return (f"-c statement_timeout={round(self.statement * 1000)} -c lock_timeout={round(self.lock * 1000)} "
                f"-c tcp_keepalives_idle={self.keepalives_idle} "
                f"-c tcp_keepalives_interval={self.keepalives_interval} "
                f"-c tcp_keepalives_count={self.keepalives_count}")


def make_engine(
    url: str,
    pool_size: int = 10,
    max_overflow: int | None = None,
    pool_timeout: float = 10.0,
    timeouts: Timeouts | None = None,
    **options: Any,
) -> Engine:
    """An engine for the PostgreSQL database at ``url``. Its pool keeps up to ``pool_size`` connections, opens up
    to ``max_overflow`` more under a burst (closed again as they come back; default: as many again), and makes a
    caller wait at most ``pool_timeout`` seconds for one (then ``sqlalchemy.exc.TimeoutError``: a 503).
    ``timeouts`` bound every connection's waits (none: libpq's and the server's defaults, for migrations and
    other one-off tools); a parameter the URL sets itself is left as the URL has it."""
    # No pre-ping (a round trip per checkout): a connection found dead raises a disconnect error, answered 503,
    # and SQLAlchemy then invalidates the whole pool, so one request per process sees a database restart and the
    # next ones reconnect.
    kwargs: dict[str, Any] = {
        "future": True,
        **options,
        "pool_size": pool_size,
        "max_overflow": pool_size if max_overflow is None else max_overflow,
        "pool_timeout": pool_timeout,
        "pool_recycle": 1800,
        "connect_args": {"options": _utc_options(url)},
    }
    if timeouts is not None:
        given = make_url(url).query
        kwargs["connect_args"] = {
            **{name: value for name, value in timeouts.connect_params().items() if name not in given},
            # Before the URL's own options, which so win over these.
            "options": f"{timeouts.server_options()} {_utc_options(url)}",
        }
    return create_engine(url, **kwargs)


def _utc_options(url: str) -> str:
    """libpq ``options`` that start every session in ``TimeZone=UTC`` (kept after any the URL gives). Values are
    instants either way; but in a zone spelled ``UTC`` psycopg reads a ``timestamptz`` into a datetime with
    ``datetime.timezone.utc``, where a server default such as ``Etc/UTC`` makes it convert each one through
    ``zoneinfo`` (its cost: ``bench/README.md``). Set at connection start, so it costs no round trip."""
    given = make_url(url).query.get("options")
    given = " ".join(given) if isinstance(given, tuple) else given
    return f"{given} -c TimeZone=UTC" if given else "-c TimeZone=UTC"


def _no_memoize(dbapi_conn: Any, _record: Any) -> None:
    """The statements on the autocommit pool (driver_cursor) look rows up by unique keys, where a Memoize cache
    never hits, yet PostgreSQL's planner puts Memoize nodes over their LATERAL lookups, which slows the inbox
    statement (``bench/README.md``). Turned off on PostgreSQL 14 and later, which have it; a no-op before."""
    if dbapi_conn.info.server_version >= 140000:
        dbapi_conn.execute("SET enable_memoize = off")


class Database:
    """Flask extension holding the engine and session factory in ``app.extensions["db"]``."""

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        url, pool_size = app.config["DATABASE_URL"], app.config.get("DB_POOL_SIZE", 10)
        timeout = float(app.config.get("DB_POOL_TIMEOUT", 3))
        # Every process of the service (web, worker, beat) builds its engines here, so all their connections
        # carry these bounds.
        bounds = Timeouts.from_config(app.config)
        engine = make_engine(url, pool_size, pool_timeout=timeout, timeouts=bounds)
        factory = sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)
        # A second pool whose connections stay in autocommit, for driver_cursor(). Up to twice DB_POOL_SIZE kept
        # open, no overflow: the most the usual pool-plus-overflow reached, but never opened and closed again
        # under load. With overflow (closed as it came back), a send load of 16 connections on two processes of 8
        # made PostgreSQL start about ten backends a second, each one planning the hot statements afresh before
        # psycopg prepared them again; with DB_POOL_SIZE and no overflow, the requests of a process holding more
        # than 8 connections waited for one, which showed in the inbox page's p95.
        autocommit = make_engine(url, 2 * pool_size, max_overflow=0, pool_timeout=timeout, timeouts=bounds,
                                 isolation_level="AUTOCOMMIT")
        event.listen(autocommit, "connect", _no_memoize)
        app.extensions["db"] = {"engine": engine, "sessionmaker": factory, "autocommit_engine": autocommit}
        app.teardown_appcontext(_close_session)


def _state() -> dict[str, Any]:
    return current_app.extensions["db"]  # type: ignore[no-any-return]


def get_engine() -> Engine:
    return _state()["engine"]  # type: ignore[no-any-return]


def get_session() -> Session:
    """The session of the current request or task; created on first use, closed at teardown."""
    if "db_session" not in g:
        g.db_session = _state()["sessionmaker"]()
    return g.db_session  # type: ignore[no-any-return]


def read_session() -> Session:
    """The request's session for a view that only reads. Its statements run in autocommit: no BEGIN and ROLLBACK
    around them, two round trips fewer per request. Nothing is lost by it: under READ COMMITTED each statement
    sees its own snapshot inside a transaction too."""
    session = get_session()
    if not session.in_transaction():
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    return session


def driver_cursor(session: Session) -> AbstractContextManager[Any]:
    """A binary psycopg cursor for the few statements hot enough to skip SQLAlchemy's
    execution layer (:mod:`messaging.pg_reads`, the send). Inside a transaction of ``session`` it runs on that
    transaction's connection; otherwise on a connection of the autocommit pool, where a statement commits by
    itself and no session, BEGIN or isolation switch is involved.

    What SQLAlchemy would do on an error is done here: a driver error comes out as SQLAlchemy's (so the error
    handlers answer it like any other database error: 503 when the database is unreachable), and a connection
    found dead, or interrupted by an exception that is not an error (a request deadline's ``gevent.Timeout``:
    its protocol state is unknown), is invalidated, so the pool never hands it out again."""
    return _driver_cursor(_state(), session if session.in_transaction() else None)


def autocommit_cursor(state: dict[str, Any]) -> AbstractContextManager[Any]:
    """:func:`driver_cursor` on the autocommit pool of the app whose ``extensions["db"]`` is ``state``, with no
    session or app context (for :mod:`messaging.fast_lane`)."""
    return _driver_cursor(state, None)


@contextmanager
def _driver_cursor(state: dict[str, Any], session: Session | None) -> Iterator[Any]:
    pooled: Engine | None = None
    fairy: Any = None
    dialect = state["engine"].dialect
    try:
        if session is not None:
            fairy = session.connection().connection
        else:
            pooled = state["autocommit_engine"]
            fairy = pooled.raw_connection()  # a connection that cannot be made raises the driver's error
        with fairy.driver_connection.cursor(binary=True) as cursor:
            yield cursor
    except DBAPI_ERRORS as exc:
        disconnected = fairy is None or dialect.is_disconnect(cast(Any, exc), fairy.dbapi_connection, None)
        if disconnected and fairy is not None:
            fairy.invalidate(exc)
            if pooled is not None:  # the server went away: its other connections are dead too
                pooled.dispose()
        raise DBAPIError.instance(
            None, None, exc, DBAPI_ERRORS, connection_invalidated=disconnected, dialect=dialect
        ) from exc
    except BaseException as exc:
        if not isinstance(exc, Exception) and fairy is not None:
            fairy.invalidate(exc)  # no ROLLBACK on the way back to the pool: it would wait on the same server
        raise
    finally:
        if pooled is not None and fairy is not None:
            fairy.close()  # back to the pool


def _close_session(exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is None:
        return
    if exc is not None and not isinstance(exc, Exception):
        # Ended by a request deadline (gevent.Timeout) or the like: its connection is discarded, not rolled back,
        # since a ROLLBACK would wait, with no deadline left, on the server that did not answer.
        session.invalidate()
    else:
        session.close()


@contextmanager
def session_scope() -> Iterator[Session]:
    """A fresh session outside the request's, committed on success (for CLI commands and tasks)."""
    session: Session = _state()["sessionmaker"]()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


db = Database()
