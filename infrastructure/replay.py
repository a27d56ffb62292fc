"""Replaying a recorded run from the event log alone.

The run is re-run by the same ``OptimizerService`` on the DSL text and the
configuration its ``RunStarted`` recorded, with:

* the ids and times the run recorded, handed out in the order the run took
  them (:class:`RecordedIds`, :class:`RecordedClock`);
* its LLM answers from the recorded exchanges (:class:`RecordedRewriter`);
* an in-memory log and version store, seeded with each prompt's versions as
  the log knew them when the run started. Their texts come from the log too:
  a baseline or manual version holds the text its run extracted, an optimized
  one the text its patch wrote, a rollback the text it restored.

Nothing is appended to the real log, no file is written and no model is
called. The replayed events are then compared with the recorded ones
(:func:`autoopt.domain.replay.first_divergence`). A what-if replay changes
settings first and compares per-prompt decisions instead.

Known limits: a version whose text the log cannot tell (made by another tool,
or pruned from the store before the run) may number differently in replay,
and a run another writer raced on the same prompts replays as divergent.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from autoopt.domain.analyzer import PromptAnalyzer
from autoopt.domain.dsl_loading import DEFAULT_MAX_BYTES, dump_dsl, load_dsl
from autoopt.domain.errors import (
    ConfigurationError,
    EventSchemaError,
    NotFoundError,
    OptimizerError,
)
from autoopt.domain.events import (
    DomainEvent,
    IterationCompleted,
    PatchEmitted,
    PromptExtracted,
    RunCompleted,
    RunStarted,
    VersionCreated,
    VersionRolledBack,
)
from autoopt.domain.models import OptimizationConfig, PromptVersion
from autoopt.domain.optimizer import PromptOptimizer
from autoopt.domain.ports import EventLog, RecordedEvent
from autoopt.domain.replay import Divergence, PromptDecision, first_divergence, prompt_decisions
from autoopt.domain.service import OptimizerService
from autoopt.domain.versions import VersionManager, prompt_stream
from autoopt.infrastructure.llm.replay import RecordedRewriter
from autoopt.infrastructure.memory_event_log import InMemoryEventLog
from autoopt.infrastructure.settings import LLMSettings
from autoopt.infrastructure.storage import InMemoryVersionStorage

# Settings a what-if may change: the run's optimization settings.
WHAT_IF_KEYS = {
    "strategies": "strategies",
    "score_threshold": "score_threshold",
    "threshold": "score_threshold",
    "min_confidence": "min_confidence",
    "max_iterations": "max_iterations",
}
_REPLAY_IDS = uuid.UUID("6f1c2d1e-3a4b-4c5d-8e6f-7a8b9c0d1e2f")


@dataclass(frozen=True)
class ReplayResult:
    run_id: str
    recorded: list[RecordedEvent]
    replayed: list[DomainEvent]
    divergence: Divergence | None

    @property
    def identical(self) -> bool:
        return self.divergence is None


@dataclass(frozen=True)
class DecisionChange:
    recorded: PromptDecision
    what_if: PromptDecision

    @property
    def changed(self) -> bool:
        return not self.recorded.same_as(self.what_if)


class RecordedIds:
    """The run's ids in the order it took them; past their end, made-up stable ones."""

    def __init__(self, ids: list[uuid.UUID]) -> None:
        self._ids = iter(ids)
        self._extra = 0

    def new_id(self) -> uuid.UUID:
        for value in self._ids:
            return value
        self._extra += 1
        return uuid.uuid5(_REPLAY_IDS, str(self._extra))

    def new_run_id(self) -> uuid.UUID:
        return self.new_id()  # the run took its id first, as the list holds it


