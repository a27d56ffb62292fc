"""The real clock and id source behind the domain's ``Clock`` and ``IdFactory`` ports."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class TimeOrderedIds:
    """Event ids in UUIDv7 (RFC 9562): the Unix time in milliseconds, then random bits.

    Ids made one after another sort one after another, so each append adds to
    the right-hand end of the log's ``event_id`` index instead of a random
    page of it: a 100-event transaction dirties a few index pages, not up to
    a hundred, and writes that much less to the WAL before its fsync. Bare
    inserts of 100-event batches went 1.33x faster with these ids than with
    random (version 4) ones, at ``synchronous=FULL``, in the same run.

    The 12 bits after the milliseconds hold the fraction of the millisecond
    (RFC 9562 section 6.2, method 3), and one generator never goes backwards:
    should the clock stand still or step back, the next id takes the last
    stamp plus one. So the ids of one process sort in the order they were
    made. The last 62 bits are random, so processes need not coordinate.
    """

    def __init__(self, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._clock_ns = clock_ns
        self._last_stamp = -1
        self._lock = threading.Lock()

    def new_id(self) -> uuid.UUID:
        millis, rest = divmod(self._clock_ns(), 1_000_000)
        stamp = (millis & _MILLIS_MASK) << 12 | rest * 4096 // 1_000_000
        with self._lock:
            stamp = max(stamp, self._last_stamp + 1)
            self._last_stamp = stamp
        random_bits = int.from_bytes(os.urandom(8)) & _RANDOM_MASK
        value = (
            (stamp >> 12) << 80
            | 0x7 << 76  # version 7
            | (stamp & 0xFFF) << 64
            | 0b10 << 62  # the RFC 4122/9562 variant
            | random_bits
        )
        return uuid.UUID(int=value)

    def new_run_id(self) -> uuid.UUID:
        # Random from the first character: runs are named by a short prefix
        # (``runs show 3f2a9c1e``), and a time-ordered id would give every run
        # of the same minute the same eight characters.
        return uuid.uuid4()


_MILLIS_MASK = (1 << 48) - 1
_RANDOM_MASK = (1 << 62) - 1
