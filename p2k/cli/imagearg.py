"""The image argument every image command shares: ``IMAGE``, ``IMAGE:NAME`` or ``-d drivespec``.

fs-utils tools take an image and mount it in a private rump kernel for the one command; so do we.
``IMAGE:NAME`` names a partition as ``p2k parts IMAGE`` lists it (``p2``, ``s1a``, ``a``) or a byte
window ``@OFFSET[,SIZE]``; ``IMAGE`` alone is the image if it is an FFS, else its only FFS
partition (``p2k.etfs.resolve``). Images in qcow2, VMDK, VHD(X), gzip or xz containers are
recognised by content and opened read-only.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from dataclasses import dataclass

from p2k.etfs import ETFS_BLK, parse_drivespec, parse_size
from p2k.etfs.resolve import Target, resolve, split_image_arg
from p2k.fs.ffs.fs import probe
from p2k.kernel import Kernel
from p2k.vfs.mount import MNT_RDONLY

DEVKEY = "/dev/p2k0"
MOUNTPOINT = "/mnt"


@dataclass
class MountedImage:
    kernel: Kernel
    mountpoint: str
    readonly: bool
    notice: str | None = None  # e.g. why read-write was refused

    def path(self, p: str) -> str:
        """Image path → kernel path under the mount point."""
        p = p or "/"
        return MOUNTPOINT + ("" if p.startswith("/") else "/") + p if p != "/" else MOUNTPOINT

    def close(self) -> None:
        self.kernel.halt()

    def __enter__(self) -> MountedImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_argv: list[str] = []


def set_argv(argv: list[str]) -> None:
    """The command line being parsed (``p2k.cli.main`` sets it before building the parser)."""
    _argv[:] = argv


def drivespec_given() -> bool:
    return any(a == "-d" or (a.startswith("-d") and not a.startswith("--")) for a in _argv)


def add_image_args(p: argparse.ArgumentParser, *, image_optional: bool = False, server_ok: bool = False) -> None:
    """The image options. With ``server_ok`` and RUMP_SERVER set, the command works on the server's
    namespace and takes no IMAGE argument (fs-utils' commands against a rump_server)."""
    p.add_argument("-t", dest="fstype", default="ffs", choices=["ffs", "tmpfs"], help="file system type (ffs)")
    p.add_argument("-o", dest="options", default="", help="mount options, e.g. ro")
    p.add_argument("-d", dest="drivespec", default=None,
                   help="rump_server drivespec, e.g. key=/dev/dk,hostpath=disk.img,disklabel=a")
    if (server_ok and os.environ.get("RUMP_SERVER")) or drivespec_given():
        # The device comes from the server or from -d: no IMAGE positional, so that the command's
        # own paths are not taken for one.
        p.set_defaults(image=None)
        return
    if image_optional:
        p.add_argument("image", nargs="?", help="image file (IMAGE or IMAGE:a)")
    else:
        p.add_argument("image", help="image file (IMAGE or IMAGE:a for disklabel partition a)")


def parse_mount_options(text: str) -> dict[str, str]:
    opts: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        k, _, v = item.partition("=")
        opts[k] = v
    return opts


def open_image(args: argparse.Namespace, *, write: bool = False, kernel: Kernel | None = None) -> MountedImage:
    """Mount the image named by ``args`` at /mnt of a fresh kernel (or ``kernel``)."""
    opts = parse_mount_options(getattr(args, "options", "") or "")
    readonly = "ro" in opts or (not write and "rw" not in opts)
    k = kernel or Kernel(memlimit=opts.pop("memlimit", None) or None, nvnodes=opts.pop("nvnodes", None) or None)
    try:
        if args.fstype == "tmpfs":
            k.sys.mkdir(MOUNTPOINT, 0o755)
            k.sys.mount("tmpfs", MOUNTPOINT, 0, opts)
            return MountedImage(k, MOUNTPOINT, False)
        key = register_image(k, args, readonly)
        k.sys.mkdir(MOUNTPOINT, 0o755)
        flags = MNT_RDONLY if readonly else 0
        data: dict[str, object] = {"fspec": key, **{o: v for o, v in opts.items() if o not in ("ro", "rw")}}
        k.sys.mount(args.fstype, MOUNTPOINT, flags, data)
        return MountedImage(k, MOUNTPOINT, readonly)
    except BaseException:
        k.halt(sync=False)
        raise


def register_image(k: Kernel, args: argparse.Namespace, readonly: bool) -> str:
    """Register the image (or drivespec) with etfs; returns the device key."""
    if args.drivespec:
        spec = parse_drivespec(args.drivespec)
        if readonly:
            spec.readonly = True
        return spec.register(k.etfs).key
    if not args.image:
        raise OSError(2, "no image given (IMAGE or -d drivespec)")
    target = resolve_image(args.image, readonly)
    k.etfs_register(DEVKEY, target.backend, ETFS_BLK, size=target.size, offset=target.offset, readonly=readonly)
    return DEVKEY


def resolve_image(text: str, readonly: bool) -> Target:
    """``IMAGE[:NAME]`` → backend and window, with the map's warnings printed to stderr."""
    path, name = split_image_arg(text)
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
    target = resolve(path, name, readonly=readonly, detect=probe, parse_size=parse_size)
    for w in target.warnings:
        print(f"p2k: {path}: warning: {w}", file=sys.stderr)
    return target
