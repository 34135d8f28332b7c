"""File descriptors stay the lowest free number under any mix of open, close, dup, dup2 and
F_DUPFD, now that the table finds it without scanning (checked against the scan it replaced)."""

from __future__ import annotations

import errno
import random

import pytest

from p2k.vfs.file import FdTable, File


class _Cache:
    def vrele(self, vp: object) -> None:
        pass


def _lowest(taken: set[int], floor: int = 0) -> int:
    fd = floor
    while fd in taken:
        fd += 1
    return fd


@pytest.mark.parametrize("seed", range(20))
def test_descriptors_are_the_lowest_free(seed: int) -> None:
    rng = random.Random(seed)
    t = FdTable(_Cache(), limit=200)  # type: ignore[arg-type]
    for _ in range(3000):
        taken = set(t.files)
        op = rng.random()
        if op < 0.45 or not taken:
            want = _lowest(taken)
            if want >= t.limit:
                with pytest.raises(OSError) as e:
                    t.alloc(File(None, 0))  # type: ignore[arg-type]
                assert e.value.errno == errno.EMFILE
                continue
            assert t.alloc(File(None, 0)) == want  # type: ignore[arg-type]
        elif op < 0.8:
            t.close(rng.choice(sorted(taken)))
        elif op < 0.9:
            fd2 = rng.randrange(t.limit)
            assert t.dup2(rng.choice(sorted(taken)), fd2) == fd2
        else:
            floor = rng.randrange(t.limit // 2)
            want = _lowest(taken, floor)
            if want >= t.limit:
                with pytest.raises(OSError):
                    t.dup(rng.choice(sorted(taken)), floor)
                continue
            assert t.dup(rng.choice(sorted(taken)), floor) == want
        if rng.random() < 0.01:
            t = t.copy()  # a forked table goes on the same way
    assert len(t.files) > 0
