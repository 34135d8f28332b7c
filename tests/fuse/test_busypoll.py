"""The readers' busy-poll policy (busypoll.BusyPoll): one poller at a time, a back-off that doubles
with each poll no request ended, and only real misses counted."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from p2k.puffs.busypoll import BusyPoll


@pytest.fixture
def fd() -> Iterator[int]:
    """A descriptor whose blocking flag the policy sets (a pipe: /dev/fuse needs a mount)."""
    r, w = os.pipe()
    try:
        yield r
    finally:
        os.close(r)
        os.close(w)


def test_one_poller_at_a_time_and_hits_keep_polling(fd: int) -> None:
    bp = BusyPoll(30_000, fd)
    assert bp.begin(1000) == 31_000
    assert bp.begin(1000) == 0  # the other reader sleeps meanwhile
    bp.reads += 1
    bp.hit()
    for _ in range(100):
        assert bp.begin(0) == 30_000
        bp.reads += 1
        bp.hit()


def test_misses_back_off_doubling_up_to_64_and_a_hit_resets(fd: int) -> None:
    bp = BusyPoll(30_000, fd)
    passed_up = []
    for _ in range(9):
        assert bp.begin(0)
        bp.miss()  # nobody read anything while it polled
        n = 0
        while not bp.begin(0):
            n += 1
        passed_up.append(n)
        bp.active = False  # that poll ends; the next round starts with the next one
    assert passed_up == [1, 2, 4, 8, 16, 32, 64, 64, 64]
    assert bp.begin(0)
    bp.reads += 1
    bp.hit()
    assert bp.backoff == 0 and bp.begin(0)


def test_a_request_the_other_reader_took_is_not_a_miss(fd: int) -> None:
    bp = BusyPoll(30_000, fd)
    assert bp.begin(0)
    bp.reads += 1  # read by the reader that woke from poll(), not by the poller
    bp.miss()
    assert bp.skip == 0 and bp.begin(0)


def test_zero_never_polls(fd: int) -> None:
    bp = BusyPoll(0, fd)
    assert not any(bp.begin(t) for t in range(10))


def test_a_stream_of_misses_sleeps_in_blocking_reads_then_tries_again(fd: int) -> None:
    """At the longest back-off the descriptor goes back to blocking (a blocking read wakes one
    reader a request, poll() all of them) for BLOCKING_READS requests, then polling resumes."""
    bp = BusyPoll(30_000, fd)
    assert not os.get_blocking(fd)
    while bp.backoff < BusyPoll.LONGEST:
        while not bp.begin(0):
            pass
        bp.miss()
    assert not os.get_blocking(fd)
    while not bp.begin(0):
        pass
    bp.miss()  # one more at the longest
    assert os.get_blocking(fd)
    for _ in range(BusyPoll.BLOCKING_READS - 1):
        bp.count()
    assert os.get_blocking(fd)
    bp.count()
    assert not os.get_blocking(fd) and bp.backoff == 0 and bp.begin(0)


def test_zero_leaves_the_descriptor_blocking(fd: int) -> None:
    BusyPoll(0, fd)
    assert os.get_blocking(fd)
