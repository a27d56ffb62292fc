"""Settings: defaults < YAML file < environment < command-line flags.

The YAML file has one root key, ``optimizer:`` (DESIGN section 7). Four
environment variables override single fields; flags override anything. Every
value is validated once, after merging, and an invalid one is reported with the
place it came from: ``Error: autoopt.yaml: optimizer.storage.cache_size: ...``,
``Error: $OPTIMIZER_CACHE_SIZE: ...`` or ``Error: --max-iterations: ...``.

The API key is not a setting. Only the *name* of the variable that holds it
(``llm.api_key_env``) is, so the effective configuration recorded with a run
can never contain the key.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from autoopt.domain.errors import ConfigurationError
from autoopt.domain.models import OptimizationConfig
from autoopt.domain.strategies import ALL_STRATEGIES

DEFAULT_CONFIG_FILE = Path("autoopt.yaml")
MAX_CONFIG_BYTES = 1_000_000


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class StorageSettings(_Section):
    backend: Literal["filesystem", "database"] = "filesystem"
    storage_dir: Path = Path("./data/optimizer/versions")
    use_index: bool = True
    use_cache: bool = True
    cache_size: int = Field(default=256, ge=0)
    enable_sharding: bool = False


class OptimizationSettings(_Section):
    strategies: list[str] = Field(default_factory=lambda: ["llm_guided", "hybrid"], min_length=1)
    score_threshold: float = Field(default=80.0, ge=0, le=100)
    min_confidence: float = Field(default=0.7, ge=0, le=1)
    max_iterations: int = Field(default=3, ge=1, le=100)

    @field_validator("strategies")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [s for s in value if s not in ALL_STRATEGIES]
        if unknown:
            raise ValueError(
                f"unknown strategy {unknown[0]!r}; choose from {', '.join(ALL_STRATEGIES)}"
            )
        return value

    def config(self) -> OptimizationConfig:
        return OptimizationConfig(
            strategies=tuple(dict.fromkeys(self.strategies)),
            score_threshold=self.score_threshold,
            min_confidence=self.min_confidence,
            max_iterations=self.max_iterations,
        )


# The seed's three configurations; explicit options override a preset.
PRESETS: dict[str, dict[str, Any]] = {
    "conservative": {
        "strategies": ["clarity_focus"],
        "score_threshold": 85.0,
        "min_confidence": 0.8,
        "max_iterations": 1,
    },
    "balanced": {
        "strategies": ["llm_guided", "hybrid"],
        "score_threshold": 80.0,
        "min_confidence": 0.7,
        "max_iterations": 3,
    },
    "aggressive": {
        "strategies": ["llm_guided", "llm_clarity", "hybrid"],
        "score_threshold": 90.0,
        "min_confidence": 0.6,
        "max_iterations": 5,
    },
}


def preset_overrides(name: str) -> list[Override]:
    return [
        Override(("optimization", key), value, f"--preset {name}")
        for key, value in PRESETS[name].items()
    ]


class ModelPrice(_Section):
    input: float = Field(ge=0)
    output: float = Field(ge=0)


class LLMSettings(_Section):
    provider: Literal["openai"] = "openai"
    model: str = "gpt-4-turbo-preview"
    api_key_env: str = Field(default="OPENAI_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    base_url: str | None = None
    enable_cache: bool = True
    cache_ttl: int = Field(default=3600, ge=0)
    timeout_seconds: float = Field(default=10.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=20)
    max_cost_usd: float | None = Field(default=None, ge=0)
    temperature: float = Field(default=0.2, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    # An answer shorter or longer than these multiples of the prompt is refused.
    min_length_ratio: float = Field(default=0.3, gt=0)
    max_length_ratio: float = Field(default=3.0, gt=0)
    # Extra or corrected prices, USD per million tokens: {model: {input: x, output: y}}.
    pricing: dict[str, ModelPrice] = Field(default_factory=dict)


class DatabaseSettings(_Section):
    url: str = "sqlite:///./data/optimizer/autoopt.db"
    # FULL makes every committed append survive a power cut; NORMAL in WAL mode
    # only risks the last transactions, and is for those who accept that.
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "FULL"
    busy_timeout_ms: int = Field(default=30_000, ge=0)


class DSLSettings(_Section):
    # Real exports are under 100 kB; the limit only stops a file that is not one.
    max_bytes: int = Field(default=10_000_000, ge=1_000)


class Settings(_Section):
    storage: StorageSettings = Field(default_factory=StorageSettings)
    optimization: OptimizationSettings = Field(default_factory=OptimizationSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    dsl: DSLSettings = Field(default_factory=DSLSettings)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "WARNING"

    def effective(self) -> dict[str, Any]:
        """The configuration as recorded with a run: plain JSON, no secrets.

        The API key is never a setting; a password written into the database
        URL is masked, because every run's RunStarted keeps this for good.
        """
        document = self.model_dump(mode="json")
        document["database"]["url"] = describe_url(self.database.url)
        return document


def describe_url(url: str) -> str:
    """The URL as it may appear in a message or a record: never with its password."""
    # Imported here: reading settings must not cost every command SQLAlchemy's import.
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database URL>"


class _EnvironmentOverrides(BaseSettings):
    """The four variables DESIGN section 7 names, read as raw text.

    They are validated with the rest after merging, so that an error message
    can name the variable.
    """

    model_config = SettingsConfigDict(env_prefix="OPTIMIZER_", extra="ignore")

    storage_dir: str | None = None
    cache_size: str | None = None
    log_level: str | None = None
    database_url: str | None = None


_ENV_FIELDS: dict[str, tuple[str, ...]] = {
    "storage_dir": ("storage", "storage_dir"),
    "cache_size": ("storage", "cache_size"),
    "log_level": ("log_level",),
    "database_url": ("database", "url"),
}


@dataclass(frozen=True)
class Override:
    """One value set on the command line; ``flag`` is how errors name it."""

    path: tuple[str, ...]
    value: Any
    flag: str


def load_settings(
    config_file: Path | None = None,
    overrides: Iterable[Override] = (),
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge every source and validate the result.

    ``config_file`` None means ``./autoopt.yaml`` when it exists, else defaults
    only; a file that was named explicitly must exist.
    """
    merged: dict[str, Any] = {}
    sources: dict[tuple[str, ...], str] = {}

    if config_file is None and DEFAULT_CONFIG_FILE.is_file():
        config_file = DEFAULT_CONFIG_FILE
    if config_file is not None:
        document = _read_config_file(config_file)
        merged = document
        for path in _leaf_paths(document):
            sources[path] = f"{config_file}: optimizer.{'.'.join(path)}"

    env = _read_environment(environ)
    for name, value in env.items():
        path = _ENV_FIELDS[name]
        _set_path(merged, path, value)
        sources[path] = f"${'OPTIMIZER_' + name.upper()}"

    for override in overrides:
        _set_path(merged, override.path, override.value)
        sources[override.path] = override.flag

    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc, sources, config_file)) from exc


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigurationError(
                f"{path}: the file is {size} bytes, more than the {MAX_CONFIG_BYTES} allowed"
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigurationError(f"{path}: no such configuration file") from exc
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"{path}: not UTF-8 text") from exc
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read the file ({exc.strerror})") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigurationError(f"{path}: invalid YAML{line}") from exc
    if document is None:
        return {}
    if not isinstance(document, dict) or set(document) - {"optimizer"}:
        raise ConfigurationError(f"{path}: expected one top-level key, 'optimizer:'")
    section = document.get("optimizer") or {}
    if not isinstance(section, dict):
        raise ConfigurationError(f"{path}: optimizer: expected a mapping")
    return section


