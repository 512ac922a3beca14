"""psycopg waiting on gevent's hub, for the web tier (gunicorn's gevent worker).

psycopg 3 runs every query as a generator of "wait until the socket is readable/writable" steps and hands each
step to ``psycopg.waiting.wait``. Under gevent's monkey-patching it picks ``wait_poll``, which goes through
gevent's pure-Python ``select.poll`` emulation: a poll object, an I/O watcher, an event and a result object are
made and torn down for every step, and a query whose result spans several network reads (an inbox page is
~30 KB) takes several steps. :func:`wait` does each step as one libev I/O watcher the current greenlet waits on
— what psycogreen did for psycopg 2 through its wait callback, which psycopg 3 replaced with this module-level
function (its maintainers' suggestion for gevent: a wait function written for it). Under load on PostgreSQL with
``gunicorn -k gevent_pywsgi``, inbox pages: web-process CPU per request −10 to −20 %; history pages and sends
(one read each) unchanged.

:func:`install` replaces ``psycopg.waiting.wait`` only in a process gevent has monkey-patched (``select``), so
Celery's prefork workers, the CLI and the tests keep psycopg's C wait. Connection establishment
(``wait_conn``) is left as it is.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from gevent import Timeout  # type: ignore[import-untyped]
from gevent.hub import Waiter, get_hub  # type: ignore[import-untyped]
from psycopg import errors, waiting


def wait(gen: Any, fileno: int, interval: float = 0.0, timeout: float | None = None) -> Any:
    """``psycopg.waiting.wait`` for gevent: each step waits on a libev I/O watcher for exactly the events the
    generator asks for (psycopg's WAIT_R/WAIT_W bits are libev's READ/WRITE) and sends back those that fired.
    ``timeout`` (seconds, for the whole operation) raises psycopg's ``_WaitTimeout`` as its own wait functions do;
    ``interval`` is psycopg's wake-up period for signals, which a greenlet does not need."""
    hub = get_hub()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        state = next(gen)
        while True:
            watcher = hub.loop.io(fileno, int(state))
            waiter = Waiter(hub)
            watcher.start(waiter.switch, pass_events=True)
            try:
                if deadline is None:
                    ready = waiter.get()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise errors._WaitTimeout("wait timeout expired")
                    timer = Timeout(remaining)
                    timer.start()
                    try:
                        ready = waiter.get()
                    except Timeout as exc:
                        if exc is not timer:  # someone else's timeout: not ours to translate
                            raise
                        raise errors._WaitTimeout("wait timeout expired") from exc
                    finally:
                        timer.close()
            finally:
                watcher.stop()
                watcher.close()
            # Only an error condition (no read/write bit): report what was asked, so psycopg's own read or write
            # meets the socket's error and raises it.
            state = gen.send(ready & 3 or int(state))
    except StopIteration as done:
        return done.value


def gevent_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey is not None and monkey.is_module_patched("select"))


def install() -> bool:
    """Use :func:`wait` for psycopg's queries in this process if gevent has patched it; True if it did."""
    if not gevent_patched():
        return False
    waiting.wait = wait
    return True
