"""Settings: defaults < YAML < environment < flags, and errors that say where."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoopt.domain.errors import ConfigurationError
from autoopt.infrastructure.settings import Override, Settings, api_key, load_settings

SEED_CONFIG = """\
optimizer:
  storage: {backend: filesystem, storage_dir: ./yaml/versions, use_index: true,
            use_cache: true, cache_size: 64, enable_sharding: false}
  optimization: {strategies: [llm_guided, hybrid], score_threshold: 75.0, min_confidence: 0.7,
                 max_iterations: 3}
  llm: {provider: openai, model: gpt-4-turbo-preview, api_key_env: OPENAI_API_KEY,
        base_url: null, enable_cache: true, cache_ttl: 3600, timeout_seconds: 10,
        max_retries: 3, max_cost_usd: null}
  database: {url: "sqlite:///./yaml.db"}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "autoopt.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_match_the_design() -> None:
    settings = load_settings(None, environ={})
    assert settings == Settings()
    assert settings.storage.cache_size == 256
    assert settings.optimization.strategies == ["llm_guided", "hybrid"]
    assert settings.database.url == "sqlite:///./data/optimizer/autoopt.db"
    assert settings.database.sqlite_synchronous == "FULL"


def test_the_seed_format_loads(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, SEED_CONFIG), environ={})
    assert settings.storage.cache_size == 64
    assert settings.storage.storage_dir == Path("yaml/versions")
    assert settings.optimization.score_threshold == 75.0
    assert settings.database.url == "sqlite:///./yaml.db"


def test_environment_beats_yaml_and_flags_beat_both(tmp_path: Path) -> None:
    config = write(tmp_path, SEED_CONFIG)
    environ = {
        "OPTIMIZER_CACHE_SIZE": "32",
        "OPTIMIZER_DATABASE_URL": "sqlite:///./env.db",
        "OPTIMIZER_STORAGE_DIR": "/srv/versions",
        "OPTIMIZER_LOG_LEVEL": "DEBUG",
    }
    from_env = load_settings(config, environ=environ)
    assert from_env.storage.cache_size == 32
    assert from_env.database.url == "sqlite:///./env.db"
    assert from_env.storage.storage_dir == Path("/srv/versions")
    assert from_env.log_level == "DEBUG"
    assert from_env.optimization.score_threshold == 75.0  # untouched by env: still the YAML

    flags = [
        Override(("database", "url"), "sqlite:///./flag.db", "--database-url"),
        Override(("storage", "cache_size"), 8, "--cache-size"),
    ]
    from_flags = load_settings(config, flags, environ=environ)
    assert from_flags.database.url == "sqlite:///./flag.db"
    assert from_flags.storage.cache_size == 8
    assert from_flags.log_level == "DEBUG"


def test_the_process_environment_is_read_when_none_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPTIMIZER_CACHE_SIZE", "17")
    assert load_settings(write(tmp_path, SEED_CONFIG)).storage.cache_size == 17


def test_autoopt_yaml_in_the_working_directory_is_used_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, SEED_CONFIG)
    monkeypatch.chdir(tmp_path)
    assert load_settings(None, environ={}).storage.cache_size == 64


def test_a_bad_yaml_value_names_the_file_and_the_field(tmp_path: Path) -> None:
    config = write(tmp_path, SEED_CONFIG.replace("cache_size: 64", "cache_size: lots"))
    with pytest.raises(ConfigurationError) as caught:
        load_settings(config, environ={})
    assert str(caught.value) == (
        f"{config}: optimizer.storage.cache_size: "
        "Input should be a valid integer, unable to parse string as an integer"
    )


def test_an_out_of_range_value_and_an_unknown_key(tmp_path: Path) -> None:
    config = write(tmp_path, "optimizer:\n  optimization:\n    min_confidence: 1.5\n")
    with pytest.raises(ConfigurationError, match=r"optimization\.min_confidence: Input should be"):
        load_settings(config, environ={})
    config = write(tmp_path, "optimizer:\n  storage:\n    cachesize: 5\n")
    with pytest.raises(
        ConfigurationError, match=r"optimizer\.storage\.cachesize: Extra inputs are not permitted"
    ):
        load_settings(config, environ={})


def test_a_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(None, environ={"OPTIMIZER_CACHE_SIZE": "-3"})
    assert str(caught.value) == "$OPTIMIZER_CACHE_SIZE: Input should be greater than or equal to 0"


def test_a_bad_flag_value_names_the_flag() -> None:
    with pytest.raises(ConfigurationError, match=r"^--max-iterations: Input should be greater"):
        load_settings(
            None, [Override(("optimization", "max_iterations"), 0, "--max-iterations")], environ={}
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("optimizer: [1, 2\n", "invalid YAML at line 2"),
        ("storage: {}\n", "expected one top-level key, 'optimizer:'"),
        ("optimizer: 3\n", "optimizer: expected a mapping"),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, message: str) -> None:
    config = write(tmp_path, text)
    with pytest.raises(ConfigurationError, match=f"^{config}: {message}"):
        load_settings(config, environ={})


def test_a_named_file_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no such configuration file"):
        load_settings(tmp_path / "missing.yaml", environ={})


def test_the_api_key_comes_from_the_environment_and_never_enters_settings(tmp_path: Path) -> None:
    config = write(tmp_path, "optimizer:\n  llm: {api_key_env: MY_KEY}\n")
    settings = load_settings(config, environ={"MY_KEY": "sk-secret"})
    assert api_key(settings, {"MY_KEY": "sk-secret"}) == "sk-secret"
    assert "sk-secret" not in str(settings.effective())
    assert api_key(settings, {}) is None


@pytest.mark.parametrize(
    ("url", "recorded"),
    [
        (
            "postgresql+psycopg://autoopt:hunter2@db.example/autoopt",
            "postgresql+psycopg://autoopt:***@db.example/autoopt",
        ),
        ("postgresql+psycopg://autoopt@db.example/autoopt", None),
        ("sqlite:///./data/optimizer/autoopt.db", None),
    ],
    ids=["password", "no password", "sqlite"],
)
def test_a_password_in_the_database_url_is_never_recorded(url: str, recorded: str | None) -> None:
    """effective() is what every RunStarted keeps for good: the password is masked."""
    settings = load_settings(None, environ={"OPTIMIZER_DATABASE_URL": url})
    assert settings.database.url == url  # the engine still gets it
    assert settings.effective()["database"]["url"] == (recorded or url)
    assert "hunter2" not in str(settings.effective())
