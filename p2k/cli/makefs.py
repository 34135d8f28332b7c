"""``p2k makefs -t ffs [-s size] [-M min] [-m max] [-b free] [-f free] [-B be|le] [-o opt=val,...]
IMAGE DIRECTORY`` (NetBSD makefs).

``-o`` takes makefs's FFS options ``version=1|2``, ``bsize``, ``fsize``, ``density``, ``minfree``,
``maxbpf``, ``avgfilesize``, ``avgfpdir``, ``optimization=time|space``, ``label``, plus p2k's
``sblockloc=8192|65536`` (where the superblock goes; makefs's 8192 by default, 65536 for readers
such as The Sleuth Kit that look for a UFS2 superblock only at newfs's place), and p2k's ``xattr``
(UFS2 only: the host files' extended attributes and ACLs go into the image too, as ``p2k cp -a``
carries them, with room for them added to the computed size). Without ``-s`` the
size is computed from the tree as makefs computes it (see p2k.fs.ffs.makefs); ``-b``/``-f`` add
free space (bytes, or a percentage with ``%``) and free inodes (a count or ``%``); ``-M``/``-m``
bound the size; ``-s`` fixes it (minimum and maximum at once, as in makefs).
"""

from __future__ import annotations

import argparse
import errno
import os
import stat as st
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from p2k.cli.errors import UsageError
from p2k.cli.newfs import parse_newfs_size
from p2k.cli.progress import Bars, add_quiet_arg, wanted

if TYPE_CHECKING:
    from p2k.fs.ffs.makefs import MakefsOptions, Node, Sizing

_INT_OPTS = {"version": "version", "bsize": "bsize", "fsize": "fsize", "density": "density",
             "minfree": "minfree", "maxbpf": "maxbpg", "avgfilesize": "avgfilesize",
             "avgfpdir": "avgfpdir", "sblockloc": "sblockloc"}
_KNOWN = {*_INT_OPTS, "optimization", "label", "xattr"}


def register(sub: Any) -> None:
    p = sub.add_parser("makefs", help="build an FFS image from a directory tree (NetBSD makefs)")
    p.add_argument("-t", dest="fstype", default="ffs", choices=["ffs"], help="file system type")
    p.add_argument("-s", dest="size", default=None, help="image size (bytes; k/m/g suffix)")
    p.add_argument("-M", dest="minsize", default=None, help="minimum image size")
    p.add_argument("-m", dest="maxsize", default=None, help="maximum image size")
    p.add_argument("-B", dest="endian", choices=["be", "le", "big", "little"], default=None,
                   help="byte order of the image (le)")
    p.add_argument("-o", dest="options", action="append", default=[], help="ffs options, comma-separated")
    p.add_argument("-b", dest="free_blocks", default=None, help="free space to leave: bytes, or N%%")
    p.add_argument("-f", dest="free_files", default=None, help="free inodes to leave: a count, or N%%")
    add_quiet_arg(p)
    p.add_argument("image", metavar="IMAGE", help="image file to create (replaced if it exists)")
    p.add_argument("directory", metavar="DIRECTORY", help="host directory whose tree goes into the image")
    p.set_defaults(func=cmd_makefs)


def apply_options(o: MakefsOptions, items: list[str]) -> None:
    """makefs's ``-o`` list onto ``o``; a usage error names an unknown or malformed option."""
    for item in ",".join(items).split(","):
        if not item.strip():
            continue
        k, _, v = item.partition("=")
        k = k.strip()
        if k == "xattr":
            continue  # taken by cmd_makefs (wants_xattr)
        if k not in _KNOWN:
            raise UsageError(f"unknown ffs option `{k}' (known: {', '.join(sorted(_KNOWN))})")
        if k == "optimization":
            if v not in ("time", "space"):
                raise UsageError(f"Invalid optimization `{v}'")
            o.optim = 0 if v == "time" else 1
        elif k == "label":
            o.label = os.fsencode(v)[:31]
        else:
            try:
                setattr(o, _INT_OPTS[k], int(v))
            except ValueError:
                raise UsageError(f"ffs option {k}: `{v}' is not a number") from None
    if o.version not in (1, 2):
        raise UsageError(f"ffs option version: {o.version} (1 or 2)")
    if o.sblockloc not in (8192, 65536):
        raise UsageError(f"ffs option sblockloc: {o.sblockloc} (8192 or 65536)")


