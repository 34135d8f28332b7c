"""Timestamp rules shared by every driver (NetBSD's ``ufs_itimes``/``tmpfs_update``).

POSIX says which call marks which times; a driver's in-core node records them by calling these with
itself, so tmpfs and FFS cannot drift apart. Nodes expose ``atime_ns``, ``mtime_ns``, ``ctime_ns``.
"""

from __future__ import annotations

from p2k.hints import Protocol
from p2k.hyper import now_ns


class Timed(Protocol):
    atime_ns: int
    mtime_ns: int
    ctime_ns: int


def mark(node: Timed, *, access: bool = False, modify: bool = False, change: bool = False) -> None:
    t = now_ns()
    if access:
        node.atime_ns = t
    if modify:
        node.mtime_ns = t
    if change:
        node.ctime_ns = t


def mark_modified(node: Timed) -> None:
    """Data or directory contents changed: mtime and ctime."""
    t = now_ns()
    node.mtime_ns = t
    node.ctime_ns = t


def mark_changed(node: Timed) -> None:
    """Inode changed (mode, owner, link count, times set): ctime only."""
    node.ctime_ns = now_ns()
