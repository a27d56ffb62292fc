"""The response cache on a real database: expiry, hit counts, clearing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from autoopt.infrastructure.llm.cache import ResponseCache


class ManualClock:
    def __init__(self) -> None:
        self.current = datetime(2026, 5, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current


def test_an_answer_is_served_until_it_expires(sqlite_engine: Engine) -> None:
    clock = ManualClock()
    cache = ResponseCache(sqlite_engine, ttl_seconds=60, clock=clock)
    assert cache.get("k") is None
    cache.put("k", "gpt-4o-mini", {"text": "better", "prompt_tokens": 3})
    assert cache.get("k") == {"text": "better", "prompt_tokens": 3}
    assert cache.get("k") is not None
    clock.current += timedelta(seconds=61)
    assert cache.get("k") is None
    assert (cache.hits, cache.misses) == (2, 2)
    assert cache.stats() == {"entries": 1, "live": 0, "expired": 1, "hits": 2}


def test_put_replaces_and_clear_removes_everything(sqlite_engine: Engine) -> None:
    cache = ResponseCache(sqlite_engine, ttl_seconds=60, clock=ManualClock())
    cache.put("a", "m", {"text": "one"})
    cache.put("a", "m", {"text": "two"})
    cache.put("b", "m", {"text": "three"})
    assert cache.get("a") == {"text": "two"}
    assert cache.clear() == 2
    assert cache.get("b") is None
    assert cache.stats()["entries"] == 0
