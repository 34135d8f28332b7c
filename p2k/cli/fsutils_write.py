"""fs-utils style commands that change an image: mkdir, rm, rmdir, mv, ln, chmod, chown, touch and
write (stdin to a file). Each mounts the image read-write in a private kernel for the one command
(or talks to the server in RUMP_SERVER), like fs-utils' ``fsu_*`` tools; paths are image paths.
"""

from __future__ import annotations

import errno
import os
import stat as st
import sys

from p2k.cli.errors import UsageError, describe
from p2k.cli.fsview import open_view
from p2k.cli.imagearg import add_image_args
from p2k.fsview import FsView

TYPE_CHECKING = False  # typing's, without importing it: a command's --help never needs typing (p2k.lazy)
if TYPE_CHECKING:  # argparse too: a command read by p2k.cli.quickparse never imports it
    import argparse
    from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("mkdir", help="make directories in an image")
    add_image_args(p, server_ok=True)
    p.add_argument("-p", dest="parents", action="store_true", help="make parents as needed, no error if existing")
    p.add_argument("-m", dest="mode", default="755", help="mode (octal)")
    p.add_argument("paths", metavar="PATH", nargs="+", help="directories to make")
    p.set_defaults(func=cmd_mkdir)

    p = sub.add_parser("rm", help="remove files (and with -r, trees) from an image")
    add_image_args(p, server_ok=True)
    p.add_argument("-r", "-R", dest="recursive", action="store_true", help="remove directories and their contents")
    p.add_argument("-f", dest="force", action="store_true", help="ignore missing files")
    p.add_argument("paths", metavar="PATH", nargs="+", help="what to remove")
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("rmdir", help="remove empty directories from an image")
    add_image_args(p, server_ok=True)
    p.add_argument("paths", metavar="PATH", nargs="+", help="empty directories to remove")
    p.set_defaults(func=cmd_rmdir)

    p = sub.add_parser("mv", help="rename or move within an image")
    add_image_args(p, server_ok=True)
    p.add_argument("paths", metavar="SOURCE... TARGET", nargs="+",
                   help="what to move, then the new name (or an existing directory to move into)")
    p.set_defaults(func=cmd_mv)

    p = sub.add_parser("ln", help="make hard or (-s) symbolic links in an image")
    add_image_args(p, server_ok=True)
    p.add_argument("-s", dest="symbolic", action="store_true", help="symbolic link")
    p.add_argument("-f", dest="force", action="store_true", help="replace an existing target")
    p.add_argument("target", metavar="TARGET", help="what the link points at")
    p.add_argument("link", metavar="LINK", help="the new name (inside LINK if it is a directory)")
    p.set_defaults(func=cmd_ln)

    p = sub.add_parser("chmod", help="change modes in an image")
    add_image_args(p, server_ok=True)
    p.add_argument("mode", metavar="MODE", help="octal mode")
    p.add_argument("paths", metavar="PATH", nargs="+", help="files to change")
    p.set_defaults(func=cmd_chmod)

    # -h is chown's "the link itself", so help is --help only
    p = sub.add_parser("chown", help="change owners in an image (numeric uid[:gid])", add_help=False)
    p.add_argument("--help", action="help", help="show this help message and exit")
    add_image_args(p, server_ok=True)
    p.add_argument("-h", dest="nofollow", action="store_true", help="change a symbolic link itself")
    p.add_argument("owner", metavar="OWNER", help="uid[:gid] or :gid")
    p.add_argument("paths", metavar="PATH", nargs="+", help="files to change")
    p.set_defaults(func=cmd_chown)

    p = sub.add_parser("touch", help="create files or set their times to now in an image")
    add_image_args(p, server_ok=True)
    p.add_argument("-c", dest="nocreate", action="store_true", help="do not create missing files")
    p.add_argument("paths", metavar="PATH", nargs="+", help="files to create or touch")
    p.set_defaults(func=cmd_touch)

    p = sub.add_parser("write", help="write standard input to a file in an image")
    add_image_args(p, server_ok=True)
    p.add_argument("-a", dest="append", action="store_true", help="append instead of replacing")
    p.add_argument("path", metavar="PATH", help="image file to write")
    p.set_defaults(func=cmd_write)


def _mode(text: str) -> int:
    try:
        return int(text, 8)
    except ValueError:
        raise UsageError(f"invalid mode `{text}' (octal expected)") from None


def _each(paths: list[str], fn: Any, command: str = "") -> int:
    """Apply ``fn`` to every path; report failures one line each and go on, like the BSD tools."""
    rc = 0
    for p in paths:
        try:
            fn(p)
        except OSError as e:
            if e.filename is None:
                e.filename = p
            print(f"p2k {command}: {describe(e)}" if command else f"p2k: {describe(e)}", file=sys.stderr)
            rc = 1
    return rc


