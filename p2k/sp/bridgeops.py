"""Server operations for a FUSE bridge that is a remote client (``p2k mount --server``).

The plain vnode-handle calls are enough to export a server's tree, but FUSE asks for a name's
attributes with every lookup and for every entry of a readdir (READDIRPLUS), and made from
``lookup`` + ``vgetattr`` each of those costs two or more round trips. These calls do the
combination in the server, in one request, with the connection's own process (so its credentials
and every permission rule of the kernel apply), and return handles exactly like ``lookup``:

- ``vlookup(dir, name)`` → ``[handle, Vattr]`` (no following of a final symlink)
- ``vreaddirplus(dir, cookie, count)`` → ``[[Dirent, handle | None, Vattr | None], ...]`` — ``.``,
  ``..`` and entries that vanished or cannot be loaded carry no handle
- ``vcreate(dir, name, flags, mode)`` → ``[fd, handle, Vattr]``: open(2) with O_CREAT, and a handle
  on the very vnode the new descriptor refers to (a lookup after the open could race a rename)
- ``vrelev([handle, ...])`` → number released: many ``vrele`` in one request (the bridge's forgets)

Arguments are checked here, before anything is referenced, as ``argcheck`` does for the others.
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING, Any

from p2k.sp import protocol as P
from p2k.vfs.vnode import Vnode

if TYPE_CHECKING:
    from p2k.sp.server import Connection

MAX_READDIRPLUS = 1024


def _want(value: Any, types: tuple[type, ...], what: str) -> Any:
    if type(value) not in types:
        raise TypeError(f"{what} must be {' or '.join(t.__name__ for t in types)}")
    return value


def _args(args: list[Any], kwargs: dict[str, Any], names: tuple[str, ...]) -> list[Any]:
    """Positional and keyword arguments merged in the order of ``names``; all are required."""
    if len(args) > len(names) or set(kwargs) - set(names[len(args):]):
        raise TypeError("unexpected arguments")
    out = list(args) + [kwargs[n] for n in names[len(args):] if n in kwargs]
    if len(out) != len(names):
        raise TypeError("missing arguments")
    return out


def _room(conn: Connection, n: int = 1) -> bool:
    return len(conn.handles) + n <= conn.server.config.max_handles


def _give(conn: Connection, vp: Vnode) -> P.Handle:
    hid = next(conn.next_handle)
    conn.handles[hid] = vp
    return P.Handle(hid)


def vlookup(conn: Connection, args: list[Any], kwargs: dict[str, Any]) -> Any:
    dvp, name = _args(args, kwargs, ("dvp", "name"))
    _want(dvp, (Vnode,), "dvp")
    _want(name, (bytes, str), "name")
    if not _room(conn):
        raise OSError(errno.EMFILE, "too many vnode handles on this connection")
    s = conn.sys
    assert s is not None
    vp = s.lookup(name, dir_fd=dvp, follow=False)
    try:
        va = s.vgetattr(vp)
    except BaseException:
        s.vrele(vp)
        raise
    return [_give(conn, vp), va]


def vreaddirplus(conn: Connection, args: list[Any], kwargs: dict[str, Any]) -> Any:
    dvp, cookie, count = _args(args, kwargs, ("dvp", "cookie", "count"))
    _want(dvp, (Vnode,), "dvp")
    _want(cookie, (int,), "cookie")
    _want(count, (int,), "count")
    s = conn.sys
    assert s is not None
    out: list[list[Any]] = []
    for d in s.vreaddir(dvp, cookie, max(1, min(count, MAX_READDIRPLUS))):
        if d.name in (b".", b"..") or not _room(conn):
            out.append([d, None, None])
            continue
        try:
            vp = s.lookup(d.name, dir_fd=dvp, follow=False)
        except OSError:
            out.append([d, None, None])  # removed since, or unreadable: listed all the same
            continue
        try:
            va = s.vgetattr(vp)
        except OSError:
            s.vrele(vp)
            out.append([d, None, None])
            continue
        out.append([d, _give(conn, vp), va])
    return out


def vcreate(conn: Connection, args: list[Any], kwargs: dict[str, Any]) -> Any:
    dvp, name, flags, mode = _args(args, kwargs, ("dvp", "name", "flags", "mode"))
    _want(dvp, (Vnode,), "dvp")
    _want(name, (bytes, str), "name")
    _want(flags, (int,), "flags")
    _want(mode, (int,), "mode")
    if not _room(conn):
        raise OSError(errno.EMFILE, "too many vnode handles on this connection")
    s = conn.sys
    assert s is not None
    k = s.kernel
    with k.lock:  # the new descriptor's vnode is referenced before anyone can close it
        fd = s.open(name, flags | os.O_CREAT, mode, dir_fd=dvp)
        try:
            vp = k.vcache.vref(s.proc.fdt.get(fd).vp)
        except BaseException:
            s.close(fd)
            raise
        try:
            va = s.vgetattr(vp)
        except BaseException:
            k.vcache.vrele(vp)
            s.close(fd)
            raise
        return [fd, _give(conn, vp), va]


def vrelev(conn: Connection, args: list[Any], kwargs: dict[str, Any]) -> Any:
    (handles,) = _args(args, kwargs, ("handles",))
    _want(handles, (list, tuple), "handles")
    s = conn.sys
    assert s is not None
    released = 0
    bad = 0
    for h in handles:
        vp = conn.handles.pop(h.id, None) if type(h) is P.Handle else None
        if vp is None:
            bad += 1
            continue
        s.vrele(vp)
        released += 1
    if bad:
        raise OSError(errno.EBADF, f"{bad} of {len(handles)} are not vnode handles of this connection "
                                   f"(the other {released} were released)")
    return released


BRIDGE_OPS = {"vlookup": vlookup, "vreaddirplus": vreaddirplus, "vcreate": vcreate, "vrelev": vrelev}
"""Calls the server runs here rather than as a ``Syscalls`` method of the same name."""
