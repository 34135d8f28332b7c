"""The image argument every image command shares: ``IMAGE``, ``IMAGE:NAME`` or ``-d drivespec``.

fs-utils tools take an image and mount it in a private rump kernel for the one command; so do we.
``IMAGE:NAME`` names a partition as ``p2k parts IMAGE`` lists it (``p2``, ``s1a``, ``a``) or a byte
window ``@OFFSET[,SIZE]``; ``IMAGE`` alone is the image if it is an FFS, else its only FFS
partition (``p2k.etfs.resolve``). Images in qcow2, VMDK, VHD(X), gzip or xz containers are
recognised by content and opened read-only.
"""

from __future__ import annotations

import errno
import os
import sys

from p2k.cli.progress import Bars, wanted

TYPE_CHECKING = False  # typing's, without importing it: a command's --help never needs typing (p2k.lazy)
if TYPE_CHECKING:  # argparse too: a command read by p2k.cli.quickparse never imports it
    import argparse
    from collections.abc import Callable
    from typing import Any

    from p2k.cli.quickparse import Namespace, Option, QuickParser
    from p2k.etfs import EtfsRegistry
    from p2k.etfs.resolve import Target
    from p2k.hyper import Backend
    from p2k.hyper.containers import Progress
    from p2k.kernel import Kernel

DEVKEY = "/dev/p2k0"
MOUNTPOINT = "/mnt"


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


NOT_GIVEN: Any = object()  # default of an operand argparse saw no word for (see settle_operands)


def add_image_args(p: argparse.ArgumentParser | QuickParser, *, image_optional: bool = False,
                   server_ok: bool = False) -> None:
    """The image options and the IMAGE operand; call before the command's own operands.

    The parser is the same whatever the environment, so that ``--help`` never changes with it; who
    gets the operands (IMAGE first, or no IMAGE with ``-d`` or, when ``server_ok``, with RUMP_SERVER
    set) is decided after parsing, by ``settle_operands``."""
    p.add_argument("-t", dest="fstype", default="ffs", choices=["ffs", "tmpfs"],
                   help="file system type of the image (ffs); tmpfs has no image and is for p2k mount only")
    p.add_argument("-o", dest="options", default="", help="mount options, e.g. ro")
    p.add_argument("-d", dest="drivespec", default=None,
                   help="rump_server drivespec, e.g. key=/dev/dk,hostpath=disk.img,part=p2; "
                        "takes the place of IMAGE")
    where = "; omitted with -d" + (" or when RUMP_SERVER is set" if server_ok else "")
    p.add_argument("image", metavar="IMAGE", nargs="?", default=NOT_GIVEN,
                   help="image file or whole disk (raw, qcow2, VMDK, VHD(X), gzip, xz), or an fsspec URL "
                        "(https://…, s3://…: read-only, read in ranges), or IMAGE:NAME for a partition as "
                        "'p2k parts' names it (p2, s1a, a, @OFFSET[,SIZE])" + where)
    p.set_defaults(_image_operand=(image_optional, server_ok))


def _positionals(p: argparse.ArgumentParser | QuickParser) -> list[argparse.Action | Option]:
    return [a for a in p._actions if not a.option_strings]  # noqa: SLF001 - argparse has no public list


def hide_operand_defaults(p: argparse.ArgumentParser | QuickParser) -> None:
    """Mark the operands argparse saw no word for, so that settle_operands can tell "not given"
    from "given the default's value"; the real defaults are applied there."""
    for a in _positionals(p):
        if a.nargs in ("?", "*") and a.dest != "image":
            p.set_defaults(**{"_default_" + a.dest: a.default})
            a.default = NOT_GIVEN


def settle_operands(p: argparse.ArgumentParser | QuickParser, args: argparse.Namespace | Namespace,
                    extra: list[str]) -> None:
    """Hand the operand words to IMAGE and the command's operands, now that the mode is known.

    argparse fills IMAGE first whatever the mode, and stops at an option between operands
    (``ls IMG -l /a`` leaves ``/a`` over); so the words are gathered in order and dealt again: to
    IMAGE first unless ``-d`` or RUMP_SERVER takes its place, then greedily left to right, as
    argparse itself would."""
    image_optional, server_ok = args._image_operand
    words: list[str] = []
    actions = _positionals(p)
    for a in actions:
        v = getattr(args, a.dest)
        if v is NOT_GIVEN or v is None:
            continue
        words += v if isinstance(v, list) else [v]
    for w in extra:
        if w.startswith("-") and w != "-":
            p.error(f"unrecognized arguments: {' '.join(extra)}")
        words.append(w)
    no_image = args.drivespec is not None or (server_ok and bool(os.environ.get("RUMP_SERVER")))
    if no_image:
        actions = [a for a in actions if a.dest != "image"]
        args.image = None
    left = len(words)
    for i, a in enumerate(actions):
        if a.dest == "image":
            low, high = (0 if image_optional else 1), 1
        else:
            low = _least(a)
            high = 1 if a.nargs in (None, "?") else a.nargs if isinstance(a.nargs, int) else left
        rest = sum(_least(b) for b in actions[i + 1:])
        take = min(high, left - rest)
        if take < low:
            missing = [b.metavar or b.dest for b in actions[i:] if _least(b) or b is a]
            p.error(f"the following arguments are required: {', '.join(map(str, missing))}")
        got, words = words[:take], words[take:]
        left -= take
        if a.nargs in ("*", "+") or isinstance(a.nargs, int):
            value: Any = got if got else getattr(args, "_default_" + a.dest, None)
        else:
            value = got[0] if got else getattr(args, "_default_" + a.dest, None)
        setattr(args, a.dest, value)
    if words:
        p.error(f"unrecognized arguments: {' '.join(words)}")


