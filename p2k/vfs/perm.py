"""Permission checks shared by every file system (NetBSD ``genfs_can_access`` and friends).

The checks take the attributes the driver reports, so a driver never writes one of its own.
"""

from __future__ import annotations

import errno
import stat as stat_mod

from p2k.vfs.lwproc import Cred
from p2k.vfs.vattr import Vattr

R_OK, W_OK, X_OK = 4, 2, 1


def can_access(cred: Cred, va: Vattr, want: int) -> bool:
    """``want`` is a mask of R_OK/W_OK/X_OK. Root may do anything but execute a file that has no
    execute bit at all (directories are always searchable for root)."""
    if cred.uid == 0:
        if want & X_OK and not stat_mod.S_ISDIR(va.mode) and not va.mode & 0o111:
            return False
        return True
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
    """The mode chmod really sets: a non-root caller cannot set the sticky bit on a file or keep
    set-gid on a file of a group it is not in (silently cleared, as BSD does)."""
    check_owner(cred, va)
    mode &= 0o7777
    if cred.uid != 0:
        if not stat_mod.S_ISDIR(va.mode) and mode & stat_mod.S_ISVTX:
            raise OSError(errno.EFTYPE if hasattr(errno, "EFTYPE") else errno.EPERM,
                          "only root may set the sticky bit on a file")
        if mode & stat_mod.S_ISGID and not cred.in_group(va.gid):
            raise OSError(errno.EPERM, "set-gid on a file of a group the caller is not in")
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
