"""Memory accounting: the one budget that the buffer cache and tmpfs both draw on.

rumpuser's RUMP_MEMLIMIT bounds the whole kernel. Here every cache charges what it holds; when a
charge would pass the limit, the registered reclaimers (the buffer cache's clean-buffer purge,
dirty write-back; a qcow2 image's L2 tables) are asked to give memory back before the charge is
refused. Accounting is in bytes of payload, which is what dominates: a 64 KiB block costs 64 KiB.

Memory the kernel does not hold itself but keeps for its devices — the readers of containers
(qcow2 L2 tables, a gzip index, xz decoders), below the kernel in ``p2k.hyper`` — is charged here
too: a backend learns the account when it is registered (``Backend.attach_mem``).
"""

from __future__ import annotations

import errno

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from collections.abc import Callable

    Reclaimer = Callable[[int], int]  # annotations only (p2k.hyper.containers says why)
    """Asked to free at least ``n`` bytes; returns how many it freed."""


class MemAccount:
    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0
        self._reclaimers: list[Reclaimer] = []
        self._turn = 0

    def add_reclaimer(self, fn: Reclaimer) -> None:
        self._reclaimers.append(fn)

    def remove_reclaimer(self, fn: Reclaimer) -> None:
        """Forget ``fn`` (a closed device's cache); nothing if it was never added."""
        if fn in self._reclaimers:
            self._reclaimers.remove(fn)

    def available(self) -> int | None:
        return None if self.limit is None else self.limit - self.used

    def try_charge(self, n: int) -> bool:
        """Charge ``n`` bytes, reclaiming from caches first if needed; False when it cannot fit."""
        if self.limit is not None and self.used + n > self.limit:
            need = self.used + n - self.limit
            # Each shortage starts with the next cache in turn, so that the caches compete for the one
            # budget: always asking the buffer cache first would let a cache asked second (L2 tables)
            # keep everything while file data was evicted under it.
            fns = self._reclaimers
            turn = self._turn % len(fns) if fns else 0
            self._turn = turn + 1
            for fn in fns[turn:] + fns[:turn]:
                need -= fn(need)
                if need <= 0:
                    break
            if self.used + n > self.limit:
                return False
        self.used += n
        if self.used > self.peak:
            self.peak = self.used
        return True

    def charge(self, n: int) -> None:
        """Charge or raise ENOMEM; used by callers that cannot do without the memory."""
        if not self.try_charge(n):
            raise OSError(errno.ENOMEM, f"kernel memory limit of {self.limit} bytes reached")

    def uncharge(self, n: int) -> None:
        self.used -= n
        if self.used < 0:
            self.used = 0
