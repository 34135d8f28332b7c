"""``p2k makefs -t ffs [-s size] [-B be|le] [-o opt=val,...] IMAGE DIRECTORY`` (NetBSD makefs).

``-o`` takes makefs's FFS options ``version=1|2``, ``bsize=``, ``fsize=``, ``density=``,
``minfree=`` (others are refused by name), and p2k's ``xattr`` (UFS2 only): the host files'
extended attributes and ACLs go into the image too, as ``p2k cp -a`` carries them. Without
``-s`` the size is computed from the tree with 10 % slack (``-b`` / ``-f`` change the free-block /
free-inode percentage, as in makefs).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from p2k.cli.errors import UsageError
from p2k.cli.newfs import newfs_image, parse_newfs_size
from p2k.fs.ffs.makefs import MakefsOptions, choose_size, populate, scan
from p2k.fs.ffs.newfs import NewfsOptions, plan
from p2k.vfs.mount import MNT_ASYNC

_KNOWN = {"version", "bsize", "fsize", "density", "minfree", "xattr"}


def register(sub: Any) -> None:
    p = sub.add_parser("makefs", help="build an FFS image from a directory tree (NetBSD makefs)")
    p.add_argument("-t", dest="fstype", default="ffs", choices=["ffs"], help="file system type")
    p.add_argument("-s", dest="size", default=None, help="image size (bytes; k/m/g suffix)")
    p.add_argument("-B", dest="endian", choices=["be", "le", "big", "little"], default=None)
    p.add_argument("-o", dest="options", action="append", default=[], help="ffs options, comma-separated")
    p.add_argument("-b", dest="free_blocks", default=None, help="free blocks to leave, e.g. 10%%")
    p.add_argument("-f", dest="free_files", default=None, help="free inodes to leave, e.g. 10%%")
    p.add_argument("image")
    p.add_argument("directory")
    p.set_defaults(func=cmd_makefs)


def parse_options(items: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in ",".join(items).split(","):
        if not item.strip():
            continue
        k, eq, v = item.partition("=")
        k = k.strip()
        if k == "xattr" and not eq:
            v = "1"
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
    if o.get("xattr"):
        if opts.version != 2:
            raise UsageError("ffs option xattr needs version=2 (UFS1 has no extended attribute area)")
        opts.size += _xattr_room(args.directory, nodes) if not args.size else 0
    build_image(args.image, args.directory, opts, nodes, ninodes, xattrs=bool(o.get("xattr")))
    print(f"Image `{args.image}' complete ({time.perf_counter() - t0:.2f}s)")
    return 0


def build_image(image: str, directory: str, opts: MakefsOptions, nodes: list[Any] | None = None,
                ninodes: int = 0, *, xattrs: bool = False) -> None:
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
        populate(k, k.mounts[0], directory, nodes)
        if xattrs:
            _copy_tree_xattrs(k, directory, nodes)
    finally:
        k.halt()


def _xattr_room(directory: str, nodes: list[Any]) -> int:
    """Bytes to add to a computed size for the ext areas: each node's attributes, rounded up to
    4 KiB (the largest fragment makefs picks), at most two 64 KiB blocks."""
    extra = 0
    for n in nodes:
        try:
            path = os.path.join(directory, n.rel)
            size = sum(len(nm) + len(os.getxattr(path, nm, follow_symlinks=False)) + 16
                       for nm in os.listxattr(path, follow_symlinks=False))
        except OSError:
            continue
        extra += min(-(-size // 4096) * 4096, 128 * 1024) if size else 0
    return extra


def _copy_tree_xattrs(k: Any, directory: str, nodes: list[Any]) -> None:
    from p2k.cli.fscopy import HostSide, ImageSide, copy_xattrs
    from p2k.cli.fsview import FsView

    image = ImageSide(FsView(k.sys, "/mnt"))
    host = HostSide()
    for n in nodes:
        copy_xattrs(host, os.path.join(directory, n.rel), image, "/" + n.rel)
