"""A projector process for ``test_projection_kill``: catch the read models up, then exit.

Run from the repository root as
``python -m tests.integration.projection_worker URL BATCH``. It opens
the database as every autoopt process does, prints ``ready`` when it is about to catch up, then
catches every projection up to the head of the log with ``ProjectionRunner.catch_up`` and prints
what each projector read as one JSON line. The test kills it with SIGKILL somewhere in between.
"""

from __future__ import annotations

import json
import sys

from autoopt.infrastructure.db import open_database
from autoopt.infrastructure.event_store import SqlEventLog
from autoopt.infrastructure.projections.runner import ProjectionRunner
from autoopt.infrastructure.settings import DatabaseSettings


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(
            "usage: python -m tests.integration.projection_worker DATABASE_URL BATCH",
            file=sys.stderr,
        )
        return 2
    engine = open_database(DatabaseSettings(url=argv[0]))
    runner = ProjectionRunner(engine, SqlEventLog(engine), batch=int(argv[1]))
    print("ready", flush=True)
    applied = runner.catch_up()
    print(json.dumps(applied), flush=True)
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
