"""The report views (migration 0006), read as plain rows for ``autoopt report``.

Each read brings the read models up to the log first, then reads one view
whole, in a stable order. Values come back as Python numbers and UTC
datetimes on SQLite and PostgreSQL alike; formatting them is the caller's
business.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, text

from autoopt.infrastructure.llm.cache import ResponseCache
from autoopt.infrastructure.projections.runner import ProjectionRunner
from autoopt.infrastructure.storage import DatabaseStorage, FileSystemStorage

# View: the columns its rows are sorted by (oldest first, as a ledger reads),
# and its timestamp columns. Sorting happens here, by code point: an ORDER BY
# would follow the database's collation, and PostgreSQL's differs from SQLite's.
# A view's columns carry no declared type on SQLite, where timestamps arrive as
# text; naming them gives them the DateTime type on either database.
VIEWS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "v_strategy_effectiveness": (("strategy",), ()),
    "v_run_costs": (("started_at", "run_id"), ("started_at",)),
    "v_daily_costs": (("day",), ()),
    "v_model_costs": (("model",), ()),
    "v_run_outcomes": (("started_at", "run_id"), ("started_at", "finished_at")),
    "v_confidence_histogram": (("low",), ()),
    "v_llm_cache_use": ((), ()),
}
COSTS_BY = {"run": "v_run_costs", "day": "v_daily_costs", "model": "v_model_costs"}


@dataclass(frozen=True)
class ViewRows:
    """A view's columns, in its own order (also when it has no rows), and its rows."""

    columns: tuple[str, ...]
    rows: list[dict[str, Any]]


class Reports:
    def __init__(self, engine: Engine, projections: ProjectionRunner) -> None:
        self._engine = engine
        self._projections = projections

    def view(self, name: str) -> ViewRows:
        self._projections.catch_up()
        order, timestamps = VIEWS[name]
        query = text(f"SELECT * FROM {name}").columns(  # the name is one of ours
            **dict.fromkeys(timestamps, DateTime(timezone=True))
        )
        with self._engine.connect() as conn:
            result = conn.execute(query)
            columns = tuple(result.keys())
            rows = [dict(row._mapping) for row in result]
        for row in rows:
            for column in timestamps:
                row[column] = _utc(row[column])
        rows.sort(key=lambda row: tuple(row[c] for c in order))
        return ViewRows(columns, rows)

    def cache(
        self, llm_cache: ResponseCache, storage: FileSystemStorage | DatabaseStorage
    ) -> dict[str, Any]:
        """What caching saved, as far as anything records it.

        The version store's LRU lives in each process and its counters end
        with it, so its hit rate is None: not recorded, rather than the empty
        counters of this process.
        """
        (use,) = self.view("v_llm_cache_use").rows
        store = storage.get_storage_stats()
        return {
            "llm_cache": llm_cache.stats(),
            "llm_calls": use,
            "storage": {
                "prompts": store["prompts"],
                "versions": store["versions"],
                "index": store["index"],
                "lru_size": store["cache_size"],
                "lru_hit_rate": None,
            },
        }


def _utc(value: datetime | None) -> datetime | None:
    # SQLite keeps no zone; everything stored is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
