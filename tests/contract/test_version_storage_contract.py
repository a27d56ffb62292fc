"""One contract for every ``VersionStorage``: the in-memory fake, the file and database stores.

The file store runs as configured in production (index and cache), with
sharding, and bare (no index, no cache: every answer comes from the files).
The database store runs on SQLite, with and without its cache, and on
PostgreSQL when ``AUTOOPT_TEST_POSTGRES_URL`` is set (each test in a database of
its own). Whatever one backend answers, the others must answer too.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autoopt.domain.errors import ConcurrencyError, NotFoundError
from autoopt.domain.models import PromptVersion, Scores
from autoopt.domain.ports import VersionStorage
from autoopt.infrastructure.db import open_database
from autoopt.infrastructure.settings import DatabaseSettings
from autoopt.infrastructure.storage import (
    DatabaseStorage,
    FileSystemStorage,
    InMemoryVersionStorage,
)
from tests.postgres import postgres_backends, temporary_postgres_engine


@contextmanager
def sqlite_store(folder: Path, *, use_cache: bool = True) -> Iterator[VersionStorage]:
    folder.mkdir(parents=True)
    engine = open_database(DatabaseSettings(url=f"sqlite:///{folder / 'versions.db'}"))
    try:
        yield DatabaseStorage(engine, use_cache=use_cache)
    finally:
        engine.dispose()


@contextmanager
def postgres_store(_folder: Path) -> Iterator[VersionStorage]:
    with temporary_postgres_engine() as engine:
        yield DatabaseStorage(engine)


Backend = Callable[[Path], AbstractContextManager[VersionStorage]]

BACKENDS: dict[str, Backend] = {
    "memory": lambda _folder: nullcontext(InMemoryVersionStorage()),
    "fs": lambda folder: nullcontext(FileSystemStorage(folder)),
    "fs-sharded": lambda folder: nullcontext(FileSystemStorage(folder, enable_sharding=True)),
    "fs-bare": lambda folder: nullcontext(
        FileSystemStorage(folder, use_index=False, use_cache=False)
    ),
    "db-sqlite": sqlite_store,
    "db-sqlite-bare": lambda folder: sqlite_store(folder, use_cache=False),
    **{f"db-{name}": postgres_store for name in postgres_backends()},
}

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
# Long enough for a deadlock to be a deadlock, not a slow disk.
THREAD_TIMEOUT = 10.0


@pytest.fixture(params=sorted(BACKENDS))
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VersionStorage]:
    with BACKENDS[request.param](tmp_path / "store") as store:
        yield store


def version(
    n: int,
    prompt_id: str = "wf-1/llm/prompt",
    text: str | None = None,
    **extra: object,
) -> PromptVersion:
    return PromptVersion(
        prompt_id=prompt_id,
        version=n,
        text=f"You are a helpful assistant, revision {n}." if text is None else text,
        kind="baseline" if n == 1 else "optimized",
        created_at=EPOCH + timedelta(minutes=n),
        parent_version=n - 1 if n > 1 else None,
        **extra,  # type: ignore[arg-type]
    )


def save_all(storage: VersionStorage, *versions: PromptVersion) -> list[str]:
    return [storage.save_version(v) for v in versions]


def run_in_thread(target: Callable[[], None]) -> list[BaseException]:
    """Run ``target`` in a daemon thread; fails the test if it does not finish in time."""
    errors: list[BaseException] = []

    def body() -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(THREAD_TIMEOUT)
    assert not thread.is_alive(), f"still blocked after {THREAD_TIMEOUT} s: a deadlock"
    return errors


# -- save and read back ----------------------------------------------------------------


def test_save_returns_the_sha256_of_the_stored_version(storage: VersionStorage) -> None:
    first, second = version(1), version(2)
    sha1, sha2 = save_all(storage, first, second)
    assert SHA256_HEX.match(sha1), sha1
    assert SHA256_HEX.match(sha2), sha2
    assert sha1 != sha2, "two different versions got the same digest"


def test_every_backend_gives_the_same_sha256_for_the_same_version(tmp_path: Path) -> None:
    """The digest is of the canonical bytes, so it does not depend on the backend."""
    v = version(1, scores=Scores(overall=71.5, clarity=80, efficiency=63.25), strategy="llm")
    with ExitStack() as stack:
        digests = {
            name: stack.enter_context(make(tmp_path / name)).save_version(v)
            for name, make in sorted(BACKENDS.items())
        }
    assert len(set(digests.values())) == 1, digests
    # And for the file store it is the digest of the bytes on disk.
    files = list((tmp_path / "fs").glob("*/1.json"))
    assert len(files) == 1, files
    assert hashlib.sha256(files[0].read_bytes()).hexdigest() == digests["fs"]


def test_get_version_returns_an_equal_object(storage: VersionStorage) -> None:
    saved = version(
        1,
        scores=Scores(overall=55.5, clarity=60.0, efficiency=42.125),
        strategy="structure",
        run_id="run-7",
        note="first import",
    )
    storage.save_version(saved)
    loaded = storage.get_version(saved.prompt_id, 1)
    assert loaded == saved
    assert loaded.created_at == EPOCH + timedelta(minutes=1)
    assert loaded.created_at.utcoffset() == timedelta(0)


def test_cjk_and_emoji_text_round_trips_exactly(storage: VersionStorage) -> None:
    text = (
        "你是一个乐于助人的助手。请用中文回答 {{#sys.query#}}\n"
        "日本語: こんにちは 한국어: 안녕하세요\n"
        "emoji: 🚀👩‍💻🇯🇵 e\u0301 (combining) \u200b(zero width)\n"
        "\"quotes\" 'single' \\backslash\\ \ttab\r\nCRLF end"
    )
    prompt_id = "工作流/节点🚀/提示"
    storage.save_version(version(1, prompt_id=prompt_id, text=text))
    loaded = storage.get_version(prompt_id, 1)
    assert loaded.text == text
    assert loaded.prompt_id == prompt_id
    latest = storage.get_latest_version(prompt_id)
    assert latest is not None
    assert latest.text == text
    assert storage.list_prompts() == [prompt_id]


# -- latest and listing ----------------------------------------------------------------


def test_unknown_prompt_has_no_versions(storage: VersionStorage) -> None:
    assert storage.latest_version_number("nobody") == 0
    assert storage.get_latest_version("nobody") is None
    assert storage.list_versions("nobody") == []
    assert storage.list_prompts() == []


def test_latest_follows_the_saves(storage: VersionStorage) -> None:
    for n in range(1, 4):
        storage.save_version(version(n))
        assert storage.latest_version_number("wf-1/llm/prompt") == n
        assert storage.get_latest_version("wf-1/llm/prompt") == version(n)


def test_list_versions_is_sorted_numerically(storage: VersionStorage) -> None:
    """Eleven versions: a name sort would put 10 and 11 before 2."""
    save_all(storage, *(version(n) for n in range(1, 12)))
    assert storage.list_versions("wf-1/llm/prompt") == list(range(1, 12))
    assert storage.latest_version_number("wf-1/llm/prompt") == 11


def test_prompts_are_independent(storage: VersionStorage) -> None:
    save_all(storage, version(1, "b"), version(1, "a"), version(2, "a"), version(1, "c"))
    assert storage.list_prompts() == ["a", "b", "c"]
    assert storage.list_versions("a") == [1, 2]
    assert storage.list_versions("b") == [1]
    assert storage.latest_version_number("a") == 2
    assert storage.latest_version_number("c") == 1
    assert storage.get_version("b", 1) == version(1, "b")


def test_saving_a_number_not_above_the_latest_is_a_concurrency_error(
    storage: VersionStorage,
) -> None:
    save_all(storage, version(1), version(2))
    with pytest.raises(ConcurrencyError):
        storage.save_version(version(2, text="a rival version 2"))
    with pytest.raises(ConcurrencyError):
        storage.save_version(version(1, text="a rival version 1"))
    # Nothing changed: the stored version 2 is the first one.
    assert storage.list_versions("wf-1/llm/prompt") == [1, 2]
    assert storage.get_version("wf-1/llm/prompt", 2) == version(2)
    assert storage.latest_version_number("wf-1/llm/prompt") == 2


# -- not found -------------------------------------------------------------------------


def test_unknown_prompt_or_version_is_not_found(storage: VersionStorage) -> None:
    storage.save_version(version(1))
    with pytest.raises(NotFoundError):
        storage.get_version("nobody", 1)
    with pytest.raises(NotFoundError):
        storage.get_version("wf-1/llm/prompt", 2)
    with pytest.raises(NotFoundError):
        storage.delete_version("wf-1/llm/prompt", 2)
    with pytest.raises(NotFoundError):
        storage.delete_version("nobody", 1)
    assert storage.list_versions("wf-1/llm/prompt") == [1]


# -- delete ----------------------------------------------------------------------------


def test_a_deleted_version_is_gone(storage: VersionStorage) -> None:
    save_all(storage, version(1), version(2), version(3))
    storage.delete_version("wf-1/llm/prompt", 2)
    with pytest.raises(NotFoundError):
        storage.get_version("wf-1/llm/prompt", 2)
    with pytest.raises(NotFoundError):
        storage.delete_version("wf-1/llm/prompt", 2)
    assert storage.list_versions("wf-1/llm/prompt") == [1, 3]
    assert storage.latest_version_number("wf-1/llm/prompt") == 3


def test_deleting_the_latest_makes_the_previous_one_latest(storage: VersionStorage) -> None:
    save_all(storage, version(1), version(2), version(3))
    storage.delete_version("wf-1/llm/prompt", 3)
    assert storage.latest_version_number("wf-1/llm/prompt") == 2
    assert storage.get_latest_version("wf-1/llm/prompt") == version(2)
    storage.delete_version("wf-1/llm/prompt", 2)
    assert storage.latest_version_number("wf-1/llm/prompt") == 1
    assert storage.get_latest_version("wf-1/llm/prompt") == version(1)


def test_deleting_every_version_removes_the_prompt_from_list_prompts(
    storage: VersionStorage,
) -> None:
    save_all(storage, version(1, "keep"), version(1, "drop"), version(2, "drop"))
    storage.delete_version("drop", 2)
    storage.delete_version("drop", 1)
    assert storage.latest_version_number("drop") == 0
    assert storage.get_latest_version("drop") is None
    assert storage.list_prompts() == ["keep"]


def test_a_deleted_number_is_a_tombstone_and_never_given_out_again(
    storage: VersionStorage,
) -> None:
    save_all(storage, version(1), version(2), version(3))
    storage.delete_version("wf-1/llm/prompt", 3)
    storage.delete_version("wf-1/llm/prompt", 1)
    assert storage.deleted_versions("wf-1/llm/prompt") == [1, 3]
    assert storage.list_versions("wf-1/llm/prompt") == [2]
    assert storage.latest_version_number("wf-1/llm/prompt") == 2
    assert storage.next_version_number("wf-1/llm/prompt") == 4
    with pytest.raises(ConcurrencyError):
        storage.save_version(version(3, text="version 3 again"))
    with pytest.raises(NotFoundError):
        storage.content_sha256("wf-1/llm/prompt", 3)
    storage.save_version(version(4))
    assert storage.list_versions("wf-1/llm/prompt") == [2, 4]
    assert storage.deleted_versions("nobody") == []
    assert storage.next_version_number("nobody") == 1


def test_content_sha256_is_what_save_returned(storage: VersionStorage) -> None:
    digests = save_all(storage, version(1), version(1, prompt_id="工作流/提示"))
    assert storage.content_sha256("wf-1/llm/prompt", 1) == digests[0]
    assert storage.content_sha256("工作流/提示", 1) == digests[1]
    with pytest.raises(NotFoundError):
        storage.content_sha256("wf-1/llm/prompt", 2)


def test_a_prompt_that_was_only_locked_or_probed_is_not_listed(storage: VersionStorage) -> None:
    """Taking a prompt's lock, or a failed delete, stores no version, so lists no prompt."""
    storage.save_version(version(1, "real"))
    with storage.locked("locked-only"):
        pass
    with pytest.raises(NotFoundError):
        storage.delete_version("probed", 1)
    assert storage.list_prompts() == ["real"]


