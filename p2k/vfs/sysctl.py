"""The kernel's sysctl tree (NetBSD sysctl(3)): named integers to read, a few to write.

The nodes are those a person testing vnode reclaim or the buffer cache wants to watch and change
on a running kernel, locally (``k.sysctl``, ``p2k sysctl``) or remotely (``rump.sysctl``):
``kern.maxvnodes`` (writable, bounded as NetBSD bounds it), the vnode counters and reclaims under
``vfs.vnode``, the buffer cache under ``vfs.bufcache`` and memory-limit use under ``kern.mem``.
Writing needs root in the kernel, as ``sysctl -w`` does; the check is the caller's, in
``Syscalls.sysctl``.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TYPE_CHECKING

from p2k.slotted import Frozen

if TYPE_CHECKING:
    from p2k.kernel import Kernel

INT_MAX = (1 << 31) - 1
VNODE_COST = 2048
"""Bytes one cached vnode costs with its inode and name-cache share (NetBSD's VNODE_COST counts
the C structures; Python objects are bigger). kern.maxvnodes is capped at 75% of the memory limit
divided by this, as NetBSD caps it at 75% of kernel memory."""


class Node(Frozen):
    __slots__ = ("name", "get", "set", "doc")
    name: str
    get: Callable[[Kernel], int]
    set: Callable[[Kernel, int], None] | None
    doc: str

    def __init__(self, name: str, get: Callable[[Kernel], int], set: Callable[[Kernel, int], None] | None = None,
                 doc: str = "") -> None:
        self._set(name=name, get=get, set=set, doc=doc)


def _set_maxvnodes(k: Kernel, value: int) -> None:
    """NetBSD's sysctl_kern_maxvnodes: a non-positive count is EINVAL, one beyond what memory
    allows is cut to that; lowering it reclaims unused vnodes at once."""
    if value <= 0 or value > INT_MAX:
        raise OSError(errno.EINVAL, f"kern.maxvnodes: invalid value {value}")
    if k.mem.limit:
        value = min(value, max(1, k.mem.limit * 3 // 4 // VNODE_COST))
    k.vcache.set_maxvnodes(value)


NODES: tuple[Node, ...] = (
    Node("hw.ncpu", lambda k: k.params.ncpu, doc="virtual CPUs (RUMP_NCPU)"),
    Node("hw.usermem", lambda k: k.mem.limit or 0, doc="memory limit in bytes (RUMP_MEMLIMIT), 0 if none"),
    Node("kern.maxvnodes", lambda k: k.vcache.maxvnodes, _set_maxvnodes, "vnode cache size (RUMP_NVNODES)"),
    Node("kern.memlimit", lambda k: k.mem.limit or 0, doc="memory limit in bytes, 0 if none"),
    Node("kern.mem.used", lambda k: k.mem.used, doc="bytes of the memory limit in use"),
    Node("kern.mem.peak", lambda k: k.mem.peak, doc="most bytes ever in use"),
    Node("vfs.vnode.total", lambda k: k.vcache.total, doc="vnodes in the cache"),
    Node("vfs.vnode.inuse", lambda k: k.vcache.inuse, doc="vnodes referenced"),
    Node("vfs.vnode.free", lambda k: k.vcache.free, doc="vnodes cached but unreferenced"),
    Node("vfs.vnode.reclaims", lambda k: k.vcache.reclaims, doc="vnodes reclaimed since boot"),
    Node("vfs.bufcache.bytes", lambda k: k.bufcache.bytes, doc="bytes of cached buffers"),
    Node("vfs.bufcache.dirty", lambda k: k.bufcache.dirty_bytes, doc="bytes not yet written back"),
    Node("vfs.bufcache.hits", lambda k: k.bufcache.hits, doc="block reads found in the cache"),
    Node("vfs.bufcache.misses", lambda k: k.bufcache.misses, doc="block reads from the device"),
    Node("vfs.bufcache.writes", lambda k: k.bufcache.writes, doc="buffers written back"),
    Node("vfs.bufcache.lost_writes", lambda k: k.bufcache.lost_writes, doc="write-backs the device refused"),
    Node("vfs.mounts", lambda k: len(k.mounts), doc="file systems mounted (besides the root)"),
)
BY_NAME = {n.name: n for n in NODES}


def node(name: str) -> Node:
    n = BY_NAME.get(name)
    if n is None:
        raise OSError(errno.ENOENT, f"{name}: no such sysctl node")
    return n


def read(k: Kernel, name: str) -> int:
    return node(name).get(k)


def write(k: Kernel, name: str, value: int) -> int:
    """Set ``name`` and return its old value (what sysctl -w reports as ``old -> new``)."""
    n = node(name)
    if n.set is None:
        raise OSError(errno.EPERM, f"{name}: read-only node")
    if type(value) is not int:
        raise OSError(errno.EINVAL, f"{name}: not an integer")
    old = n.get(k)
    n.set(k, value)
    return old


def listing(k: Kernel, prefix: str = "") -> list[tuple[str, int]]:
    """(name, value) of every node at or below ``prefix`` (all of them for ""); ENOENT if none."""
    p = prefix.rstrip(".")
    out = [(n.name, n.get(k)) for n in NODES if not p or n.name == p or n.name.startswith(p + ".")]
    if not out:
        raise OSError(errno.ENOENT, f"{prefix}: no such sysctl node")
    return out
