"""Prompt versions in a dict: the ``VersionStorage`` fake for unit tests.

It keeps the file store's contract (same suite) within one process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from autoopt.domain.errors import ConcurrencyError, NotFoundError
from autoopt.domain.models import PromptVersion
from autoopt.infrastructure.storage.codec import content_sha256, encode_version


class InMemoryVersionStorage:
    def __init__(self) -> None:
        self._versions: dict[str, dict[int, PromptVersion]] = {}
        self._deleted: dict[str, set[int]] = {}
        self._lock = threading.RLock()

    @contextmanager
    def locked(self, prompt_id: str) -> Iterator[None]:
        with self._lock:
            yield

    def save_version(self, version: PromptVersion) -> str:
        with self._lock:
            high = self.next_version_number(version.prompt_id) - 1
            if version.version != high + 1:
                raise ConcurrencyError(
                    f"prompt {version.prompt_id!r} is at version {high}; the next version is "
                    f"{high + 1}, not {version.version}"
                )
            self._versions.setdefault(version.prompt_id, {})[version.version] = version
            return content_sha256(encode_version(version))

    def get_version(self, prompt_id: str, version: int) -> PromptVersion:
        with self._lock:
            found = self._versions.get(prompt_id, {}).get(version)
        if found is None:
            raise NotFoundError(f"prompt {prompt_id!r} has no version {version}")
        return found

    def content_sha256(self, prompt_id: str, version: int) -> str:
        return content_sha256(encode_version(self.get_version(prompt_id, version)))

    def get_latest_version(self, prompt_id: str) -> PromptVersion | None:
        latest = self.latest_version_number(prompt_id)
        return self.get_version(prompt_id, latest) if latest else None

    def latest_version_number(self, prompt_id: str) -> int:
        with self._lock:
            return max(self._versions.get(prompt_id, {}), default=0)

    def next_version_number(self, prompt_id: str) -> int:
        with self._lock:
            taken = [*self._versions.get(prompt_id, {}), *self._deleted.get(prompt_id, ())]
            return max(taken, default=0) + 1

    def list_versions(self, prompt_id: str) -> list[int]:
        with self._lock:
            return sorted(self._versions.get(prompt_id, {}))

    def delete_version(self, prompt_id: str, version: int) -> None:
        with self._lock:
            versions = self._versions.get(prompt_id, {})
            if version not in versions:
                raise NotFoundError(f"prompt {prompt_id!r} has no version {version}")
            del versions[version]
            self._deleted.setdefault(prompt_id, set()).add(version)
            if not versions:
                del self._versions[prompt_id]

    def deleted_versions(self, prompt_id: str) -> list[int]:
        with self._lock:
            return sorted(self._deleted.get(prompt_id, ()))

    def list_prompts(self) -> list[str]:
        with self._lock:
            return sorted(self._versions)
