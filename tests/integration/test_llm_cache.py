"""The response cache on a real database (SQLite, and PostgreSQL when
``AUTOOPT_TEST_POSTGRES_URL`` is set): expiry, hit counts, clearing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from autoopt.infrastructure.llm.cache import ResponseCache
from tests.postgres import postgres_backends, temporary_postgres_engine


@pytest.fixture(params=["sqlite", *postgres_backends()])
def engine(request: pytest.FixtureRequest, sqlite_engine: Engine) -> Iterator[Engine]:
    if request.param == "sqlite":
        yield sqlite_engine
    else:
        with temporary_postgres_engine() as postgres:
            yield postgres


class ManualClock:
    def __init__(self) -> None:
        self.current = datetime(2026, 5, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current


def test_an_answer_is_served_until_it_expires(engine: Engine) -> None:
    clock = ManualClock()
    cache = ResponseCache(engine, ttl_seconds=60, clock=clock)
    assert cache.get("k") is None
    cache.put("k", "gpt-4o-mini", {"text": "better", "prompt_tokens": 3})
    assert cache.get("k") == {"text": "better", "prompt_tokens": 3}
    assert cache.get("k") is not None
    clock.current += timedelta(seconds=61)
    assert cache.get("k") is None
    assert (cache.hits, cache.misses) == (2, 2)
    assert cache.stats() == {"entries": 1, "live": 0, "expired": 1, "hits": 2}


def test_put_replaces_and_clear_removes_everything(engine: Engine) -> None:
    cache = ResponseCache(engine, ttl_seconds=60, clock=ManualClock())
    cache.put("a", "m", {"text": "one"})
    cache.put("a", "m", {"text": "two"})
    cache.put("b", "m", {"text": "three"})
    assert cache.get("a") == {"text": "two"}
    assert cache.clear() == 2
    assert cache.get("b") is None
    assert cache.stats()["entries"] == 0