# -- the lock --------------------------------------------------------------------------


def test_locked_is_reentrant_and_save_works_inside_it(storage: VersionStorage) -> None:
    """Nested ``locked`` in one thread must not deadlock (run in a thread to catch a hang)."""
    storage.save_version(version(1))
    numbers: list[int] = []

    def nested() -> None:
        with storage.locked("wf-1/llm/prompt"):
            n = storage.latest_version_number("wf-1/llm/prompt") + 1
            with storage.locked("wf-1/llm/prompt"):
                storage.save_version(version(n))
                with storage.locked("wf-1/llm/prompt"):
                    numbers.append(storage.latest_version_number("wf-1/llm/prompt"))
            storage.delete_version("wf-1/llm/prompt", 1)

    assert run_in_thread(nested) == []
    assert numbers == [2]
    assert storage.list_versions("wf-1/llm/prompt") == [2]
    # The lock was released: another thread gets it.
    assert run_in_thread(lambda: storage.save_version(version(3))) == []
    assert storage.latest_version_number("wf-1/llm/prompt") == 3


def test_locked_keeps_other_threads_out_until_released(storage: VersionStorage) -> None:
    entered = threading.Event()
    other_inside = threading.Event()

    def other() -> None:
        entered.wait(THREAD_TIMEOUT)
        with storage.locked("wf-1/llm/prompt"):
            other_inside.set()

    thread = threading.Thread(target=other, daemon=True)
    with storage.locked("wf-1/llm/prompt"):
        thread.start()
        entered.set()
        assert not other_inside.wait(0.3), "another thread entered a held lock"
    assert other_inside.wait(THREAD_TIMEOUT), "the lock was not released"
    thread.join(THREAD_TIMEOUT)


