"""Reply buffers for reads over the socket (tcp://, and unix:// clients without an arena).

Why: ``read`` makes a new ``bytes`` per call — for tmpfs two copies (page slices, then a join),
and for an 8 MiB read a fresh 8 MiB allocation whose pages the host faults in one by one, every
call. ``readinto`` a buffer that stays mapped copies once and faults never; the reply then goes
out of that buffer with ``sendmsg``. A buffer is lent for one call and its send, so the pool's
size, not the number of clients, bounds the memory it holds; when all are lent (slow readers
hold theirs for up to the send timeout) a call reads the old way.
"""

from __future__ import annotations

import threading


class BufferPool:
    def __init__(self, count: int, size: int) -> None:
        self.size = size
        self._left = count  # not yet allocated
        self._free: list[bytearray] = []
        self._lock = threading.Lock()

    def take(self) -> bytearray | None:
        with self._lock:
            if self._free:
                return self._free.pop()
            if self._left <= 0:
                return None
            self._left -= 1
        return bytearray(self.size)

    def give(self, buf: bytearray) -> None:
        with self._lock:
            self._free.append(buf)
