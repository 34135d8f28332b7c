"""Clock and randomness: the kernel's only sources of time and entropy."""

from __future__ import annotations

import os
import time


def now_ns() -> int:
    """Wall-clock time in nanoseconds, what file timestamps record."""
    return time.time_ns()


def monotonic_ns() -> int:
    return time.monotonic_ns()


def random_u32() -> int:
    """Fresh entropy for inode generation numbers and fs ids."""
    return int.from_bytes(os.urandom(4), "little")


def random_bytes(n: int) -> bytes:
    return os.urandom(n)
