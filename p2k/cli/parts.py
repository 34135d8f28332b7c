"""``p2k parts IMAGE``: the partition map of a disk image, listed like The Sleuth Kit's ``mmls``.

One line per volume: its index, the name every command accepts after ``IMAGE:``, first and last
sector, length in sectors and in bytes, the map's type for it, and the file system p2k finds in it
(FFS version and byte order, or ``unknown``). Warnings about a damaged or hostile map go to stderr,
one line each; what they name was left out of the list.
"""

from __future__ import annotations

import errno
import os
import sys

TYPE_CHECKING = False  # typing's, without importing it (p2k.lazy)
if TYPE_CHECKING:  # argparse too: p2k.cli.quickparse reads this command's ordinary command lines
    import argparse
    from typing import Any

    from p2k.etfs.volumes import Volume
    from p2k.hyper import Backend


def register(sub: Any) -> None:
    p = sub.add_parser("parts", help="list the partitions of a disk image (like mmls), with the file system in each")
    p.add_argument("image", help="disk image (raw, qcow2, VMDK, VHD(X), gzip or xz), or an fsspec URL of one")
    p.set_defaults(func=cmd_parts)


def human(n: int) -> str:
    """Bytes as mmls -B would round them for a person: 512, 4.0M, 1.5G."""
    value = float(n)
    for unit in ("", "K", "M", "G"):
        if value < 1024:
            return f"{n}" if not unit else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}T"


def detect_in(backend: Backend, start: int, size: int) -> str:
    from p2k.fs.ffs.fs import probe

    def pread(off: int, n: int) -> bytes:
        return backend.pread(start + off, max(0, min(n, size - off)))
    return probe(pread, size) or "unknown"


def row(index: int, v: Volume, secsize: int, fs: str) -> str:
    first, count = v.start // secsize, v.size // secsize
    return (f"{index:03d}:  {v.name:<6} {first:>12} {first + count - 1:>12} {count:>12} {human(v.size):>7}  "
            f"{v.type:<20} {fs}")


def cmd_parts(args: argparse.Namespace) -> int:
    # Imported here, not at the top: ``p2k`` imports every command module to build its parser.
    from p2k.cli.imagearg import is_url, open_image_source
    from p2k.etfs.resolve import open_source
    from p2k.etfs.volumes import scan_volumes

    if is_url(args.image):
        backend = open_image_source(args.image, True)[0]
    elif not os.path.exists(args.image):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", args.image)
    else:
        backend = open_source(args.image, True)
    try:
        size = backend.size()
        vm = scan_volumes(backend.pread, size)
        for w in vm.warnings:
            print(f"p2k parts: {args.image}: warning: {w}", file=sys.stderr)
        kind = "" if backend.kind == "raw" else f" in a {backend.kind} container"
        whole = detect_in(backend, 0, size)
        if not vm.volumes and whole == "unknown" and vm.scheme == "none":
            raise OSError(errno.EINVAL, "no partition map and no FFS found", args.image)
        scheme = "no partition map" if vm.scheme == "none" else f"{vm.scheme} partition map"
        print(f"{args.image}: {scheme}, {vm.sector_size}-byte sectors, {size} bytes{kind}"
              + (f"; the whole image is {whole}" if whole != "unknown" else ""))
        if not vm.volumes:
            return 0
        print(f"{'':6}{'Name':<6} {'Start':>12} {'End':>12} {'Sectors':>12} {'Size':>7}  {'Type':<20} File system")
        for i, v in enumerate(vm.volumes):
            fs = "-" if v.container and v.scheme == "mbr" else detect_in(backend, v.start, v.size)
            print(row(i, v, vm.sector_size, fs))
    finally:
        backend.close()
    return 0
