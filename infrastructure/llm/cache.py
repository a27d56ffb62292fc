"""The response cache: successful answers by request hash, in the project database.

The key is the SHA-256 of everything that shapes an answer (provider, base
URL, model, the full messages, every sampling parameter, the meta-prompt's
version), so a cached answer is only ever reused for the very same request.
Errors are never cached. Entries expire after ``cache_ttl`` seconds.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update

from autoopt.domain.ports import Clock
from autoopt.infrastructure.tables import llm_cache


def request_key(
    provider: str,
    base_url: str | None,
    model: str,
    messages: list[dict[str, str]],
    parameters: dict[str, Any],
    template_version: str,
) -> str:
    document = {
        "provider": provider,
        "base_url": base_url,
        "model": model,
        "messages": messages,
        "parameters": parameters,
        "template_version": template_version,
    }
    canonical = json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    def __init__(self, engine: Engine, ttl_seconds: int, clock: Clock) -> None:
        self._engine = engine
        self._ttl = timedelta(seconds=ttl_seconds)
        self._clock = clock
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> dict[str, Any] | None:
        now = self._clock.now()
        with self._engine.begin() as conn:
            row = conn.execute(
                select(llm_cache.c.response, llm_cache.c.expires_at).where(llm_cache.c.key == key)
            ).first()
            if row is None or _utc(row.expires_at) <= now:
                self.misses += 1
                return None
            conn.execute(
                update(llm_cache).where(llm_cache.c.key == key).values(hits=llm_cache.c.hits + 1)
            )
        self.hits += 1
        return dict(row.response)

    def put(self, key: str, model: str, response: dict[str, Any]) -> None:
        now = self._clock.now()
        with self._engine.begin() as conn:
            conn.execute(delete(llm_cache).where(llm_cache.c.key == key))
            conn.execute(
                insert(llm_cache).values(
                    key=key,
                    model=model,
                    response=response,
                    created_at=now,
                    expires_at=now + self._ttl,
                    hits=0,
                )
            )

    def stats(self) -> dict[str, int]:
        now = self._clock.now()
        with self._engine.connect() as conn:
            entries, hits = conn.execute(
                select(func.count(), func.coalesce(func.sum(llm_cache.c.hits), 0))
            ).one()
            live = conn.execute(
                select(func.count()).where(llm_cache.c.expires_at > now)
            ).scalar_one()
        return {
            "entries": int(entries),
            "live": int(live),
            "expired": int(entries - live),
            "hits": int(hits),
        }

    def clear(self) -> int:
        with self._engine.begin() as conn:
            return int(conn.execute(delete(llm_cache)).rowcount or 0)


def _utc(value: datetime) -> datetime:
    # SQLite keeps no zone; everything stored is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
