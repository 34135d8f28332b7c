"""Permission checks shared by every file system (NetBSD ``genfs_can_access`` and friends).

The checks take the attributes the driver reports, so a driver never writes one of its own.
"""

from __future__ import annotations

import errno
import stat as stat_mod

from p2k.vfs.lwproc import Cred
from p2k.vfs.vattr import AclVattr, Vattr

R_OK, W_OK, X_OK = 4, 2, 1


def can_access(cred: Cred, va: Vattr, want: int) -> bool:
    """``want`` is a mask of R_OK/W_OK/X_OK. Root may do anything but execute a file that has no
    execute bit at all (directories are always searchable for root)."""
    if cred.uid == 0:
        if want & X_OK and not stat_mod.S_ISDIR(va.mode) and not va.mode & 0o111:
            return False
        return True
    if type(va) is AclVattr:
        from p2k.vfs.acl import acl_permits  # only a mount enforcing ACLs makes an AclVattr

        return acl_permits(cred, va, va.acl, want)
    if cred.uid == va.uid:
        bits = (va.mode >> 6) & 7
    elif cred.in_group(va.gid):
        bits = (va.mode >> 3) & 7
    else:
        bits = va.mode & 7
    return want & bits == want


def check_access(cred: Cred, va: Vattr, want: int, what: str = "") -> None:
    if not can_access(cred, va, want):
        raise OSError(errno.EACCES, f"permission denied{': ' + what if what else ''}")


def check_sticky(cred: Cred, dva: Vattr, va: Vattr) -> None:
    """In a sticky directory only the file's owner, the directory's owner or root may remove or
    rename an entry."""
    if dva.mode & stat_mod.S_ISVTX and cred.uid not in (0, va.uid, dva.uid):
        raise OSError(errno.EPERM, "sticky directory: not the owner")


def check_owner(cred: Cred, va: Vattr) -> None:
    if cred.uid != 0 and cred.uid != va.uid:
        raise OSError(errno.EPERM, "operation not permitted: not the owner")


def chmod_mode(cred: Cred, va: Vattr, mode: int) -> int:
    """The mode chmod really sets. Only the owner (or root) may chmod. A non-root caller who asks
    for set-gid on a file of a group it is not in gets the mode without set-gid, silently, as on
    Linux (NetBSD says EPERM); the sticky bit on a file is kept, as on Linux (NetBSD says EFTYPE).
    Linux's answers are what programs running over the FUSE bridge expect."""
    check_owner(cred, va)
    mode &= 0o7777
    if cred.uid != 0 and mode & stat_mod.S_ISGID and not cred.in_group(va.gid):
        mode &= ~stat_mod.S_ISGID
    return mode


def check_chown(cred: Cred, va: Vattr, uid: int | None, gid: int | None) -> None:
    """POSIX _POSIX_CHOWN_RESTRICTED: only root gives a file away; the owner may change the
    group to one of its own groups."""
    if cred.uid == 0:
        return
    if uid is not None and uid != va.uid:
        raise OSError(errno.EPERM, "only root may change the owner")
    if cred.uid != va.uid:
        raise OSError(errno.EPERM, "not the owner")
    if gid is not None and gid != va.gid and not cred.in_group(gid):
        raise OSError(errno.EPERM, "not a member of the target group")


def killpriv_mode(cred: Cred, va: Vattr) -> int | None:
    """The mode a regular file keeps after a write or truncate by ``cred``, or None if unchanged.

    Anyone but root drops set-uid, and set-gid when the group may execute (a set-gid file without
    group execute marks mandatory locking, not privilege): Linux's ``should_remove_suid``, so that
    nobody can plant code in a privileged program."""
    if cred.uid == 0 or not stat_mod.S_ISREG(va.mode):
        return None
    kill = va.mode & stat_mod.S_ISUID
    if va.mode & stat_mod.S_ISGID and va.mode & stat_mod.S_IXGRP:
        kill |= stat_mod.S_ISGID
    return (va.mode & 0o7777 & ~kill) if kill else None
