"""gunicorn settings of the web tier; gunicorn reads this file from its working directory (the project root).

Options given on the command line win over these. Each bound is what a client meets:

* ``keepalive``: an idle keep-alive connection is closed after this many seconds, and a request's line and
  headers must arrive within as long (``messaging.server.GeventWorker``).
* ``worker_connections``: the open connections of one worker process (live-update streams included); when all are
  open, the one waiting longest for a request is closed for a newcomer.
* ``limit_request_line`` (400 beyond it), ``limit_request_fields`` and ``limit_request_field_size`` (431 beyond
  them): the request line, the number of header lines and the size of one, so a request's head is at most about
  400 kB.

Prometheus: the worker processes share one metrics directory (``PROMETHEUS_MULTIPROC_DIR``: the environment's,
else a private temporary directory made for this master and removed when it exits), so ``/metrics``, whichever
worker answers it, reports the sum over all of them (``messaging.api.health``). It is emptied when the server starts,
and a worker's live gauges are dropped when it exits (its counters stay in the sum).
"""

import gc
import glob
import os
import shutil
import tempfile

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
PRIVATE_DIR_PREFIX = "concierge-gunicorn-metrics-"
# Set before prometheus_client is imported here or in a worker: it picks its multiprocess storage at import. The
# workers inherit the variable (they import the app after they fork), and so does this file when gunicorn reads it
# again on SIGHUP, which keeps the same directory.
if not os.environ.get(MULTIPROC_DIR):
    os.environ[MULTIPROC_DIR] = tempfile.mkdtemp(prefix=PRIVATE_DIR_PREFIX)

from prometheus_client import multiprocess  # noqa: E402 - after the variable above

worker_class = "messaging.server.GeventWorker"
worker_connections = 1000
keepalive = 5
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
graceful_timeout = 10


def post_worker_init(worker):  # noqa: ARG001 - gunicorn's hook signature
    """The loaded application lives as long as the worker: freeze it, so no garbage collection walks it again."""
    gc.freeze()


def worker_exit(server, worker):  # noqa: ARG001 - gunicorn's hook signature
    """Thaw and collect while gevent's hub still runs: left frozen, the objects were finalised at interpreter
    exit, after the hub, and logging's finalisers then failed on gevent's patched locks."""
    gc.unfreeze()
    gc.collect()


def on_starting(server):
    """Start from zero: files an earlier server left in the directory would add their totals to this one's. Not
    in a master started by an upgrade (USR2), whose old master's workers still write there."""
    if server.master_pid:
        return
    for path in glob.glob(os.path.join(os.environ[MULTIPROC_DIR], "*.db")):
        os.remove(path)


def child_exit(server, worker):  # noqa: ARG001 - gunicorn's hook signature
    """A worker exited (or was killed): its live gauges (open streams) no longer count."""
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the private directory, unless another master shares it (an upgrade, USR2, in either direction)."""
    path = os.environ[MULTIPROC_DIR]
    if os.path.basename(path).startswith(PRIVATE_DIR_PREFIX) and not (server.master_pid or server.reexec_pid):
        shutil.rmtree(path, ignore_errors=True)
