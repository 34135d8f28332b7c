"""``p2k dumpfs [-s] IMAGE``: dumpfs(8) for FFS images (see p2k.fs.ffs.dumpfs)."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing's, without importing it (p2k.lazy)
if TYPE_CHECKING:  # argparse too: p2k.cli.quickparse reads this command's ordinary command lines
    import argparse
    from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("dumpfs", help="dump FFS superblock and cylinder groups (dumpfs)",
                       description="Print the superblock and cylinder groups of an FFS image.")
    p.add_argument("-s", dest="sb_only", action="store_true", help="superblock only")
    p.add_argument("-i", dest="inodes", action="store_true", help="allocated inodes (with di_extsize) only")
    p.add_argument("-d", dest="drivespec", default=None, help="rump_server drivespec")
    p.add_argument("image", nargs="?", help="image (IMAGE or IMAGE:a)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: ``p2k`` imports every command module to build its parser.
    from p2k.cli.imagearg import register_image
    from p2k.etfs import EtfsRegistry
    from p2k.fs.ffs.dumpfs import dumpfs, inode_lines
    from p2k.fs.ffs.fs import find_superblock

    etfs = EtfsRegistry()  # a device is all dumpfs reads: no kernel to boot
    try:
        key = register_image(etfs, args, True)
        dev = etfs.lookup(key)
        assert dev is not None
        fs = find_superblock(dev.pread, dev.size)
        out = sys.stdout
        lines = (inode_lines(fs, dev.pread) if args.inodes
                 else dumpfs(fs, dev.pread, args.image or key, args.sb_only, dev.size))
        for line in lines:
            out.write(line + "\n")
        return 0
    finally:
        etfs.close_all()
