"""Whether this process runs under gevent's monkey-patching (gunicorn's gevent worker, the web tier).

Nothing here changes how psycopg waits: psycopg picks its wait function when ``psycopg.waiting`` is first imported,
and in a process gevent has patched (``select``) it takes ``wait_poll``, whose ``poll()`` is gevent's cooperative
one, so a query waits on gevent's hub like any other socket (psycopg's own ``_is_select_patched`` check). gunicorn's
gevent worker patches before it loads the application, so psycopg is first imported patched there; Celery's
workers, the CLI and the tests keep psycopg's C wait.
"""

from __future__ import annotations

import sys


def gevent_patched() -> bool:
    """True in a process whose ``select`` module gevent has monkey-patched; never imports gevent itself."""
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey is not None and monkey.is_module_patched("select"))
