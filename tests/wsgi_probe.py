"""A WSGI application for the web tier's tests (``tests/system/test_http_front.py``): served by a real gunicorn with
``gunicorn.conf.py``, it answers every path with what the serving process reports of itself; ``/spin?ms=N``
first keeps the process busy for N milliseconds without yielding (a request that holds its worker's event
loop)."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/spin":
        until = time.perf_counter() + int(environ.get("QUERY_STRING", "ms=0").partition("=")[2]) / 1000
        while time.perf_counter() < until:
            pass
    body = orjson.dumps({"pid": os.getpid(), "frozen": gc.get_freeze_count()})
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