def _least(a: argparse.Action | Option) -> int:
    if a.nargs in ("?", "*"):
        return 0
    return a.nargs if isinstance(a.nargs, int) else 1


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
    check_fstype(args)
    try:
        if args.fstype == "tmpfs":
            k.sys.mkdir(MOUNTPOINT, 0o755)
            k.sys.mount("tmpfs", MOUNTPOINT, 0, opts)
            return MountedImage(k, MOUNTPOINT, False)
        key = register_image(k.etfs, args, readonly)
        k.sys.mkdir(MOUNTPOINT, 0o755)
        flags = MNT_RDONLY if readonly else 0
        data: dict[str, object] = {"fspec": key, **{o: v for o, v in opts.items() if o not in ("ro", "rw")}}
        try:
            k.sys.mount(args.fstype, MOUNTPOINT, flags, data)
        except OSError as e:
            if e.filename is None and e.errno is not None:
                raise OSError(e.errno, e.strerror, args.image or args.drivespec) from None
            raise
        return MountedImage(k, MOUNTPOINT, readonly)
    except BaseException:
        k.halt(sync=False)
        raise


def check_fstype(args: argparse.Namespace) -> None:
    """``-t`` names the image's file system. tmpfs keeps nothing on disk: its "special" is only a
    name (``mount -t tmpfs none /mnt``), so a real file or drivespec given with ``-t tmpfs`` would
    be silently ignored — that is a mistake to report, not an empty file system to list."""
    if args.fstype != "tmpfs":
        return
    from p2k.etfs.resolve import split_image_arg

    if args.drivespec or (args.image and os.path.exists(split_image_arg(args.image)[0])):
        raise OSError(errno.EINVAL, "-t tmpfs: tmpfs has no on-disk image; this one would be ignored",
                      args.image or args.drivespec)


def register_image(etfs: EtfsRegistry, args: argparse.Namespace, readonly: bool) -> str:
    """Register the image (or drivespec) in ``etfs`` (a kernel's, or a registry of its own for
    the commands that read a device without a kernel: fsck, dumpfs); returns the device key."""
    from p2k.etfs import ETFS_BLK

    if args.drivespec:
        from p2k.etfs.drivespec import parse_drivespec

        spec = parse_drivespec(args.drivespec)
        if readonly:
            spec.readonly = True
        return spec.register(etfs).key
    if not args.image:
        raise OSError(errno.EINVAL, "no image given (IMAGE or -d drivespec)")
    target = resolve_image(args.image, readonly, prog=f"p2k {getattr(args, 'command', None) or ''}".rstrip(),
                           bars=wanted(args))
    etfs.register(DEVKEY, target.backend, ETFS_BLK, size=target.size, offset=target.offset, readonly=readonly)
    return DEVKEY


def resolve_image(text: str, readonly: bool, prog: str = "p2k", bars: bool = False) -> Target:
    """``IMAGE[:NAME]`` → backend and window, with the map's warnings printed to stderr as
    ``PROG: IMAGE: warning: ...``; with ``bars``, a bar for a container's first full pass (a
    multi-gigabyte gzip'd release image takes a while to index before its first read)."""
    from p2k.etfs.resolve import resolve
    from p2k.fs.ffs.fs import probe
    from p2k.hyper.containers import GZIP_INDEX

    with Bars(bars, prog.removeprefix("p2k ") or "p2k", units={GZIP_INDEX: "B"}) as progress:
        backend, path, name = open_image_source(text, readonly, progress)
        sizes: Callable[[str, str], int] | None = None
        if name is not None:  # an @OFFSET,SIZE window; drivespecs are not imported for a bare image
            from p2k.etfs.drivespec import parse_size

            sizes = parse_size
        target = resolve(backend, name, readonly=readonly, detect=probe, parse_size=sizes)
    for w in target.warnings:
        print(f"{prog}: {path}: warning: {w}", file=sys.stderr)
    return target


def is_url(text: str) -> bool:
    """``scheme://…`` other than ``file://``: an image fsspec opens (http(s), s3, memory…)."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.isidentifier() and scheme not in ("file", "local")


def open_image_source(text: str, readonly: bool, progress: Progress | None = None) -> tuple[Backend, str, str | None]:
    """The backend of ``IMAGE[:NAME]``, the image's path or URL, and NAME. IMAGE may be a URL
    (``https://host/NetBSD-10.0-amd64.img.gz``): fsspec reads it in ranges, never whole, and it is
    read-only; its container is decoded in place and a qcow2 overlay's backing file is fetched
    from beside it."""
    from p2k.etfs.resolve import open_source, split_image_arg
    from p2k.hyper import open_fileobj

    if text.startswith("file://"):
        text = text[len("file://"):]
    if not is_url(text):
        path, name = split_image_arg(text)
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return open_source(path, readonly, progress), path, name
    if not readonly:
        raise OSError(errno.EROFS, "an image behind a URL is read-only", text)
    from p2k.urls import open_url

    try:
        f, open_sibling, url, name = open_url(text)
    except ImportError as e:  # fsspec itself (the [fsspec] extra), or a protocol's package (s3fs…)
        need = "fsspec: pip install 'p2k[fsspec]'" if e.name == "fsspec" else f"a package not installed ({e})"
        raise OSError(errno.ENOTSUP, f"reading this URL needs {need}", text) from None
    except (OSError, ValueError) as e:  # fsspec: FileNotFoundError, or ValueError for a bad URL
        if isinstance(e, OSError) and e.errno:
            raise
        raise OSError(errno.ENOENT if isinstance(e, FileNotFoundError) else errno.EINVAL,
                      str(e) or type(e).__name__, text) from None
    return open_fileobj(f, url, progress=progress, open_sibling=open_sibling), url, name
