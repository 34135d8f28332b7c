"""``CredProcs`` never exits root's process, however many other callers push it out of its LRU.

The FUSE port takes root's process once and uses it for its own calls and for every request made
by uid 0 without asking the cache again; had the cache exited it after ``MAX_CACHED`` other
credentials, those calls would run in a process whose root and working directory were released.
"""

from __future__ import annotations

import p2k
from p2k.vfs.credprocs import MAX_CACHED, CredProcs
from p2k.vfs.lwproc import Cred


def test_root_survives_more_callers_than_the_cache_holds() -> None:
    k = p2k.Kernel(env={})
    try:
        procs = CredProcs(k)
        root = procs.root
        others = [procs.get(Cred(1000 + i, 1000 + i)) for i in range(MAX_CACHED + 50)]
        assert not root.proc.exited and procs.root is root
        assert others[0].proc.exited and not others[-1].proc.exited  # the LRU still evicts the rest
        assert root.listdir("/") is not None  # and root's process still works
        procs.close()
        assert root.proc.exited
    finally:
        k.halt()
