"""Celery wiring (Flask's *Background Tasks with Celery* pattern) and the tasks' side of the outbox."""

from __future__ import annotations

import datetime as dt
from contextlib import nullcontext
from typing import Any

from celery import Celery, Task
from flask import Flask, has_app_context

from messaging.outbox import OUTBOX_HEADER, mark_done, mark_retrying


def celery_init_app(app: Flask) -> Celery:
    def context() -> Any:
        # Called inline (``apply``, an eager broker, a test) inside an application's context: run in that
        # application, whichever Celery app the task object was looked up on. A worker has no context and
        # runs in the application this Celery app was made for.
        return nullcontext() if has_app_context() else app.app_context()

    class FlaskTask(Task):  # type: ignore[misc]
        """Runs in the application, and reports to the outbox row that sent it (the ``outbox_id`` header, see
        messaging.outbox) when it is over, or when it will retry."""

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with context():
                return self.run(*args, **kwargs)

        def retry(self, *args: Any, **options: Any) -> Any:
            entry_id = _outbox_id(self.request)
            if entry_id:
                mark_retrying(entry_id, _retry_delay(self, options))
            return super().retry(*args, **options)

        def after_return(self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
            # Celery calls this when the task succeeded or failed for good (a failure is recorded on the event or
            # record the task is about), not when it retries or was rejected: the outbox row is done.
            entry_id = _outbox_id(self.request)
            if entry_id:
                with context():
                    mark_done(entry_id)

    celery = Celery(app.name, task_cls=FlaskTask)
    celery.config_from_object(app.config["CELERY"])
    celery.set_default()
    app.extensions["celery"] = celery
    return celery


def _outbox_id(request: Any) -> str | None:
    """The outbox row a task's message was sent for: its header (messaging.outbox.send), kept in
    ``request.headers`` (and, by a worker, as an attribute of the request too)."""
    return (request.headers or {}).get(OUTBOX_HEADER) or request.get(OUTBOX_HEADER)


def _retry_delay(task: Task, options: dict[str, Any]) -> float:
    """Seconds until the retry that ``Task.retry(**options)`` asks for runs (as Celery reckons it)."""
    if options.get("countdown") is not None:
        return float(options["countdown"])
    eta = options.get("eta")
    if eta is not None:
        return max(0.0, (eta - dt.datetime.now(eta.tzinfo or dt.UTC)).total_seconds())
    return float(task.default_retry_delay or 0)
