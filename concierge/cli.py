"""Flask CLI commands of the concierge, for operators: the demo data set (``flask seed``) and the demo
(``flask demo``, :mod:`concierge.demo`), platform events
(``flask events post|show|retry``) and transcripts (``flask transcripts export``). Each runs the same service
functions as the API, in its own transaction, and prints JSON (or CSV) to stdout; a refusal is the API's problem
detail on stderr with exit code 1."""

from __future__ import annotations

import sys
from typing import Any, TextIO

import click
import orjson
from flask import Flask, current_app
from pydantic import ValidationError

from concierge import review
from concierge.api.admin import export_body
from concierge.demo import DEFAULT_API, run_demo
from concierge.demo_data import seed_demo_data
from concierge.events import EventIn, accept_event, event_json, get_event
from messaging.chat.resources import JSON_OPTIONS
from messaging.errors import ProblemError
from messaging.store.db import session_scope


def _echo_json(payload: Any) -> None:
    click.echo(orjson.dumps(payload, option=JSON_OPTIONS | orjson.OPT_INDENT_2).decode())


def _refused(exc: ProblemError | ValidationError) -> click.ClickException:
    if isinstance(exc, ValidationError):
        errors = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return click.ClickException(f"422 the event is not valid: {errors}")
    fields = "; ".join(f"{e['field']}: {e['message']}" for e in (exc.errors or []))
    return click.ClickException(f"{exc.status} {exc.detail}" + (f" ({fields})" if fields else ""))


def register_commands(app: Flask) -> None:
    @app.cli.command("seed")
    def seed_command() -> None:
        """Add the demo data set (a host, a property, a traveler, an offer, a trip) if it is missing."""
        with session_scope() as session:
            added = seed_demo_data(session)
        click.echo(f"demo data added: {', '.join(added)}" if added else "demo data already present")

    @app.cli.command("demo")
    @click.option("--api", default=DEFAULT_API, show_default=True, help="The running service's base URL.")
    def demo_command(api: str) -> None:
        """Post one event of every type for the demo traveler and host, ask the concierge a few questions, and
        print what it wrote (the service at --api must be running, with its worker)."""
        sys.exit(run_demo(api, click.echo, current_app.config))

    @app.cli.group("events")
    def events_group() -> None:
        """Platform events: post one as the platform would, read one's state, retry a failed one."""

    @events_group.command("post")
    @click.argument("source", type=click.File("r"))
    def post_event(source: TextIO) -> None:
        """Post the event in SOURCE (a JSON file, or - for stdin) as POST /v1/events does; prints the stored
        event. The same id and body again is a repeat (the stored event); another body under that id is refused."""
        try:
            body = orjson.loads(source.read())
        except orjson.JSONDecodeError as exc:
            raise click.ClickException(f"400 the event is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise click.ClickException("422 the event must be a JSON object")
        try:
            event_in = EventIn.model_validate(body)
            with session_scope() as session:
                event, created = accept_event(session, event_in, body)
                resource = event_json(session, event, just_accepted=created)
        except (ProblemError, ValidationError) as exc:
            raise _refused(exc) from exc
        click.echo("accepted" if created else "already stored (a repeat)", err=True)
        _echo_json(resource)

    @events_group.command("show")
    @click.argument("event_id")
    def show_event(event_id: str) -> None:
        """Print an event's processing state and the concierge messages it produced (GET /v1/events/ID)."""
        try:
            with session_scope() as session:
                resource = event_json(session, get_event(session, event_id))
        except ProblemError as exc:
            raise _refused(exc) from exc
        _echo_json(resource)

    @events_group.command("retry")
    @click.argument("event_id")
    def retry_event(event_id: str) -> None:
        """Send a failed event to the worker again (the admin pages' retry); prints its summary."""
        try:
            with session_scope() as session:
                summary = review.retry_event(session, event_id)
        except ProblemError as exc:
            raise _refused(exc) from exc
        _echo_json(summary)

    @app.cli.group("transcripts")
    def transcripts_group() -> None:
        """Concierge transcripts, as admins review them."""

    @transcripts_group.command("export")
    @click.argument("conversation_id")
    @click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True)
    def export_transcript(conversation_id: str, fmt: str) -> None:
        """Write a transcript to stdout, as the admin export downloads it (every message, with its origin)."""
        try:
            with session_scope() as session:
                _content_type, _headers, body = export_body(session, conversation_id, fmt)
                for chunk in body:
                    sys.stdout.buffer.write(chunk if isinstance(chunk, bytes) else chunk.encode())
        except ProblemError as exc:
            raise _refused(exc) from exc
        sys.stdout.buffer.write(b"\n")
        sys.stdout.flush()
