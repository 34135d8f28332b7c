"""The host caller of a FUSE request as a kernel process (``p2k.vfs.credprocs``).

pyfuse3 gives uid, gid and pid; the supplementary groups come from the host
(``p2k.hyper.hostcred.proc_groups``).
"""

from __future__ import annotations

from p2k.hyper.hostcred import proc_groups
from p2k.vfs.credprocs import CredProcs
from p2k.vfs.lwproc import Cred

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.vfs.syscalls import Syscalls


def host_cred(uid: int, gid: int, pid: int) -> Cred:
    return Cred(uid, gid, () if uid == 0 else proc_groups(pid))


class CredCache(CredProcs):
    def for_request(self, uid: int, gid: int, pid: int) -> Syscalls:
        return self.get(host_cred(uid, gid, pid))


__all__ = ["CredCache", "host_cred", "proc_groups"]
