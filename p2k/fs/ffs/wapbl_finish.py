"""``ffs_wapbl_replay_finish``: after a log is replayed to disk, free the inodes it lists.

The inode list of a WAPBL log names inodes that were allocated but had no name when the log was
written: files unlinked while still open, and inodes caught between allocation and
initialisation. The replaying read-write mount completes their deletion — through the ordinary
last-reference path (truncate, then free) for an inode with zero links, and with a plain
``ffs_vfree`` for one whose mode is still zero — so the file system is left as if the files had
been closed. Runs once the mount is writable, as NetBSD runs it from ffs_wapbl_start.
"""

from __future__ import annotations

from p2k.fs.ffs.inode import IFDIR, IFMT
from p2k.hyper.console import console

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.fs.ffs.ffs_vfsops import FfsMount

log = console("p2k.ffs")


def replay_finish(m: FfsMount, inodes: list[tuple[int, int]]) -> None:
    for ino, imode in inodes:
        try:
            _finish_one(m, ino, imode)
        except OSError as e:
            log.warning("%s: unable to clean up inode %d after replay: %s", m.mountpoint_path, ino, e.strerror)


def _finish_one(m: FfsMount, ino: int, imode: int) -> None:
    ip = m.read_dinode(ino)
    if ip.mode == 0:
        if _in_use(m, ino):
                    m.alloc.free_inode(ino, imode & IFMT == IFDIR)
        return
    if ip.nlink != 0:
        return  # NetBSD asserts this cannot happen; a named inode is left alone
    vc = m.kernel.vcache
    vp = vc.vget(m, ino)
    vc.vrele(vp)  # the last reference to an unlinked inode: vop_inactive frees it


def _in_use(m: FfsMount, ino: int) -> bool:
    c, i = divmod(ino, m.fs.fs_ipg)
    bp, cg = m.alloc.cg(c)
    return bool(bp.data[cg.cg_iusedoff + i // 8] >> (i % 8) & 1)
