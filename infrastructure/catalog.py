"""A folder of Dify exports as a ``WorkflowCatalog``.

Every ``*.yml``, ``*.yaml`` and ``*.json`` file directly in the folder that
loads as a Dify app is an entry, keyed by its workflow id (the app's name) and
carrying the file's SHA-256. When two files hold apps with one name, the
first by file name is the entry and the others are reported as problems:
one workflow id must mean one app.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from autoopt.domain.dsl_loading import DifyApp, load_dsl
from autoopt.domain.errors import DSLFormatError, NotFoundError
from autoopt.domain.ports import CatalogEntry
from autoopt.infrastructure.dsl_files import read_bytes

SUFFIXES = (".yml", ".yaml", ".json")


@dataclass(frozen=True)
class CatalogProblem:
    path: Path
    message: str


class FolderCatalog:
    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.problems: list[CatalogProblem] = []
        self._paths: dict[str, Path] = {}
        self._entries: list[CatalogEntry] = []
        self._scan()

    def entries(self) -> list[CatalogEntry]:
        return list(self._entries)

    def path_of(self, workflow_id: str) -> Path:
        try:
            return self._paths[workflow_id]
        except KeyError:
            raise NotFoundError(f"{self.folder}: no app with workflow id {workflow_id!r}") from None

    def load(self, workflow_id: str) -> tuple[DifyApp, str]:
        path = self.path_of(workflow_id)
        data = read_bytes(path, self.max_bytes)
        app = load_dsl(data, str(path), self.max_bytes)
        return app, data.decode("utf-8-sig")

    def _scan(self) -> None:
        if not self.folder.is_dir():
            raise DSLFormatError(f"{self.folder}: not a folder")
        seen: dict[str, Path] = {}
        for path in sorted(p for p in self.folder.iterdir() if p.suffix.lower() in SUFFIXES):
            if not path.is_file() or ".optimized." in path.name:
                continue
            try:
                data = read_bytes(path, self.max_bytes)
                app = load_dsl(data, str(path), self.max_bytes)
            except DSLFormatError as exc:
                self.problems.append(CatalogProblem(path, str(exc)))
                continue
            if app.workflow_id in seen:
                self.problems.append(
                    CatalogProblem(
                        path,
                        f"{path}: app {app.workflow_id!r} is also in "
                        f"{seen[app.workflow_id]}; apps need distinct names",
                    )
                )
                continue
            seen[app.workflow_id] = path
            self._entries.append(
                CatalogEntry(app.workflow_id, str(path), hashlib.sha256(data).hexdigest())
            )
        self._paths = seen
