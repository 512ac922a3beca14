"""Keyset pagination: opaque cursors over (timestamp, id) positions, and the shared query parameters."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import Field
from sqlalchemy import TIMESTAMP, String, literal, tuple_

from messaging.errors import Unprocessable
from messaging.schemas import ApiModel

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
# Cursors this service issues are about 90 characters; the bound keeps any URL within what
# HTTP servers accept in a request line (gunicorn: 4094 bytes), even with multi-byte characters.
CURSOR_MAX_LENGTH = 128


class PageQuery(ApiModel):
    """``limit`` (1–100, default 50) and opaque ``before`` / ``after`` cursors from ``nextCursor``."""

    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    before: str | None = Field(None, max_length=CURSOR_MAX_LENGTH)
    after: str | None = Field(None, max_length=CURSOR_MAX_LENGTH)


Position = tuple[dt.datetime, str]


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def _created_at_and_id(row: Any) -> Position:
    return row.created_at, row.id


def history_page(
    rows: Sequence[Any], limit: int, after: Position | None, to_json: Callable[[Any], dict[str, Any]],
    position: Callable[[Any], Position] = _created_at_and_id,
) -> Page:
    """A page of a message history from up to ``limit + 1`` rows in paging order: newest first, or oldest first
    when paging ``after``. Items come oldest→newest; ``nextCursor`` continues the same way (older pages, or newer
    ones when paging ``after``), and is null on the last page. ``position`` gives a row's (created_at, id)
    (default: those attributes)."""
    page = list(rows[:limit])
    next_cursor = encode_cursor(*position(page[-1])) if len(rows) > limit else None
    if after is None:
        page.reverse()
    return Page([to_json(r) for r in page], next_cursor)


def position_literal(at: dt.datetime, row_id: str) -> Any:
    """A (timestamp, id) position as a SQL row value, to compare with ``tuple_(created_at, id)``."""
    return tuple_(literal(at, TIMESTAMP(timezone=True)), literal(row_id, String()))


def encode_cursor(at: dt.datetime, row_id: str) -> str:
    raw = orjson.dumps([at.isoformat(), row_id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, field: str = "before") -> Position:
    """Decode a cursor made by :func:`encode_cursor`; anything else is a 422 naming ``field``."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value: Any = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(value, list) or len(value) != 2 or not isinstance(value[0], str):
            raise ValueError("bad cursor")
        at = dt.datetime.fromisoformat(value[0])
        row_id = value[1]
        if not isinstance(row_id, str) or "\x00" in row_id or at.tzinfo is None:
            raise ValueError("bad cursor")
    except (ValueError, TypeError, IndexError, KeyError, orjson.JSONDecodeError) as exc:
        raise Unprocessable(
            "The cursor is not one this service issued.", errors=[{"field": field, "message": "invalid cursor"}]
        ) from exc
    return at, row_id