def cmd_mkdir(args: argparse.Namespace) -> int:
    mode = _mode(args.mode)
    with open_view(args, write=True) as v:
        def mk(p: str) -> None:
            if not args.parents:
                v.sys.mkdir(v.path(p), mode)
                return
            cur = ""
            for part in [x for x in p.split("/") if x]:
                cur += "/" + part
                try:
                    v.sys.mkdir(v.path(cur), mode)
                except FileExistsError:
                    if not st.S_ISDIR(v.sys.stat(v.path(cur)).st_mode):
                        raise

        return _each(args.paths, mk, args.command)


def _remove_tree(v: FsView, p: str) -> None:
    s = v.sys.lstat(v.path(p))
    if st.S_ISDIR(s.st_mode):
        for name in v.sys.listdir(v.path(p)):
            _remove_tree(v, p.rstrip("/") + "/" + name)
        v.sys.rmdir(v.path(p))
    else:
        v.sys.unlink(v.path(p))


def cmd_rm(args: argparse.Namespace) -> int:
    with open_view(args, write=True) as v:
        def rm(p: str) -> None:
            try:
                if args.recursive:
                    _remove_tree(v, p)
                else:
                    v.sys.unlink(v.path(p))
            except FileNotFoundError:
                if not args.force:
                    raise

        return _each(args.paths, rm, args.command)


def cmd_rmdir(args: argparse.Namespace) -> int:
    with open_view(args, write=True) as v:
        return _each(args.paths, lambda p: v.sys.rmdir(v.path(p)), args.command)


def cmd_mv(args: argparse.Namespace) -> int:
    if len(args.paths) < 2:
        raise UsageError("mv needs SOURCE... TARGET")
    *srcs, dst = args.paths
    with open_view(args, write=True) as v:
        try:
            dst_dir = st.S_ISDIR(v.sys.stat(v.path(dst)).st_mode)
        except FileNotFoundError:
            dst_dir = False
        if len(srcs) > 1 and not dst_dir:
            raise OSError(errno.ENOTDIR, "target is not a directory", dst)

        def mv(src: str) -> None:
            target = dst.rstrip("/") + "/" + os.path.basename(src.rstrip("/")) if dst_dir else dst
            v.sys.rename(v.path(src), v.path(target))

        return _each(srcs, mv, args.command)


def cmd_ln(args: argparse.Namespace) -> int:
    with open_view(args, write=True) as v:
        link = args.link
        try:
            if st.S_ISDIR(v.sys.stat(v.path(link)).st_mode):
                link = link.rstrip("/") + "/" + os.path.basename(args.target.rstrip("/"))
        except FileNotFoundError:
            pass
        if args.force:
            try:
                v.sys.unlink(v.path(link))
            except FileNotFoundError:
                pass
        if args.symbolic:
            v.sys.symlink(args.target, v.path(link))
        else:
            v.sys.link(v.path(args.target), v.path(link))
    return 0


def cmd_chmod(args: argparse.Namespace) -> int:
    mode = _mode(args.mode)
    with open_view(args, write=True) as v:
        return _each(args.paths, lambda p: v.sys.chmod(v.path(p), mode), args.command)


def _owner(text: str) -> tuple[int, int]:
    user, _, group = text.partition(":")
    try:
        return (int(user) if user else -1, int(group) if group else -1)
    except ValueError:
        raise UsageError(f"invalid owner `{text}' (numeric uid[:gid] expected)") from None


def cmd_chown(args: argparse.Namespace) -> int:
    uid, gid = _owner(args.owner)
    with open_view(args, write=True) as v:
        return _each(args.paths, lambda p: v.sys.chown(v.path(p), uid, gid, follow_symlinks=not args.nofollow),
                     args.command)


def cmd_touch(args: argparse.Namespace) -> int:
    with open_view(args, write=True) as v:
        def touch(p: str) -> None:
            try:
                v.sys.utimensat(v.path(p))
            except FileNotFoundError:
                if args.nocreate:
                    return
                v.sys.close(v.sys.open(v.path(p), os.O_WRONLY | os.O_CREAT, 0o644))

        return _each(args.paths, touch, args.command)


def cmd_write(args: argparse.Namespace) -> int:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if args.append else os.O_TRUNC)
    with open_view(args, write=True) as v:
        fd = v.sys.open(v.path(args.path), flags, 0o644)
        try:
            stdin = sys.stdin.buffer
            while chunk := stdin.read(1 << 20):
                v.sys.write(fd, chunk)
        finally:
            v.sys.close(fd)
    return 0
