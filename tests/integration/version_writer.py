"""A process that creates versions of one prompt through the VersionManager.

Run as ``python -m tests.integration.version_writer DB_URL STORAGE_DIR PROMPT
[--count N] [--go FILE]``. It prints ``ready`` once its imports are done, waits
for FILE to exist if given, then prints the number of every version whose
``create_version`` returned, one per line, flushed at once: what it printed is
what it was promised. Without ``--count`` it writes until it is killed.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

from autoopt.domain.models import Scores
from autoopt.infrastructure.bootstrap import build
from autoopt.infrastructure.settings import Override, load_settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("storage_dir")
    parser.add_argument("prompt_id")
    parser.add_argument("--count", type=int)
    parser.add_argument("--go", type=Path)
    args = parser.parse_args()
    settings = load_settings(
        None,
        [
            Override(("database", "url"), args.url, "db"),
            Override(("storage", "storage_dir"), args.storage_dir, "dir"),
        ],
        environ={},
    )
    services = build(settings)
    print("ready", flush=True)
    while args.go is not None and not args.go.exists():
        time.sleep(0.001)
    counter = itertools.count(1) if args.count is None else range(1, args.count + 1)
    for n in counter:
        created = services.versions.create_version(
            args.prompt_id,
            f"Answer {{{{#sys.query#}}}} in {n} sentences. 简洁地回答。",
            kind="optimized",
            scores=Scores(overall=n % 100, clarity=50, efficiency=50),
            strategy="clarity_focus",
        )
        print(created.version, flush=True)
    services.close()


if __name__ == "__main__":
    main()
