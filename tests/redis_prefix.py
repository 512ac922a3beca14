"""Redis key prefixes of a test's own, under the run's (``tests.conftest.REDIS_TEST_PREFIX``), whose keys are deleted
when the test ends: state a test leaves in the run's Redis (limit counters, streams, queued tasks) never reaches
another test, and nothing is flushed but those keys."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from tests.conftest import REDIS_TEST_PREFIX, redis_url


def new_prefix() -> str:
    """A prefix no other test uses, starting with the run's (so the run's end deletes its keys too)."""
    return f"{REDIS_TEST_PREFIX}{uuid.uuid4().hex[:10]}:"


def delete_keys(url: str, prefix: str) -> int:
    """Delete every key of ``url``'s database that starts with ``prefix`` (never the others); how many."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start:start + 1000])
        return len(keys)
    finally:
        client.close()


@contextmanager
def own_prefix(url: str | None = None) -> Iterator[str]:
    """A new prefix; on exit its keys in ``url`` (default: the run's Redis) are deleted."""
    prefix = new_prefix()
    try:
        yield prefix
    finally:
        delete_keys(url or redis_url(), prefix)

