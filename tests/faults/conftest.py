"""Fixtures of the fault suites: a fake language model and a workspace per test.

The fake OpenAI server lives for the whole session so that the last test of the
suite (``test_zz_api_key_sweep.py``) can check that the sentinel key reached it
and reached nothing else.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.workspace import Workspace
from tests.llm_answers import prompt_in, structured_rewrite
from tests.llm_server import Dynamic, FakeLLMServer, JSONAnswer, Response, Slow

#: Reproduces a failing fault run: AUTOOPT_FAULT_SEED=<the seed a failure printed>.
FAULT_SEED = int(os.environ.get("AUTOOPT_FAULT_SEED", "20261205"))

# A few milliseconds per answer: long enough that a kill lands while a run is
# waiting on the model as well as while it writes, short enough for 100+ kills.
_latency = random.Random(FAULT_SEED)


def rewrite_answer(body: dict[str, Any]) -> Response:
    answer = JSONAnswer(
        structured_rewrite(prompt_in(body)), prompt_tokens=300, completion_tokens=80
    )
    return Slow(_latency.uniform(0.002, 0.02), answer)


@pytest.fixture(scope="session")
def llm_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(default=Dynamic(rewrite_answer)) as server:
        yield server


@pytest.fixture
def workspace(tmp_path: Path, llm_server: FakeLLMServer) -> Workspace:
    """A fresh database and version store, the language model pointed at the fake server."""
    return Workspace(tmp_path / "ws", llm_server.base_url)


@pytest.fixture
def fault_seed() -> int:
    return FAULT_SEED
