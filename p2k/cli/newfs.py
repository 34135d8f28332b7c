"""``p2k newfs``: make an FFS in an image file, with NetBSD newfs(8)'s options where they apply.

``-s`` takes a sector count, or bytes with a b/k/m/g/t suffix, like newfs; without ``-s`` the
size of the existing image is used. ``-F`` (the target is a file) is accepted for compatibility:
p2k always works on image files. ``-N`` prints what would be made and writes nothing.
``IMAGE:NAME`` (``disk.img:p2``, ``disk.img:s1a``) makes the file system in an existing partition,
sized to it, and writes nothing outside it.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
from typing import TYPE_CHECKING, Any

from p2k.cli.errors import UsageError

if TYPE_CHECKING:
    from p2k.hyper import Window

_SIZE = re.compile(r"^(\d+)([sSbBkKmMgGtT]?)$")


def parse_newfs_size(text: str) -> int:
    """newfs's strsuftoi64: plain or 's' = 512-byte sectors; b/k/m/g/t = bytes."""
    m = _SIZE.match(text.strip())
    if not m:
        raise UsageError(f"file system size `{text}' is not a valid number")
    n, suf = int(m.group(1)), m.group(2).lower()
    if suf in ("", "s"):
        return n * 512
    return n << {"b": 0, "k": 10, "m": 20, "g": 30, "t": 40}[suf]


def register(sub: Any) -> None:
    # -h is newfs's "average files per directory", so help is --help only
    p = sub.add_parser("newfs", help="construct a new FFS file system in an image (NetBSD newfs)",
                       add_help=False)
    p.add_argument("--help", action="help", help="show this help message and exit")
    p.add_argument("-O", dest="version", type=int, default=1, choices=[1, 2], help="format: 1 FFSv1, 2 FFSv2")
    p.add_argument("-b", dest="bsize", type=lambda s: parse_newfs_size(s + ("b" if s.isdigit() else "")),
                   default=0, help="block size")
    p.add_argument("-f", dest="fsize", type=lambda s: parse_newfs_size(s + ("b" if s.isdigit() else "")),
                   default=0, help="fragment size")
    p.add_argument("-i", dest="density", type=int, default=0, help="bytes per inode")
    p.add_argument("-n", dest="ninodes", type=int, default=0, help="number of inodes (overrides -i)")
    p.add_argument("-m", dest="minfree", type=int, default=5, help="minimum free space %%")
    p.add_argument("-o", dest="optim", choices=["space", "time"], default="time", help="optimisation")
    p.add_argument("-s", dest="size", default=None, help="size: sectors, or bytes with b/k/m/g suffix")
    p.add_argument("-B", dest="endian", choices=["be", "le"], default=None, help="byte order")
    p.add_argument("-e", dest="maxbpg", type=int, default=0, help="max blocks per file in a cylinder group")
    p.add_argument("-g", dest="avgfilesize", type=int, default=16384, help="average file size")
    p.add_argument("-h", dest="avgfpdir", type=int, default=64, help="average files per directory")
    p.add_argument("-N", dest="dry_run", action="store_true", help="print the parameters, write nothing")
    p.add_argument("-V", dest="verbosity", type=int, default=None, help="verbosity 0..4")
    p.add_argument("-F", dest="file", action="store_true", help="the target is a file (always true here)")
    p.add_argument("-Z", dest="zero", action="store_true", help="pre-zero the image")
    p.add_argument("image", help="image file, or IMAGE:NAME for an existing partition (see p2k parts)")
    p.set_defaults(func=cmd_newfs)


def cmd_newfs(args: argparse.Namespace) -> int:
    from p2k.etfs.resolve import split_image_arg

    path, name = split_image_arg(args.image)
    window: Window | None = None
    if name is not None:
        window = partition_window(path, name, args)
    try:
        return _newfs(args, window)
    finally:
        if window is not None:
            window.close()


def partition_window(path: str, name: str, args: argparse.Namespace) -> Window:
    """``IMAGE:NAME``: the existing partition is the whole target; ``-s`` may only shrink it."""
    from p2k.etfs import parse_size
    from p2k.etfs.resolve import resolve
    from p2k.hyper import Window

    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
    target = resolve(path, name, readonly=args.dry_run, parse_size=parse_size)
    window = Window(target.backend, offset=target.offset, size=target.size)
    if args.size is not None and parse_newfs_size(args.size) > window.size:
        window.close()
        raise UsageError(f"{args.image}: -s {args.size} is larger than the partition ({window.size} bytes)")
    return window


def _newfs(args: argparse.Namespace, window: Window | None) -> int:
    # Imported here, not at the top: ``p2k`` imports every command module to build its parser.
    from p2k.fs.ffs.newfs import FS_OPTSPACE, FS_OPTTIME, NewfsOptions, newfs_image, plan, summary_lines

    if args.size is not None:
        size = parse_newfs_size(args.size)
    elif window is not None:
        size = window.size
    elif os.path.exists(args.image):
        size = os.path.getsize(args.image)
    else:
        raise UsageError(f"{args.image}: unable to determine file system size (give -s)")
    if size <= 0:
        raise UsageError("unable to determine file system size")
    endian = {"be": ">", "le": "<", None: "<"}[args.endian]
    opts = NewfsOptions(size=size, version=args.version, bsize=args.bsize, fsize=args.fsize,
                        density=args.density, ninodes=args.ninodes, minfree=args.minfree,
                        optim=FS_OPTSPACE if args.optim == "space" else FS_OPTTIME, endian=endian,
                        maxbpg=args.maxbpg, avgfilesize=args.avgfilesize, avgfpdir=args.avgfpdir)
    fs = plan(opts)
    verbosity = args.verbosity if args.verbosity is not None else 3
    for line in summary_lines(fs, args.image, verbosity):
        print(line)
    if args.dry_run:
        return 0
    newfs_image(args.image, opts, fs, zero=args.zero, window=window)
    return 0
