"""``autoopt`` on a disk that fills up: the version store's writes fail with ENOSPC after N.

A test program, run as ``python -m tests.faults.enospc_autoopt --config ... ARGS``
by ``Workspace.run(..., program="tests.faults.enospc_autoopt")``. It wraps the one
write seam of the file store, ``write_atomic`` (every version file, ``prompt.json``
and ``index.json`` goes through it), so that the first ``$AUTOOPT_ENOSPC_AFTER``
writes succeed and every later one fails as a full disk does: ``OSError(ENOSPC)``
raised where the OS write would be, after the temp file was created, so the
seam's own clean-up runs too. Nothing of the store, the log or the database is
mocked; the rest of the run is the real command.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

from autoopt.infrastructure.storage import atomic, filesystem, index

AFTER_ENV = "AUTOOPT_ENOSPC_AFTER"
_real_write_atomic = atomic.write_atomic
_budget = {"left": int(os.environ.get(AFTER_ENV, "0"))}


def full_disk_write_atomic(target: Path, data: bytes, **options: Any) -> None:
    if _budget["left"] > 0:
        _budget["left"] -= 1
        _real_write_atomic(target, data, **options)
        return
    # As the kernel does it: the temp file exists, the write into it fails.
    temp = atomic.temp_name(target)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    finally:
        os.close(fd)
        temp.unlink(missing_ok=True)


def main() -> None:
    for module in (filesystem, index):
        module.write_atomic = full_disk_write_atomic  # type: ignore[attr-defined]
    from autoopt.cli.main import main as autoopt_main

    autoopt_main()


if __name__ == "__main__":
    main()
