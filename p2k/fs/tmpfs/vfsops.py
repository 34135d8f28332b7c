"""tmpfs mount: a file system in kernel memory, charged to the kernel's memory limit.

Mount options as NetBSD's mount_tmpfs takes them: ``size`` (bytes, k/m/g suffix) and ``nodes``
bound the file system; ``mode``, ``uid``, ``gid`` set the root directory. Past either bound, or
past RUMP_MEMLIMIT, a write or create fails with ENOSPC, as on NetBSD.
"""

from __future__ import annotations

import errno
import stat as stat_mod

from p2k.fs.tmpfs.extattr import (
    tmpfs_deleteextattr,
    tmpfs_getextattr,
    tmpfs_listextattr,
    tmpfs_setextattr,
    xattr_bytes,
)
from p2k.fs.tmpfs.node import NODE_OVERHEAD, TmpDir, TmpNode
from p2k.fs.tmpfs.vnops import (
    tmpfs_create,
    tmpfs_exchange,
    tmpfs_getattr,
    tmpfs_isempty,
    tmpfs_link,
    tmpfs_lookup,
    tmpfs_mkdir,
    tmpfs_read,
    tmpfs_readdir,
    tmpfs_readinto,
    tmpfs_readlink,
    tmpfs_remove,
    tmpfs_rename,
    tmpfs_rmdir,
    tmpfs_setattr,
    tmpfs_stat_inodes,
    tmpfs_symlink,
    tmpfs_write,
)
from p2k.hyper import now_ns, parse_memsize, random_u32
from p2k.vfs.mount import Mount
from p2k.vfs.vattr import VDIR, StatVFS

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from typing import Any

    from p2k.kernel import Kernel
    from p2k.vfs.vnode import Vnode

ROOT_INO = 2


class TmpfsMount(Mount):
    fstype = "tmpfs"
    namemax = 255
    maxfilesize = (1 << 63) - 1
    supports_exchange = True

    def __init__(self, kernel: Kernel, flags: int, data: dict[str, Any]) -> None:
        super().__init__(kernel, flags, data)
        self.size_limit = _opt_size(data.get("size"))
        self.nodes_limit = _opt_int(data.get("nodes"), "nodes")
        self.acls = bool({"acls", "posix1eacls"} & set(data))  # POSIX.1e ACLs enforced (as FFS's -o acls)
        self.used = 0
        self.nodes: dict[int, TmpNode] = {}
        self.next_ino = ROOT_INO
        root = self.new_node(VDIR | (_opt_int(data.get("mode"), "mode", 8) or 0o755),
                             _opt_int(data.get("uid"), "uid") or 0, _opt_int(data.get("gid"), "gid") or 0)
        root.dir = TmpDir()
        root.parent = root.ino
        root.nlink = 2

    # ---- accounting ------------------------------------------------------------------------------
    def check_space(self, n: int) -> None:
        if self.size_limit is not None and self.used + n > self.size_limit:
            raise OSError(errno.ENOSPC, "tmpfs size limit reached")

    def charge(self, n: int) -> None:
        self.check_space(n)
        if not self.kernel.mem.try_charge(n):
            raise OSError(errno.ENOSPC, "kernel memory limit reached")
        self.used += n

    def uncharge(self, n: int) -> None:
        self.used -= n
        self.kernel.mem.uncharge(n)

    def new_node(self, mode: int, uid: int, gid: int) -> TmpNode:
        if self.nodes_limit is not None and len(self.nodes) >= self.nodes_limit:
            raise OSError(errno.ENOSPC, "tmpfs node limit reached")
        self.charge(NODE_OVERHEAD)
        ino = self.next_ino
        self.next_ino += 1
        n = TmpNode(ino, mode, uid, gid, now_ns(), random_u32())
        self.nodes[ino] = n
        return n

    # ---- VFS operations --------------------------------------------------------------------------
    def vfs_root_ino(self) -> int:
        return ROOT_INO

    def vfs_loadvnode(self, ino: int) -> tuple[object, int]:
        n = self.nodes.get(ino)
        if n is None:
            raise OSError(errno.ENOENT, f"tmpfs: no node {ino}")
        return n, stat_mod.S_IFMT(n.mode)

    def vop_inactive(self, vp: Vnode) -> bool:
        n: TmpNode = vp.data  # type: ignore[assignment]
        if n.nlink <= 0:
            self._free(n)
            return True
        return False

    def _free(self, n: TmpNode) -> None:
        if self.nodes.pop(n.ino, None) is None:
            return
        freed = NODE_OVERHEAD + len(n.target) + xattr_bytes(n)
        n.xattrs = None
        if n.pages:
            freed += sum(len(p) for p in n.pages.values())
            n.pages.clear()
        self.uncharge(freed)

    def vfs_statvfs(self) -> StatVFS:
        bsize = 4096
        if self.size_limit is not None:
            total = self.size_limit // bsize
        else:
            avail_mem = self.kernel.mem.available()
            total = (self.used + (avail_mem if avail_mem is not None else 1 << 40)) // bsize
        free = max(total - self.used // bsize, 0)
        files = self.nodes_limit if self.nodes_limit is not None else max(len(self.nodes) + (1 << 20), 1)
        ffree = max(files - len(self.nodes), 0)
        return StatVFS(f_bsize=bsize, f_frsize=bsize, f_blocks=total, f_bfree=free, f_bavail=free,
                       f_files=files, f_ffree=ffree, f_favail=ffree, f_fsid=self.fsid,
                       f_flag=self.flags & 1, f_namemax=self.namemax)

    def vfs_unmount(self, force: bool = False) -> None:
        self.uncharge(self.used)
        self.nodes.clear()

    # ---- the vnode operations vector (NetBSD's tmpfs_vnodeop_entries) ----------------------------
    vfs_stat_inodes = tmpfs_stat_inodes
    vop_lookup = tmpfs_lookup
    vop_readdir = tmpfs_readdir
    vop_isempty = tmpfs_isempty
    vop_getattr = tmpfs_getattr
    vop_setattr = tmpfs_setattr
    vop_readlink = tmpfs_readlink
    vop_create = tmpfs_create
    vop_mkdir = tmpfs_mkdir
    vop_symlink = tmpfs_symlink
    vop_link = tmpfs_link
    vop_remove = tmpfs_remove
    vop_rmdir = tmpfs_rmdir
    vop_rename = tmpfs_rename
    vop_exchange = tmpfs_exchange
    vop_read = tmpfs_read
    vop_readinto = tmpfs_readinto
    vop_write = tmpfs_write
    vop_getextattr = tmpfs_getextattr
    vop_listextattr = tmpfs_listextattr
    vop_setextattr = tmpfs_setextattr
    vop_deleteextattr = tmpfs_deleteextattr


def _opt_size(v: object) -> int | None:
    if v is None or v == "" or v == 0 or v == "0":
        return None
    if isinstance(v, int):
        return v
    try:
        return parse_memsize(str(v), "tmpfs size")
    except ValueError as e:
        raise OSError(errno.EINVAL, str(e)) from None


def _opt_int(v: object, name: str, base: int = 10) -> int | None:
    if v is None or v == "":
        return None
    if isinstance(v, int):
        return v
    try:
        return int(str(v), base)
    except ValueError:
        raise OSError(errno.EINVAL, f"tmpfs {name}: invalid value {v!r}") from None
