"""Celery wiring (Flask's *Background Tasks with Celery* pattern) and enqueue-after-commit."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from flask import Flask, has_app_context


def celery_init_app(app: Flask) -> Celery:
    class FlaskTask(Task):  # type: ignore[misc]
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            # Called inline (``apply``, an eager broker, a test) inside an application's context: run in that
            # application, whichever Celery app the task object was looked up on. A worker has no context and
            # runs in the application this Celery app was made for.
            if has_app_context():
                return self.run(*args, **kwargs)
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.name, task_cls=FlaskTask)
    celery.config_from_object(app.config["CELERY"])
    celery.set_default()
    app.extensions["celery"] = celery
    return celery
