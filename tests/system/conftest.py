"""Fixtures of the tests that run the service's processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.system.test_stream import SseClient


@pytest.fixture
def streams() -> Iterator[list[SseClient]]:
    """Streams opened by a test (appended to the list), closed after it."""
    opened: list[SseClient] = []
    yield opened
    for stream in opened:
        stream.close()
