"""Celery's Redis transport (kombu's), keeping one redis-py client per channel.

kombu's Redis channel makes a new ``redis.Redis`` object for every operation it runs outside its event loop —
each task published by the web process, and each delivery's and acknowledgement's bookkeeping in the worker's
consumer — and a redis-py client builds a ~80-entry table of response callbacks when it is made. Profiled,
that was a tenth of an event's intake CPU and about an eighth of the worker consumer's. The client is only a
front for the channel's connection pool (made per operation around that same pool), so this channel keeps the
one it made and forgets it whenever kombu drops its pools (after a fork, or when the channel closes).

Selected by ``broker_transport`` in the Celery settings when ``REDIS_URL`` is a plain ``redis://`` URL
(``messaging.config``); ``rediss://`` and ``sentinel://`` keep the transport kombu picks for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):  # type: ignore[misc]
    _sync_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        if self._sync_client is None:
            self._sync_client = self._create_client()
        yield self._sync_client

    def _disconnect_pools(self) -> None:
        self._sync_client = None
        super()._disconnect_pools()


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    Channel = Channel
