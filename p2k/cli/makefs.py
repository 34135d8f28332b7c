"""``p2k makefs -t ffs [-s size] [-B be|le] [-o opt=val,...] IMAGE DIRECTORY`` (NetBSD makefs).

``-o`` takes makefs's FFS options ``version=1|2``, ``bsize=``, ``fsize=``, ``density=``,
``minfree=`` (others are refused by name). Without ``-s`` the size is computed from the tree with
10 % slack (``-b`` / ``-f`` change the free-block / free-inode percentage, as in makefs).
"""

from __future__ import annotations

import argparse
import mmap
import os
import stat as st
import time
from collections.abc import Iterator
from typing import Any

from p2k.cli.errors import UsageError
from p2k.cli.newfs import parse_newfs_size
from p2k.fs.ffs.dir import DIRSIZ
from p2k.fs.ffs.makefs import MakefsOptions, Node, choose_size, populate
from p2k.fs.ffs.newfs import NewfsOptions, newfs_image, plan
from p2k.vfs.mount import MNT_ASYNC

_KNOWN = {"version", "bsize", "fsize", "density", "minfree"}
CHUNK = 1 << 20


def register(sub: Any) -> None:
    p = sub.add_parser("makefs", help="build an FFS image from a directory tree (NetBSD makefs)")
    p.add_argument("-t", dest="fstype", default="ffs", choices=["ffs"], help="file system type")
    p.add_argument("-s", dest="size", default=None, help="image size (bytes; k/m/g suffix)")
    p.add_argument("-B", dest="endian", choices=["be", "le", "big", "little"], default=None,
                   help="byte order of the image (le)")
    p.add_argument("-o", dest="options", action="append", default=[], help="ffs options, comma-separated")
    p.add_argument("-b", dest="free_blocks", default=None, help="free blocks to leave, e.g. 10%%")
    p.add_argument("-f", dest="free_files", default=None, help="free inodes to leave, e.g. 10%%")
    p.add_argument("image", metavar="IMAGE", help="image file to create (replaced if it exists)")
    p.add_argument("directory", metavar="DIRECTORY", help="host directory whose tree goes into the image")
    p.set_defaults(func=cmd_makefs)


def parse_options(items: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in ",".join(items).split(","):
        if not item.strip():
            continue
        k, _, v = item.partition("=")
        k = k.strip()
        if k not in _KNOWN:
            raise UsageError(f"unknown ffs option `{k}' (known: {', '.join(sorted(_KNOWN))})")
        try:
            out[k] = int(v)
        except ValueError:
            raise UsageError(f"ffs option {k}: `{v}' is not a number") from None
    return out


def _pct(text: str | None) -> int:
    if text is None:
        return 10
    return int(text.rstrip("%"))


def cmd_makefs(args: argparse.Namespace) -> int:
    if not os.path.isdir(args.directory):
        raise OSError(20, "Not a directory", args.directory)
    o = parse_options(args.options)
    opts = MakefsOptions(version=o.get("version", 1), bsize=o.get("bsize", 0), fsize=o.get("fsize", 0),
                         density=o.get("density", 0), minfree=o.get("minfree", 5),
                         endian=">" if args.endian in ("be", "big") else "<",
                         free_pct=max(_pct(args.free_blocks), _pct(args.free_files)))
    t0 = time.perf_counter()
    nodes = scan(args.directory)
    ninodes = 0
    if args.size:
        opts.size = parse_newfs_size(args.size if not args.size.isdigit() else args.size + "b")
    else:
        opts.size, ninodes = choose_size(nodes, opts)
        print(f"Calculated size of `{args.image}': {opts.size} bytes, {len(nodes)} inodes")
    build_image(args.image, args.directory, opts, nodes, ninodes)
    print(f"Image `{args.image}' complete ({time.perf_counter() - t0:.2f}s)")
    return 0


def build_image(image: str, directory: str, opts: MakefsOptions, nodes: list[Any] | None = None,
                ninodes: int = 0) -> None:
    """newfs (no lost+found) then populate through a private kernel."""
    import p2k

    if nodes is None:
        nodes = scan(directory)
    no = NewfsOptions(size=opts.size, version=opts.version, bsize=opts.bsize, fsize=opts.fsize,
                      density=opts.density, ninodes=ninodes, minfree=opts.minfree, endian=opts.endian)
    if os.path.exists(image):
        os.truncate(image, 0)
    newfs_image(image, no, plan(no), lost_found=False)
    k = p2k.Kernel(env={})
    try:
        k.etfs_register("/dev/makefs", image, p2k.ETFS_BLK)
        k.sys.mkdir("/mnt", 0o755)
        k.sys.mount("ffs", "/mnt", MNT_ASYNC, {"fspec": "/dev/makefs"})  # as makefs: no syncs
        populate(k, k.mounts[0], nodes, lambda n: read_host_file(os.path.join(directory, n.rel)))
    finally:
        k.halt()


# ---- the host side: the tree is walked and read here, the file system only sees Nodes and bytes --
def scan(root: str) -> list[Node]:
    """Every node under host directory ``root``, parents before children (sorted within a
    directory), with what sizing and population need: attributes, symlink targets, and for a
    directory the bytes its entries will take."""
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
            names = sorted(os.listdir(path))
            node.children = len(names)
            node.namebytes = DIRSIZ(1) + DIRSIZ(2) + sum(DIRSIZ(len(os.fsencode(n))) for n in names)
            for n in reversed(names):
                stack.append((f"{rel}/{n}" if rel else n, os.path.join(path, n)))
    return out


def read_host_file(path: str) -> Iterator[bytes | memoryview]:
    """The bytes of host file ``path`` in pieces of at most CHUNK; a big file is mapped, so its
    pieces are views into the page cache rather than copies."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < CHUNK:
            data = f.read()
            if data:
                yield data
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            view = memoryview(mm)
            for off in range(0, len(view), CHUNK):
                piece = view[off:off + CHUNK]
                yield piece
                piece.release()
            view.release()
