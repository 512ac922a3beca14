"""Flask CLI commands of the chat: tokens for development, migrations (the demo data's ``seed`` is concierge.cli's)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import click
from flask import Flask, current_app

from messaging.api.auth import ROLES, mint_token

if TYPE_CHECKING:
    from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(database_url: str | None = None) -> Config:
    # Alembic is imported here, when something migrates, not with this module: every web and worker process builds
    # the app, which registers these commands, and none of them migrates (importing Alembic slows each one's start).
    from alembic.config import Config

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    if database_url:
        cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade_database(database_url: str, revision: str = "head") -> None:
    from alembic import command  # loaded when migrating only, as in alembic_config

    command.upgrade(alembic_config(database_url), revision)


def register_commands(app: Flask) -> None:
    @app.cli.command("token")
    @click.option("--sub", required=True, help="The user id (token subject).")
    @click.option("--role", required=True, type=click.Choice(sorted(ROLES)))
    @click.option("--ttl", default=3600, show_default=True, help="Lifetime in seconds.")
    @click.option("--name", default=None)
    @click.option("--email", default=None)
    def token_command(sub: str, role: str, ttl: int, name: str | None, email: str | None) -> None:
        """Mint a signed token (HS256 with JWT_SECRET) for development and tests."""
        if not current_app.config.get("JWT_SECRET"):
            raise click.ClickException("flask token signs with JWT_SECRET, which is not set")
        click.echo(
            mint_token(current_app.config, sub=sub, role=role, ttl=dt.timedelta(seconds=ttl), name=name, email=email)
        )

    @app.cli.command("migrate")
    @click.option("--revision", default="head", show_default=True)
    def migrate_command(revision: str) -> None:
        """Apply the Alembic migrations to DATABASE_URL."""
        upgrade_database(current_app.config["DATABASE_URL"], revision)
        click.echo(f"database at {revision}")