def _size(text: str | None) -> int:
    if text is None:
        return 0
    return parse_newfs_size(text if not text.isdigit() else text + "b")


def _slack(text: str | None, what: str, *, nbytes: bool) -> tuple[int, int]:
    """(absolute, percent) from ``-b``/``-f``: ``N%`` or a plain amount."""
    if text is None:
        return 0, 0
    if text.endswith("%"):
        try:
            return 0, int(text[:-1])
        except ValueError:
            raise UsageError(f"{what} `{text}' is not a percentage") from None
    if nbytes:
        return _size(text), 0
    if not text.isdigit():
        raise UsageError(f"{what} `{text}' is not a number")
    return int(text), 0


def cmd_makefs(args: argparse.Namespace) -> int:
    from p2k.fs.ffs.makefs import MakefsOptions, choose_size, grow_size  # not at every command's start-up

    if not os.path.isdir(args.directory):
        raise OSError(20, "Not a directory", args.directory)
    o = MakefsOptions(endian=">" if args.endian in ("be", "big") else "<", size=_size(args.size),
                      minsize=_size(args.minsize), maxsize=_size(args.maxsize))
    apply_options(o, args.options)
    o.freeblocks, o.freeblockpc = _slack(args.free_blocks, "free blocks", nbytes=True)
    o.freefiles, o.freefilepc = _slack(args.free_files, "free files", nbytes=False)
    t0 = time.perf_counter()
    nodes = scan(args.directory)
    xattrs = wants_xattr(args.options)
    if xattrs:
        if o.version != 2:
            raise UsageError("ffs option xattr needs version=2 (UFS1 has no extended attribute area)")
        o.freeblocks += _xattr_room(args.directory, nodes)
    try:
        sz = choose_size(nodes, o)
    except OSError as e:
        raise OSError(e.errno, f"`{args.directory}' {e.strerror}") from None
    print(f"Calculated size of `{args.image}': {sz.size} bytes, {sz.inodes} inodes")
    for attempt in range(8):
        try:
            with Bars(wanted(args), "makefs", units={"cylinder groups": "cg", "files": "files"}) as bars:
                build_image(args.image, args.directory, o, nodes, sz, xattrs=xattrs, progress=bars)
            break
        except OSError as e:
            # makefs's estimate (which NetBSD's makefs shares) can fall short by a few fragments
            # when many small files share blocks; NetBSD then fails with ENOSPC. An image whose
            # size the user left to us is grown and written again instead.
            if e.errno != errno.ENOSPC or o.size or attempt == 7 or (o.maxsize and sz.size >= o.maxsize):
                raise
            grow_size(sz, o, sz.size // 8)
            if o.maxsize:
                sz.size = min(sz.size, o.maxsize)
            print(f"`{args.image}' was full; grown to {sz.size} bytes")
    print(f"Image `{args.image}' complete ({time.perf_counter() - t0:.2f}s)")
    return 0


def build_image(image: str, directory: str, o: MakefsOptions, nodes: list[Node] | None = None,
                sz: Sizing | None = None, *, xattrs: bool = False,
                progress: Callable[[str, int, int], None] | None = None) -> None:
    """newfs (no lost+found) then populate through a private kernel; ``progress`` follows both."""
    from p2k.etfs import ETFS_BLK
    from p2k.fs.ffs.makefs import choose_size, newfs_options, populate
    from p2k.fs.ffs.newfs import newfs_image, plan
    from p2k.kernel import Kernel
    from p2k.vfs.mount import MNT_ASYNC

    if nodes is None:
        nodes = scan(directory)
    if sz is None:
        sz = choose_size(nodes, o)
    no = newfs_options(o, sz)
    if os.path.exists(image):
        os.truncate(image, 0)
    newfs_image(image, no, plan(no), lost_found=False, progress=progress)
    k = Kernel(env={})
    try:
        k.etfs_register("/dev/makefs", image, ETFS_BLK)
        k.sys.mkdir("/mnt", 0o755)
        k.sys.mount("ffs", "/mnt", MNT_ASYNC, {"fspec": "/dev/makefs"})  # as makefs: no syncs
        populate(k, k.mounts[0], nodes, lambda n: read_host_file(os.path.join(directory, n.rel)),
                 progress)
        if xattrs:
            _copy_tree_xattrs(k, directory, nodes)
    finally:
        k.halt()


def wants_xattr(items: list[str]) -> bool:
    return any(i.strip() in ("xattr", "xattr=1") for i in ",".join(items).split(","))


def _xattr_room(directory: str, nodes: list[Node]) -> int:
    """Bytes of free space to add for the ext areas: each node's attributes rounded up to 4 KiB
    (the largest fragment makefs picks), at most two 64 KiB blocks."""
    extra = 0
    for n in nodes:
        path = os.path.join(directory, n.rel)
        try:
            size = sum(len(nm) + len(os.getxattr(path, nm, follow_symlinks=False)) + 16
                       for nm in os.listxattr(path, follow_symlinks=False))
        except OSError:
            continue
        extra += min(-(-size // 4096) * 4096, 128 * 1024) if size else 0
    return extra


def _copy_tree_xattrs(k: Any, directory: str, nodes: list[Node]) -> None:
    from p2k.fscopy import ImageSide, copy_xattrs
    from p2k.fsview import FsView
    from p2k.hyper.hostio import HostSide

    image = ImageSide(FsView(k.sys, "/mnt"))
    host = HostSide()
    for n in nodes:
        copy_xattrs(host, os.path.join(directory, n.rel), image, "/" + n.rel)


# ---- the host side: the tree is walked and read here, the file system only sees Nodes and bytes --
CHUNK = 1 << 20


def scan(root: str) -> list[Node]:
    """Every node under host directory ``root``, parents before children, in the host directory's
    own order (as makefs walks it: entries pack into directory chunks in that order, so the sizes
    agree), with what sizing and population need: attributes, symlink targets, and for a
    directory the bytes its entries will take."""
    from p2k.fs.ffs.makefs import Node, dirsize

    out: list[Node] = []
    stack = [("", root)]
    while stack:
        rel, path = stack.pop()
        s = os.lstat(path)
        node = Node(rel, s)
        out.append(node)
        if st.S_ISLNK(s.st_mode):
            node.target = os.readlink(os.fsencode(path))
        elif st.S_ISDIR(s.st_mode):
            names = os.listdir(path)
            node.children = len(names)
            node.dirsize = dirsize([1, 2, *(len(os.fsencode(n)) for n in names)])
            for n in reversed(names):
                stack.append((f"{rel}/{n}" if rel else n, os.path.join(path, n)))
    return out


def read_host_file(path: str) -> Iterator[bytes | memoryview]:
    """The bytes of host file ``path`` in pieces of at most CHUNK. A small file is read with the
    bare system calls (a buffered file object costs more than the read itself for the thousands
    of small files of a typical tree). A big one is read piece by piece into one buffer, which
    the next piece overwrites: a piece is valid until the next is asked for, and ``populate``
    writes each before it asks. Not mapped: the write's copy then faulted the file in a page at
    a time, and 64 MiB of big files took 36–37 ms to go through against 21–22 ms read."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        if size < CHUNK:
            data = os.read(fd, size + 1)  # one more byte: a file that grew since the scan reads whole
            while len(data) > size and (more := os.read(fd, CHUNK)):
                data += more
            if data:
                yield data
            return
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while n := os.readv(fd, [buf]):
            yield view[:n]
    finally:
        os.close(fd)
