"""How the direct transport's readers wait for requests: how many read /dev/fuse, and when one that
finds it empty asks again instead of sleeping (``devfuse.Session._loop`` runs the policy)."""

from __future__ import annotations

import os

READERS = 2 if len(os.sched_getaffinity(0)) > 1 else 1  # the CPUs this process may run on
"""Threads reading /dev/fuse (Session.serve says why more than one)."""
BUSY_POLL_US = 30 if READERS > 1 else 0
"""How long (µs) a reader that finds no request waiting asks again before it sleeps (``-o
busy_poll``), as Linux's busy polling of sockets does. A synchronous caller's next request comes
a few microseconds after its reply; a reader asleep in the host kernel takes longer to wake than
that, on a virtual CPU above all. One reader at a time polls, so the caller keeps the other CPU;
with one CPU polling would only take it from the caller, so it is off. Measured on the 2-vCPU
machine against fuse2fs, in alternated runs: lstat of 10,000 names 0.93 → 1.25–1.32; reads of
10,000 small files 1.04 → 1.53 (read-write mount) and 1.53 → 1.97 (read-only); daemon CPU per
request +10–25%. 20–50 µs measured alike, 100 worse (the spin competes with the caller). An idle
daemon does not poll: only for this long after each request."""


class BusyPoll:
    """When a reader that finds /dev/fuse empty asks again instead of sleeping (``BUSY_POLL_US``).

    One reader polls at a time, and only after answering a request itself. A poll that ends with no
    request read by any reader is a miss: the readers then pass up the next 1, 2, 4 … 64 chances to
    poll, and a poll that catches a request starts them from none again. A caller's synchronous
    stats and opens hit (about 85–95% of polls); a stream of reads paced by the host's readahead
    misses, and polling beside it took the CPU its reader needed (a 256 MiB read: 1.10 × fuse2fs
    without polling, 0.87 with it on every chance, 1.01 with the back-off). A poll that ends
    because the other reader took the request is not a miss: the stats would back off for it.

    Polling needs the descriptor non-blocking, and then a reader sleeps in poll(), which wakes every
    sleeping reader for each request where a blocking read wakes one. So once the back-off is at its
    longest the descriptor goes back to blocking for ``BLOCKING_READS`` requests, after which
    polling is tried again (that 256 MiB read: 1.02–1.10, as without polling)."""

    BLOCKING_READS = 1024
    LONGEST = 64

    def __init__(self, ns: int, fd: int) -> None:
        self.ns = ns
        self.fd = fd
        self.reads = 0  # requests read by any reader (plain counts: the readers race, harmlessly)
        self.active = False
        self.skip = self.backoff = self.seen = 0
        self.blocking_until = 0  # while the descriptor is blocking: the read count that ends it
        if ns:
            os.set_blocking(fd, False)

    def count(self) -> None:
        """One more request read (by either reader)."""
        self.reads += 1
        if self.blocking_until and self.reads >= self.blocking_until:
            self.blocking_until = self.backoff = self.skip = 0
            os.set_blocking(self.fd, False)

    def begin(self, now: int) -> int:
        """The time to stop polling, or 0: sleep now."""
        if self.active or not self.ns:
            return 0
        if self.skip:
            self.skip -= 1
            return 0
        self.active, self.seen = True, self.reads
        return now + self.ns

    def hit(self) -> None:
        self.active, self.backoff = False, 0

    def miss(self) -> None:
        self.active = False
        if self.reads != self.seen:
            return
        if self.backoff == self.LONGEST and not self.blocking_until:
            self.blocking_until = self.reads + self.BLOCKING_READS
            os.set_blocking(self.fd, True)
        self.backoff = min(max(1, self.backoff * 2), self.LONGEST)
        self.skip = self.backoff
