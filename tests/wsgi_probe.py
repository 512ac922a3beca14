"""A WSGI application for the worker-class tests (``tests/test_server.py``): served by a real
``gunicorn -k messaging.server.GeventWorker``, it answers every path with what the serving process reports of
itself."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable
from typing import Any

import orjson


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = orjson.dumps({"pid": os.getpid(), "frozen": gc.get_freeze_count()})
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
