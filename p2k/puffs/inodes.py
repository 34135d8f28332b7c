"""FUSE inode numbers ↔ the file system's inode numbers, and the host kernel's lookup counts.

The FUSE node id of a file *is* its inode number in the mounted file system (as fuse2fs does), with
one exception FUSE forces on us: the root must be node 1, so the root's inode number and 1 swap
places. Because a node id names an inode rather than a held vnode, the bridge keeps no vnode
referenced between requests: the host's dentry cache may remember millions of names, but the
kernel's vnode cache stays bounded by kern.maxvnodes (RUMP_NVNODES), and a vnode reclaimed in
between is simply loaded again on the next request (``VFS_VGET``, as an NFS server does).

The lookup counts are still kept, exactly as FUSE defines them, so that ``forget`` can be checked
and the number of names the host remembers shows in the statistics.
"""

from __future__ import annotations

import threading

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.vfs.vattr import Vattr

FUSE_ROOT = 1


class InodeMap:
    def __init__(self, root_ino: int) -> None:
        self.root_ino = root_ino
        self.nlookup: dict[int, int] = {}
        self.forgets = 0
        # Ports count lookups in worker threads while forgets arrive on the event loop.
        self.lock = threading.Lock()

    def to_fuse(self, ino: int) -> int:
        """The node id the host sees for inode ``ino``."""
        if ino == self.root_ino:
            return FUSE_ROOT
        if ino == FUSE_ROOT:
            return self.root_ino
        return ino

    def node(self, va: Vattr) -> int:
        """The node id for a file with attributes ``va`` (its inode number, mapped)."""
        return self.to_fuse(va.ino)

    def to_fs(self, fino: int) -> int:
        """The file system's inode number for a node id (the mapping is its own inverse)."""
        return self.to_fuse(fino)

    def remember(self, fino: int, n: int = 1) -> None:
        """The host now holds ``n`` more lookups of ``fino`` (lookup, create, readdirplus)."""
        with self.lock:
            self.nlookup[fino] = self.nlookup.get(fino, 0) + n

    def forget(self, fino: int, n: int, *, undo: bool = False) -> bool:
        """The host dropped ``n`` lookups (``undo``: a counted entry never reached it, such as a
        readdirplus entry that did not fit the reply). True if nothing remembers ``fino`` now."""
        with self.lock:
            left = self.nlookup.get(fino, 0) - n
            if not undo:
                self.forgets += 1
            if left > 0:
                self.nlookup[fino] = left
                return False
            self.nlookup.pop(fino, None)
            return True

    def __len__(self) -> int:
        return len(self.nlookup)
