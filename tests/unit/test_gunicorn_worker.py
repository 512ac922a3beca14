"""messaging.server.GeventWorker overrides public methods of gunicorn's gevent worker that gunicorn does not
document as an interface: this fails when gunicorn changes, until the overrides are checked against it."""

from __future__ import annotations

import inspect

import gunicorn
from gunicorn.workers import base_async, ggevent

from messaging.server import GeventWorker

CHECKED_AGAINST = "23.0.0"


def test_the_worker_was_checked_against_this_gunicorn() -> None:
    assert gunicorn.__version__ == CHECKED_AGAINST, (
        f"gunicorn {gunicorn.__version__}: check GeventWorker's handle, timeout_ctx and handle_request against it "
        "(messaging/server.py), then update CHECKED_AGAINST and the module's docstring"
    )


def test_the_overridden_methods_still_have_the_signatures_they_override() -> None:
    for name in ("handle", "timeout_ctx", "handle_request"):
        ours = inspect.signature(getattr(GeventWorker, name))
        theirs = inspect.signature(getattr(ggevent.GeventWorker, name, getattr(base_async.AsyncWorker, name)))
        assert list(ours.parameters) == list(theirs.parameters), name
