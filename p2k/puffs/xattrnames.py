"""Linux xattr names onto BSD extended attributes and ACLs, for the FUSE bridge.

Linux names carry their namespace as a prefix; BSD passes it as a number. ``user.NAME`` is the
user namespace, ``system.NAME`` the system namespace (root only, as on BSD), except for the two
POSIX ACL names, which Linux programs (getfacl, setfacl, cp -a, tar --acls) read and write in
Linux's binary format: ``system.posix_acl_access`` / ``_default`` are converted to and from
FreeBSD's ``posix1e.acl_access`` / ``posix1e.acl_default`` through the ACL syscalls, which also
keep the mode in step. FreeBSD's NFSv4 ACL is visible (to root) as the raw ``system.nfs4.acl``.
``security.*`` and ``trusted.*`` have no BSD counterpart: EOPNOTSUPP, as a Linux file system
without them answers.

``sys`` is anything with the ``k.sys`` extattr and ACL calls (the caller's ``Syscalls``, a server
client's), and ``target`` what their fd argument takes (a held vnode, a handle) or a path, so the
one mapping serves every port and the ``p2k getfattr``/``setfattr`` commands.
The XATTR_CREATE/REPLACE flags, the size probe and ERANGE are pyfuse3's (it checks the flags
with a getxattr first and slices the reply to the size the host asked).
"""

from __future__ import annotations

import errno

from p2k.vfs.acl import ACL_TYPE_ACCESS, ACL_TYPE_DEFAULT, EA_NAMES, decode_linux, encode_linux
from p2k.vfs.extattr import ENOATTR, EXTATTR_NAMESPACE_SYSTEM, EXTATTR_NAMESPACE_USER

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from typing import Any

LINUX_ACL = {b"system.posix_acl_access": ACL_TYPE_ACCESS, b"system.posix_acl_default": ACL_TYPE_DEFAULT}
BSD_ACL_NAMES = {v: k for k, v in EA_NAMES.items()}  # posix1e.acl_access → ACL_TYPE_ACCESS
_LINUX_BY_TYPE = {v: k for k, v in LINUX_ACL.items()}


def split(name: bytes) -> tuple[int, bytes]:
    """(namespace, BSD name) of a Linux name; EOPNOTSUPP for a prefix BSD does not have."""
    prefix, dot, rest = name.partition(b".")
    if dot and rest:
        if prefix == b"user":
            return EXTATTR_NAMESPACE_USER, rest
        if prefix == b"system":
            return EXTATTR_NAMESPACE_SYSTEM, rest
    raise OSError(errno.EOPNOTSUPP, f"unsupported attribute name {name!r}")


class LinkPath(str):
    """A path whose final symbolic link is not followed (the ``_link`` calls, getfattr -h)."""


def _ea(sys: Any, op: str, target: Any) -> Any:
    """``extattr_{op}`` bound to ``target``: the ``_link`` form for a LinkPath, ``_file`` for
    another path, else the ``_fd`` form (a LinkPath travels as a plain str: the server's
    encoder takes exact types)."""
    if isinstance(target, LinkPath):
        fn, arg = getattr(sys, f"extattr_{op}_link"), str(target)
    else:
        fn, arg = getattr(sys, f"extattr_{op}_{'file' if isinstance(target, str | bytes) else 'fd'}"), target
    return lambda *rest: fn(arg, *rest)


def _plain(target: Any) -> Any:
    return str(target) if isinstance(target, LinkPath) else target


def getxattr(sys: Any, target: Any, name: bytes) -> bytes:
    acltype = LINUX_ACL.get(name)
    if acltype is not None:
        entries = sys.acl_get_file(_plain(target), acltype)
        if entries is None:
            raise OSError(ENOATTR, "no ACL")
        return encode_linux(entries)
    ns, bsd = split(name)
    return _ea(sys, "get", target)(ns, bsd)  # type: ignore[no-any-return]


def setxattr(sys: Any, target: Any, name: bytes, value: bytes) -> None:
    acltype = LINUX_ACL.get(name)
    if acltype is not None:
        sys.acl_set_file(_plain(target), acltype, decode_linux(value))
        return
    ns, bsd = split(name)
    _ea(sys, "set", target)(ns, bsd, value)


def removexattr(sys: Any, target: Any, name: bytes) -> None:
    acltype = LINUX_ACL.get(name)
    if acltype is not None:
        if sys.acl_get_file(_plain(target), acltype) is None:
            raise OSError(ENOATTR, "no ACL")
        sys.acl_set_file(_plain(target), acltype, None)
        return
    ns, bsd = split(name)
    _ea(sys, "delete", target)(ns, bsd)


def listxattr(sys: Any, target: Any, is_root: bool) -> list[bytes]:
    """Every name the caller may see: user names when it may read them, system names for root
    (ACLs under their Linux names), and the ACL names for anyone when the file has them."""
    out: list[bytes] = []
    try:
        out += [b"user." + n for n in _ea(sys, "list", target)(EXTATTR_NAMESPACE_USER)]
    except OSError as e:
        if e.errno == errno.EOPNOTSUPP:
            raise
    if is_root:
        try:
            system = _ea(sys, "list", target)(EXTATTR_NAMESPACE_SYSTEM)
        except OSError as e:
            if e.errno != errno.EPERM:  # not root after all (a remote caller): the ACL names only
                raise
        else:
            for n in system:
                t = BSD_ACL_NAMES.get(n)
                out.append(_LINUX_BY_TYPE[t] if t is not None else b"system." + n)
            return out
    for acltype, lname in _LINUX_BY_TYPE.items():
        try:
            if sys.acl_get_file(_plain(target), acltype) is not None:
                out.append(lname)
        except OSError:
            pass
    return out


def xattr_call(sys: Any, target: Any, op: str, is_root: bool, *args: bytes) -> Any:
    """One FUSE xattr request (``op``: get, set, list, remove) — what every port does."""
    if op == "list":
        return listxattr(sys, target, is_root)
    if op == "get":
        return getxattr(sys, target, args[0])
    if op == "set":
        return setxattr(sys, target, args[0], args[1])
    if op == "remove":
        return removexattr(sys, target, args[0])
    raise OSError(errno.EINVAL, f"no xattr operation {op!r}")
