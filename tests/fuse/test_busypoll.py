"""The readers' busy-poll policy (devfuse.BusyPoll): one poller at a time, a back-off that doubles
with each poll no request ended, and only real misses counted."""

from __future__ import annotations

from p2k.puffs.devfuse import BusyPoll


def test_one_poller_at_a_time_and_hits_keep_polling() -> None:
    bp = BusyPoll(30_000)
    assert bp.begin(1000) == 31_000
    assert bp.begin(1000) == 0  # the other reader sleeps meanwhile
    bp.reads += 1
    bp.hit()
    for _ in range(100):
        assert bp.begin(0) == 30_000
        bp.reads += 1
        bp.hit()


def test_misses_back_off_doubling_up_to_64_and_a_hit_resets() -> None:
    bp = BusyPoll(30_000)
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


def test_a_request_the_other_reader_took_is_not_a_miss() -> None:
    bp = BusyPoll(30_000)
    assert bp.begin(0)
    bp.reads += 1  # read by the reader that woke from poll(), not by the poller
    bp.miss()
    assert bp.skip == 0 and bp.begin(0)


def test_zero_never_polls() -> None:
    bp = BusyPoll(0)
    assert not any(bp.begin(t) for t in range(10))