def _read_environment(environ: Mapping[str, str] | None) -> dict[str, str]:
    if environ is None:
        env = _EnvironmentOverrides()
    else:
        # pydantic-settings reads os.environ; a given mapping is for tests and
        # for callers that must not see the process environment.
        prefix = "OPTIMIZER_"
        values = {
            k[len(prefix) :].lower(): v for k, v in environ.items() if k.upper().startswith(prefix)
        }
        env = _EnvironmentOverrides.model_validate(
            {k: v for k, v in values.items() if k in _ENV_FIELDS}
        )
    return {k: v for k, v in env.model_dump().items() if v is not None and v != ""}


def _describe(
    exc: ValidationError, sources: Mapping[tuple[str, ...], str], config_file: Path | None
) -> str:
    first = exc.errors()[0]
    path = tuple(str(part) for part in first["loc"])
    message = first["msg"]
    for cut in range(len(path), 0, -1):
        source = sources.get(path[:cut])
        if source is not None:
            rest = path[cut:]
            suffix = f".{'.'.join(rest)}" if rest and source.startswith(str(config_file)) else ""
            return f"{source}{suffix}: {message}"
    where = f"{config_file}: " if config_file is not None else ""
    return f"{where}optimizer.{'.'.join(path)}: {message}"


def _leaf_paths(document: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for key, value in document.items():
        path = (*prefix, str(key))
        paths.append(path)
        if isinstance(value, Mapping):
            paths.extend(_leaf_paths(value, path))
    return paths


def _set_path(document: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = document
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


def tool_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dify-autoopt")
    except PackageNotFoundError:
        return "unknown"


def api_key(settings: Settings, environ: Mapping[str, str] | None = None) -> str | None:
    """The LLM API key from the environment, or None. Never store or print it."""
    source = os.environ if environ is None else environ
    value = source.get(settings.llm.api_key_env)
    return value or None
