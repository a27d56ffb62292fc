"""A process that creates versions of one prompt until it is killed.

Run as ``python -m tests.integration.version_writer DB_URL STORAGE_DIR PROMPT``.
It prints ``ready`` once its imports are done, then the number of every
version whose ``create_version`` returned, one per line, flushed at once: what
it printed is what it was promised.
"""

from __future__ import annotations

import sys

from autoopt.domain.models import Scores
from autoopt.infrastructure.bootstrap import build
from autoopt.infrastructure.settings import Override, load_settings


def main() -> None:
    url, storage_dir, prompt_id = sys.argv[1:4]
    settings = load_settings(
        None,
        [
            Override(("database", "url"), url, "db"),
            Override(("storage", "storage_dir"), storage_dir, "dir"),
        ],
        environ={},
    )
    versions = build(settings).versions
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        created = versions.create_version(
            prompt_id,
            f"Answer {{{{#sys.query#}}}} in {n} sentences. 简洁地回答。",
            kind="optimized",
            scores=Scores(overall=n % 100, clarity=50, efficiency=50),
            strategy="clarity_focus",
        )
        print(created.version, flush=True)


if __name__ == "__main__":
    main()