def test_concurrent_threads_numbering_under_the_lock_never_collide(
    storage: VersionStorage,
) -> None:
    """4 threads x 10 saves of latest + 1 under the lock: versions 1..40, no conflict."""
    errors: list[BaseException] = []

    def saver(name: str) -> None:
        try:
            for i in range(10):
                with storage.locked("shared"):
                    n = storage.latest_version_number("shared") + 1
                    storage.save_version(version(n, "shared", text=f"{name} {i}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=saver, args=(f"t{i}",), daemon=True) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(THREAD_TIMEOUT * 3)
    assert not any(t.is_alive() for t in threads), "a saver thread hangs"
    assert errors == []
    assert storage.list_versions("shared") == list(range(1, 41))
    texts = {storage.get_version("shared", n).text for n in range(1, 41)}
    assert texts == {f"t{t} {i}" for t in range(4) for i in range(10)}


def test_racing_saves_of_one_number_store_exactly_one(storage: VersionStorage) -> None:
    """Without the lock: 6 threads save version 1 at once; one wins, the rest conflict."""
    start = threading.Barrier(6)
    outcomes: dict[str, str] = {}

    def saver(name: str) -> None:
        start.wait(THREAD_TIMEOUT)
        try:
            storage.save_version(version(1, "race", text=f"by {name}"))
            outcomes[name] = "saved"
        except ConcurrencyError:
            outcomes[name] = "conflict"

    threads = [threading.Thread(target=saver, args=(f"t{i}",), daemon=True) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(THREAD_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a saver thread hangs"
    winners = [name for name, outcome in outcomes.items() if outcome == "saved"]
    assert len(outcomes) == 6 and len(winners) == 1, outcomes
    assert storage.list_versions("race") == [1]
    assert storage.get_version("race", 1).text == f"by {winners[0]}"
    assert storage.next_version_number("race") == 2
