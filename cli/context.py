"""What every command shares: the settings and the services, built once and lazily.

Loading settings and opening the database happen on first use, so that
``autoopt --help`` stays fast and a bad configuration file is reported by the
command that needed it.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from autoopt.infrastructure.bootstrap import Container
    from autoopt.infrastructure.settings import Override, Settings


@dataclass
class CliState:
    config_file: Path | None
    overrides: list[Override] = field(default_factory=list)
    verbosity: int = 0
    _settings: Settings | None = None
    _container: Container | None = None

    def settings(self) -> Settings:
        if self._settings is None:
            from autoopt.infrastructure.settings import load_settings

            self._settings = load_settings(self.config_file, self.overrides)
            if self.verbosity == 0:
                configure_logging(logging.getLevelName(self._settings.log_level))
        return self._settings

    def container(self) -> Container:
        if self._container is None:
            from autoopt.infrastructure.bootstrap import build

            self._container = build(self.settings())
        return self._container

    def catch_up(self) -> None:
        """Bring the read models up to date if the command appended events."""
        if self._container is not None:
            self._container.catch_up()

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


pass_state = click.make_pass_decorator(CliState)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the one handler the CLI owns, so a second run replaces it."""


#: At debug level (-vv) the HTTP client's own logs join autoopt's: requests,
#: retries and their waits are what one debugs a model connection with.
HTTP_LOGGERS = ("openai", "httpx")


def configure_logging(level: int) -> None:
    """Send autoopt's logs to stderr at ``level``; stdout stays for data."""
    handler = _StderrHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for name in ("autoopt", *HTTP_LOGGERS):
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
            logger.removeHandler(old)
        if name == "autoopt" or level <= logging.DEBUG:
            logger.addHandler(handler)
            logger.setLevel(level)
