"""Every real Dify export in the corpus optimizes offline, end to end through the CLI.

For each file: exit 0; the output reloads as a Dify app; the only strings that
changed are prompt fields, each with its variable references intact; no
optimized version scores lower than the version it improves on; and the run's
stream in the event log holds exactly what the run reported, and replays from
the log alone event for event (the output file's SHA-256 included).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from autoopt.cli.main import cli
from autoopt.domain.dsl import extract_prompts
from autoopt.domain.dsl_loading import load_dsl
from autoopt.domain.events import PatchEmitted, PromptExtracted, RunCompleted, VersionCreated
from autoopt.domain.references import reference_multiset
from autoopt.infrastructure.db import open_database
from autoopt.infrastructure.event_store import SqlEventLog
from autoopt.infrastructure.replay import RunReplayer
from autoopt.infrastructure.settings import DatabaseSettings
from autoopt.infrastructure.storage import FileSystemStorage
from tests.conftest import REPO_ROOT
from tests.dsl_diff import differing_paths

CORPUS = Path(os.environ.get("AUTOOPT_CORPUS_DIR", REPO_ROOT.parent / "shared/fixtures/dify"))
FILES = sorted(CORPUS.glob("*.yml")) if CORPUS.is_dir() else []


@pytest.mark.parametrize("source", FILES, ids=[f.name for f in FILES])
def test_a_corpus_app_optimizes_offline(source: Path, tmp_path: Path, corpus_dir: Path) -> None:
    out = tmp_path / "out.yml"
    env = {
        "OPTIMIZER_DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}",
        "OPTIMIZER_STORAGE_DIR": str(tmp_path / "versions"),
        "OPENAI_API_KEY": "",
    }
    result = CliRunner().invoke(
        cli, ["optimize", str(source), "--out", str(out), "--format", "json"], env=env
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)

    original = load_dsl(source.read_bytes(), str(source))
    optimized = load_dsl(out.read_bytes(), str(out))
    prompts = {p.document_path: p for p in extract_prompts(original)}
    after = {p.document_path: p for p in extract_prompts(optimized)}
    changed = differing_paths(original.document, optimized.document)
    assert set(changed) <= set(prompts), f"non-prompt fields changed: {set(changed) - set(prompts)}"
    for path, prompt in prompts.items():
        assert reference_multiset(after[path].text, prompt.edition) == reference_multiset(
            prompt.text, prompt.edition
        ), path

    log = SqlEventLog(open_database(DatabaseSettings(url=env["OPTIMIZER_DATABASE_URL"])))
    run = [r.event for r in log.read_stream(f"run-{report['run_id']}")]
    extracted = [e.prompt_id for e in run if isinstance(e, PromptExtracted)]
    assert extracted == [p["prompt_id"] for p in report["prompts"]]
    patched = {e.prompt_id for e in run if isinstance(e, PatchEmitted)}
    assert patched == {p["prompt_id"] for p in report["prompts"] if p["decision"] == "optimized"}
    assert len(changed) == len(patched)
    [completed] = [e for e in run if isinstance(e, RunCompleted)]
    assert (completed.prompts_found, completed.prompts_optimized) == (len(extracted), len(patched))
    assert completed.output_path == str(out)

    storage = FileSystemStorage(tmp_path / "versions")
    for record in log.read_all():
        event = record.event
        if isinstance(event, VersionCreated) and event.kind == "optimized":
            assert event.scores is not None and event.parent_version is not None
            parent = storage.get_version(event.prompt_id, event.parent_version)
            assert parent.scores is not None
            assert event.scores.overall >= parent.scores.overall, event.prompt_id

    replay = RunReplayer(log).replay(report["run_id"])
    assert replay.divergence is None, replay.divergence.describe()
