"""A connection's vnode handles: the numbers a client holds in place of vnodes (docs/protocol.md).

The server gives a client a new handle for every vnode a call returns — alone (``lookup``) or
inside a result (``vlookup``, ``vcreate``, ``vreaddirplus``) — and maps handles in arguments back
to vnodes; when the connection ends, every vnode still held is released. The table is bounded:
beyond ``limit`` a call that would return a vnode is EMFILE, and entries of a ``vreaddirplus``
past the limit are listed without handle or attributes (their vnodes given back at once).
"""

from __future__ import annotations

import errno
import itertools
from typing import TYPE_CHECKING, Any

from p2k.sp.protocol import Handle
from p2k.vfs.vnode import Vnode

if TYPE_CHECKING:
    from p2k.vfs.vnode import VnodeCache


class HandleTable:
    def __init__(self, vcache: VnodeCache, limit: int) -> None:
        self.vcache = vcache
        self.limit = limit
        self.vps: dict[int, Vnode] = {}
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self.vps)

    def room(self, n: int = 1) -> None:
        if len(self.vps) + n > self.limit:
            raise OSError(errno.EMFILE, "too many vnode handles on this connection")

    def give(self, vp: Vnode) -> Handle:
        hid = next(self._ids)
        self.vps[hid] = vp
        return Handle(hid)

    def vnode(self, h: Handle) -> Vnode:
        vp = self.vps.get(h.id)
        if vp is None:
            raise OSError(errno.EBADF, f"no vnode handle {h.id} on this connection")
        return vp

    def unwrap(self, args: list[Any], kwargs: dict[str, Any]) -> None:
        """Handles in a call's arguments replaced by their vnodes, in place."""
        for i, a in enumerate(args):
            if type(a) is Handle:
                args[i] = self.vnode(a)
        for key, value in kwargs.items():
            if type(value) is Handle:
                kwargs[key] = self.vnode(value)

    def wrap(self, result: Any) -> Any:
        """A call's result with every vnode in it (at the top, in a tuple, or in the tuples of a
        list) turned into a new handle; the call referenced each one for us."""
        if type(result) is Vnode:
            return self.give(result)
        if type(result) is tuple:
            return [self.wrap(x) for x in result]
        if type(result) is list and result and type(result[0]) is tuple:
            out = []
            for row in result:
                if any(type(x) is Vnode for x in row) and len(self.vps) >= self.limit:
                    for x in row:
                        if type(x) is Vnode:
                            self.vcache.vrele(x)
                    out.append([row[0], *(None for _ in row[1:])])
                else:
                    out.append(self.wrap(row))
            return out
        return result

    def drop(self, h: Any) -> Vnode:
        vp = self.vps.pop(h.id, None) if type(h) is Handle else None
        if vp is None:
            raise OSError(errno.EBADF, "not a vnode handle of this connection")
        return vp

    def drop_many(self, handles: Any) -> int:
        """``vrelev``: release every handle listed; EBADF (after releasing the good ones) if any
        was not one of ours."""
        if type(handles) not in (list, tuple):
            raise OSError(errno.EINVAL, "vrelev: a list of handles")
        released = bad = 0
        for h in handles:
            vp = self.vps.pop(h.id, None) if type(h) is Handle else None
            if vp is None:
                bad += 1
                continue
            self.vcache.vrele(vp)
            released += 1
        if bad:
            raise OSError(errno.EBADF, f"{bad} of {len(handles)} are not vnode handles of this connection "
                                       f"(the other {released} were released)")
        return released

    def release_all(self) -> None:
        vps, self.vps = self.vps, {}
        for vp in vps.values():
            self.vcache.vrele(vp)
