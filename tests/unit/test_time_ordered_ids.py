"""The id source behind ``IdFactory``: UUIDv7, in the order the ids were made."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

from autoopt.infrastructure.clock import TimeOrderedIds

MOMENT = datetime(2026, 12, 5, 10, 30, tzinfo=UTC)
MOMENT_NS = int(MOMENT.timestamp()) * 1_000_000_000


def stepping_clock(*offsets_ns: int) -> Iterator[int]:
    yield from (MOMENT_NS + offset for offset in offsets_ns)


def embedded_millis(value: uuid.UUID) -> int:
    return value.int >> 80


def test_ids_are_version_7_with_the_rfc_variant() -> None:
    ids = TimeOrderedIds()
    made = [ids.new_id() for _ in range(1000)]
    assert {i.version for i in made} == {7}
    assert {i.variant for i in made} == {uuid.RFC_4122}
    assert len(set(made)) == 1000


def test_an_id_carries_the_clocks_milliseconds() -> None:
    clock = stepping_clock(123_456_789)
    made = TimeOrderedIds(lambda: next(clock)).new_id()
    assert embedded_millis(made) == MOMENT_NS // 1_000_000 + 123
    # The 12 bits after the version: 456,789 ns of the millisecond, in 4096ths.
    assert (made.int >> 64) & 0xFFF == 456_789 * 4096 // 1_000_000


def test_ids_sort_in_the_order_they_were_made() -> None:
    ids = TimeOrderedIds()
    made = [ids.new_id() for _ in range(10_000)]
    assert made == sorted(made)
    assert [str(i) for i in made] == sorted(str(i) for i in made)  # as the log stores them


def test_a_clock_that_stands_still_or_steps_back_never_reorders_ids() -> None:
    clock = stepping_clock(5_000_000, 5_000_000, 5_000_000, 1_000_000, 9_000_000)
    ids = TimeOrderedIds(lambda: next(clock))
    made = [ids.new_id() for _ in range(5)]
    assert made == sorted(made)
    assert len({i.int >> 64 for i in made}) == 5  # every stamp differs
    assert embedded_millis(made[-1]) == MOMENT_NS // 1_000_000 + 9


def test_run_ids_are_random_from_the_first_character() -> None:
    # Runs are named by a short prefix; ids made in the same millisecond
    # must still differ in their first eight characters.
    clock = stepping_clock(*[0] * 200)
    ids = TimeOrderedIds(lambda: next(clock))
    runs = [ids.new_run_id() for _ in range(200)]
    assert {r.version for r in runs} == {4}
    assert len({str(r)[:8] for r in runs}) == 200
