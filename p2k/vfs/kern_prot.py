"""Changing a process's credentials (NetBSD ``kern_prot.c``: setuid, setgid, setgroups as one call).

Kept apart from the file calls because it is the one call that changes who the process *is*; every
later permission check reads what it sets.
"""

from __future__ import annotations

import errno

from p2k.vfs.lwproc import Cred
from p2k.vfs.sysbase import SysBase, syscall


class ProtCalls(SysBase):
    @syscall
    def setcred(self, uid: int, gid: int, groups: tuple[int, ...] = ()) -> None:
        """setuid/setgid/setgroups in one: the process becomes ``uid``/``gid``/``groups`` if its
        credentials allow (``Cred.may_become``: root may become anyone, others may only drop
        supplementary groups), else EPERM. Privileges only ever go down."""
        want = Cred(uid, gid, tuple(sorted(set(groups))))
        if not all(0 <= x < 1 << 32 for x in (uid, gid, *groups)):
            raise OSError(errno.EINVAL, "credentials out of range")
        if not self.proc.cred.may_become(want):
            raise OSError(errno.EPERM, "credentials may only be lowered")
        self.proc.cred = want
