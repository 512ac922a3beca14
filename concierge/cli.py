"""Flask CLI commands of the concierge: ``flask seed``, the demo data set."""

from __future__ import annotations

import click
from flask import Flask

from concierge.demo_data import seed_demo_data
from messaging.store.db import session_scope


def register_commands(app: Flask) -> None:
    @app.cli.command("seed")
    def seed_command() -> None:
        """Add the demo data set (a host, a property, a traveler, an offer, a trip) if it is missing."""
        with session_scope() as session:
            added = seed_demo_data(session)
        click.echo(f"demo data added: {', '.join(added)}" if added else "demo data already present")