class RecordedClock:
    """The run's times in the order it read them; past their end, the last one."""

    def __init__(self, times: list[datetime]) -> None:
        self._times: Iterator[datetime] = iter(times)
        self._last = times[-1] if times else datetime(1970, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        for value in self._times:
            self._last = value
            return value
        return self._last


class DigestSink:
    """Where the replayed document goes: its SHA-256 is computed as the file's was."""

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def write(self, document: dict[str, Any]) -> str:
        return hashlib.sha256(dump_dsl(document).encode("utf-8")).hexdigest()


class RunReplayer:
    def __init__(self, log: EventLog) -> None:
        self._log = log

    def replay(self, run_id: str) -> ReplayResult:
        """Re-run the recorded run exactly and compare every event."""
        recorded, replayed = self._rerun(run_id, {}, strict=True)
        return ReplayResult(run_id, recorded, replayed, first_divergence(recorded, replayed))

    def what_if(self, run_id: str, changes: Mapping[str, str]) -> list[DecisionChange]:
        """Per prompt, the recorded decision and the one the changed settings give."""
        recorded, replayed = self._rerun(run_id, changes, strict=False)
        before = prompt_decisions([r.event for r in recorded])
        after = prompt_decisions(replayed)
        return [DecisionChange(decision, after[pid]) for pid, decision in before.items()]

    def _rerun(
        self, run_id: str, changes: Mapping[str, str], *, strict: bool
    ) -> tuple[list[RecordedEvent], list[DomainEvent]]:
        run_records = self._log.read_stream(f"run-{run_id}")
        if not run_records or not isinstance(run_records[0].event, RunStarted):
            raise NotFoundError(f"no run {run_id} in the log")
        started_at = run_records[0]
        started = started_at.event
        assert isinstance(started, RunStarted)
        prompt_ids = [
            r.event.prompt_id for r in run_records if isinstance(r.event, PromptExtracted)
        ]
        history = {pid: self._log.read_stream(prompt_stream(pid)) for pid in prompt_ids}
        own = [
            r
            for records in history.values()
            for r in records
            if r.position > started_at.position and r.event.correlation_id == run_id
        ]
        recorded = sorted([*run_records, *own], key=lambda r: r.position)

        log = InMemoryEventLog()
        storage = InMemoryVersionStorage()
        texts = _VersionTexts(self._log)
        for records in history.values():
            for record in records:
                if record.position < started_at.position:
                    _seed(log, storage, record, texts.text(record))

        ids = RecordedIds([uuid.UUID(run_id), *(r.event.event_id for r in recorded)])
        clock = RecordedClock([r.event.occurred_at for r in recorded])
        rounds = [r.event for r in run_records if isinstance(r.event, IterationCompleted)]
        optimizer = PromptOptimizer(
            PromptAnalyzer(),
            llm=_language_model(started, rounds, strict),
            length_bounds=_length_bounds(started),
        )
        service = OptimizerService(
            log, VersionManager(storage, log, clock, ids), optimizer, clock, ids
        )
        completed = next((r.event for r in run_records if isinstance(r.event, RunCompleted)), None)
        output = completed.output_path if completed is not None else None
        max_bytes = max(DEFAULT_MAX_BYTES, len(started.dsl_text.encode("utf-8")) + 1)
        app = load_dsl(started.dsl_text, started.source_name, max_bytes)
        config = _run_config(started, changes)
        seeded = log.last_position()
        # A failing run leaves RunFailed in the replay too, compared like any other event.
        with contextlib.suppress(OptimizerError):
            service.run(
                app,
                started.dsl_text,
                config,
                effective_config={
                    k: v for k, v in started.config.items() if k not in ("run", "language_model")
                },
                tool_version=started.tool_version,
                sink=DigestSink(output) if output is not None else None,
            )
        replayed = [r.event for r in log.read_all(after_position=seeded)]
        return recorded, replayed


class _VersionTexts:
    """The text of every version the log can tell, read from the runs that made them."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self._runs: dict[str, tuple[dict[str, str], dict[tuple[str, int], str]]] = {}
        self._known: dict[tuple[str, int], str] = {}

    def text(self, record: RecordedEvent) -> str | None:
        event = record.event
        text: str | None = None
        if isinstance(event, VersionRolledBack):
            text = self._known.get((event.prompt_id, event.restored_version))
        elif isinstance(event, VersionCreated) and event.run_id is not None:
            extracted, patched = self._run(event.run_id)
            if event.kind == "optimized":
                text = patched.get((event.prompt_id, event.version))
            else:
                text = extracted.get(event.prompt_id)
        if text is not None and isinstance(event, VersionCreated | VersionRolledBack):
            self._known[(event.prompt_id, event.version)] = text
        return text

    def _run(self, run_id: str) -> tuple[dict[str, str], dict[tuple[str, int], str]]:
        if run_id not in self._runs:
            extracted: dict[str, str] = {}
            patched: dict[tuple[str, int], str] = {}
            for record in self._log.read_stream(f"run-{run_id}"):
                e = record.event
                if isinstance(e, PromptExtracted):
                    extracted[e.prompt_id] = e.text
                elif isinstance(e, PatchEmitted) and e.version is not None:
                    patched[(e.prompt_id, e.version)] = e.new_text
            self._runs[run_id] = (extracted, patched)
        return self._runs[run_id]


def _seed(
    log: InMemoryEventLog,
    storage: InMemoryVersionStorage,
    record: RecordedEvent,
    text: str | None,
) -> None:
    """One recorded version into the replay's store and log, as it stood before the run."""
    event = record.event
    if not isinstance(event, VersionCreated | VersionRolledBack):
        return
    if isinstance(event, VersionRolledBack):
        kind, scores, run_id = "rollback", None, None
    else:
        kind, scores, run_id = event.kind, event.scores, event.run_id
    storage.save_version(
        PromptVersion(
            prompt_id=event.prompt_id,
            version=event.version,
            # A text the log cannot tell matches no prompt, as a pruned file would not.
            text=text if text is not None else f"\x00unknown text of version {event.version}",
            kind=kind,
            created_at=event.occurred_at,
            scores=scores,
            run_id=run_id,
        )
    )
    log.append(record.stream_id, [event], record.stream_version - 1)


def _language_model(
    started: RunStarted, rounds: list[IterationCompleted], strict: bool
) -> RecordedRewriter | None:
    had_model = started.config.get("language_model")
    if had_model is None:  # recorded before runs said so: the rounds tell
        had_model = any(e.llm_exchange is not None for e in rounds)
    if not had_model:
        return None
    try:
        settings = LLMSettings.model_validate(started.config.get("llm", {}))
    except ValidationError as exc:
        raise EventSchemaError(
            f"run {started.run_id}: the recorded LLM settings cannot be read"
        ) from exc
    return RecordedRewriter(settings, rounds, strict=strict)


def _length_bounds(started: RunStarted) -> tuple[float, float]:
    llm = started.config.get("llm", {})
    defaults = LLMSettings()
    return (
        float(llm.get("min_length_ratio", defaults.min_length_ratio)),
        float(llm.get("max_length_ratio", defaults.max_length_ratio)),
    )


def _run_config(started: RunStarted, changes: Mapping[str, str]) -> OptimizationConfig:
    document = dict(started.config.get("run", {}))
    for key, value in changes.items():
        field = WHAT_IF_KEYS.get(key)
        if field is None:
            raise ConfigurationError(
                f"--with {key}: not a setting a replay can change; "
                f"choose from {', '.join(sorted(WHAT_IF_KEYS))}"
            )
        document[field] = [s.strip() for s in value.split(",")] if field == "strategies" else value
    try:
        return OptimizationConfig.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigurationError(f"--with {where}: {first['msg']}") from exc
