"""The image argument every image command shares: ``IMAGE``, ``IMAGE:a`` or ``-d drivespec``.

fs-utils tools take an image and mount it in a private rump kernel for the one command; so do we.
``IMAGE:a`` means partition *a* of a NetBSD disklabel in the image, as ``disklabel=a`` would.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from p2k.kernel import Kernel

DEVKEY = "/dev/p2k0"
MOUNTPOINT = "/mnt"

_PART = re.compile(r"^(?P<path>.+):(?P<part>[a-z])$")


class MountedImage:
    """A plain class, not a dataclass: ``dataclasses`` pulls in ``inspect``, a cost every command
    would pay at start-up for one four-field record."""

    def __init__(self, kernel: Kernel, mountpoint: str, readonly: bool, notice: str | None = None) -> None:
        self.kernel = kernel
        self.mountpoint = mountpoint
        self.readonly = readonly
        self.notice = notice  # e.g. why read-write was refused

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
    from p2k.kernel import Kernel  # imported here so that parsing the command line stays cheap
    from p2k.vfs.mount import MNT_RDONLY

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
    from p2k.etfs import ETFS_BLK, DriveSpec, parse_drivespec

    if args.drivespec:
        spec = parse_drivespec(args.drivespec)
        if readonly:
            spec.readonly = True
        return spec.register(k.etfs).key
    if not args.image:
        raise OSError(2, "no image given (IMAGE or -d drivespec)")
    path, part = split_image(args.image)
    if part:
        # Built directly, not as text: a host path may hold commas that a drivespec cannot.
        spec = DriveSpec(key=DEVKEY, hostpath=path, disklabel=part, readonly=readonly)
        return spec.register(k.etfs).key
    if not os.path.exists(path):
        raise FileNotFoundError(2, "No such file or directory", path)
    k.etfs_register(DEVKEY, path, ETFS_BLK, readonly=readonly)
    return DEVKEY


def split_image(text: str) -> tuple[str, str | None]:
    m = _PART.match(text)
    if m and not os.path.exists(text):
        return m.group("path"), m.group("part")
    return text, None
