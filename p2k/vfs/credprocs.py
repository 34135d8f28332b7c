"""One kernel process per credential, for servers that act for many callers at once.

puffs hands a file server the caller's credentials with every request; the FUSE bridge and the
rump server's per-call credentials both act with them through a process of their own, so the
kernel checks each request as its caller. The processes share their parent's descriptor table,
so a descriptor opened by one caller can be read, written and released by any request (that is
how the host kernel uses FUSE file handles). Their umask is 0: the host has already applied the
caller's umask to the modes it sends.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from p2k.vfs.lwproc import RFSHARE, ROOT_CRED, Cred

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.kernel import Kernel
    from p2k.vfs.lwproc import Proc
    from p2k.vfs.syscalls import Syscalls

MAX_CACHED = 256


class CredProcs:
    """Processes by credential, children of ``parent`` (process 0 unless given), least recently
    used ones exited beyond ``MAX_CACHED``."""

    def __init__(self, kernel: Kernel, parent: Proc | None = None, *, umask: int | None = 0) -> None:
        self.kernel = kernel
        self.parent = parent
        self.umask = umask
        self._lock = threading.Lock()
        self._procs: OrderedDict[Cred, Syscalls] = OrderedDict()

    @property
    def root(self) -> Syscalls:
        return self.get(ROOT_CRED)

    def get(self, cred: Cred) -> Syscalls:
        with self._lock:
            s = self._procs.get(cred)
            if s is not None:
                self._procs.move_to_end(cred)
                return s
            s = self.kernel.newproc(RFSHARE, cred=cred, parent=self.parent)
            if self.umask is not None:
                s.umask(self.umask)
            self._procs[cred] = s
            while len(self._procs) > MAX_CACHED:
                old_cred, old = self._procs.popitem(last=False)
                if old_cred == ROOT_CRED:
                    # Never exited: the FUSE port keeps root's process for its own calls (and
                    # root's requests) without asking here each time, so the LRU order cannot
                    # show that it is in use.
                    self._procs[old_cred] = old
                    continue
                self.kernel.release_proc(old)
            return s

    def close(self) -> None:
        with self._lock:
            for s in self._procs.values():
                self.kernel.release_proc(s)
            self._procs.clear()
