"""One kernel process per host credential, so the kernel checks each request as its caller.

puffs hands the file server the caller's credentials with every request and p2k acts with them;
pyfuse3 gives uid, gid and pid, and the supplementary groups come from ``/proc/PID/status`` (what
libfuse's ``fuse_req_getgroups`` reads). Every process shares process 0's descriptor table, so a
FUSE file handle (a kernel fd) opened by one user can be read, written and released from any
request, which is how the host kernel uses them. The umask is 0 because the host kernel has
already applied the caller's umask to the modes it sends.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from p2k.vfs.lwproc import RFSHARE, Cred

if TYPE_CHECKING:
    from p2k.kernel import Kernel
    from p2k.vfs.syscalls import Syscalls

MAX_CACHED = 256


def proc_groups(pid: int) -> tuple[int, ...]:
    """Supplementary groups of host process ``pid``; none if it is gone (the request then carries
    only uid and gid, like a request the host kernel makes on its own behalf)."""
    if pid <= 0:
        return ()
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Groups:"):
                    return tuple(sorted({int(x) for x in line.split()[1:]}))
    except OSError:
        pass
    return ()


class CredCache:
    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self._lock = threading.Lock()
        self._procs: OrderedDict[Cred, Syscalls] = OrderedDict()
        self.root = self.get(Cred(0, 0, ()))

    def for_request(self, uid: int, gid: int, pid: int) -> Syscalls:
        groups = () if uid == 0 else proc_groups(pid)
        return self.get(Cred(uid, gid, groups))

    def get(self, cred: Cred) -> Syscalls:
        with self._lock:
            s = self._procs.get(cred)
            if s is not None:
                self._procs.move_to_end(cred)
                return s
            s = self.kernel.newproc(RFSHARE, cred=cred)
            s.umask(0)
            self._procs[cred] = s
            while len(self._procs) > MAX_CACHED:
                _, old = self._procs.popitem(last=False)
                self.kernel.release_proc(old)
            return s

    def close(self) -> None:
        with self._lock:
            for s in self._procs.values():
                self.kernel.release_proc(s)
            self._procs.clear()
