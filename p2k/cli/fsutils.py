"""fs-utils style read commands on an image without mounting it on the host: ls, cat, stat, find,
du, df, and cp (which also copies into an image when it is opened read-write).

``p2k cp`` marks image paths with a leading colon (``:/etc/motd``); a path without one is a host
path, so one command copies in either direction: ``p2k cp disk.img :/etc/motd .``.
"""

from __future__ import annotations

import os
import stat as st
import sys

from p2k.cli.errors import UsageError, describe
from p2k.cli.fsview import block_units, inode_lines, long_lines, open_view
from p2k.cli.imagearg import add_image_args
from p2k.cli.progress import add_quiet_arg
from p2k.fsview import FsView, report

TYPE_CHECKING = False  # typing's, without importing it: a command's --help never needs typing (p2k.lazy)
if TYPE_CHECKING:  # argparse too: a command read by p2k.cli.quickparse never imports it
    import argparse
    from collections.abc import Iterator
    from typing import Any

    from p2k.fsview import OnError


def register(sub: Any) -> None:
    p = sub.add_parser("ls", help="list directory contents in an image")
    add_image_args(p, server_ok=True)
    p.add_argument("-l", action="store_true", help="long format")
    p.add_argument("-R", action="store_true", help="recursive")
    p.add_argument("-a", action="store_true", help="include entries starting with a dot")
    p.add_argument("-i", action="store_true", help="print inode numbers")
    p.add_argument("paths", metavar="PATH", nargs="*", default=["/"], help="image paths to list (/)")
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("cat", help="print files from an image")
    add_image_args(p, server_ok=True)
    p.add_argument("paths", metavar="PATH", nargs="+", help="image files to print")
    p.set_defaults(func=cmd_cat)

    p = sub.add_parser("stat", help="show inode attributes of files in an image")
    add_image_args(p, server_ok=True)
    p.add_argument("paths", metavar="PATH", nargs="+", help="image paths to describe (links not followed)")
    p.set_defaults(func=cmd_stat)

    p = sub.add_parser("find", help="walk a tree in an image")
    add_image_args(p, server_ok=True)
    p.add_argument("path", metavar="PATH", nargs="?", default="/", help="where the walk starts (/)")
    p.add_argument("-name", dest="name", help="shell pattern for the last path component")
    p.add_argument("-type", dest="type", choices=list("fdlpscb"), help="file type")
    p.add_argument("-s", dest="sort", action="store_true",
                   help="each directory's entries by name (default: directory order, as NetBSD's find)")
    p.set_defaults(func=cmd_find)

    p = sub.add_parser("du", help="disk usage of a tree in an image (1 KiB units)")
    add_image_args(p, server_ok=True)
    p.add_argument("-s", action="store_true", help="summary only")
    p.add_argument("paths", metavar="PATH", nargs="*", default=["/"], help="trees to measure (/)")
    p.set_defaults(func=cmd_du)

    p = sub.add_parser("df", help="free space of an image's file system")
    add_image_args(p, server_ok=True)
    p.add_argument("-i", action="store_true", help="inode counts too")
    p.add_argument("path", nargs="?", default="/", metavar="PATH", help="a path on the file system (/)")
    p.set_defaults(func=cmd_df)

    p = sub.add_parser("cp", help="copy files out of (or into) an image; image paths start with ':'")
    add_image_args(p, server_ok=True)
    p.add_argument("-R", "-r", dest="recursive", action="store_true", help="copy directories recursively")
    p.add_argument("-p", dest="preserve", action="store_true", help="preserve mode, times and extended attributes")
    p.add_argument("-a", dest="archive", action="store_true", help="-R -p")
    add_quiet_arg(p)
    p.add_argument("paths", metavar="SRC... DST", nargs="+", help="sources then target; ':/path' is inside the image")
    p.set_defaults(func=cmd_cp)


# ---- ls ------------------------------------------------------------------------------------------
def cmd_ls(args: argparse.Namespace) -> int:
    """NetBSD ls's layout: file operands first, then each directory; a directory's name heads
    its listing when there are several operands or something was printed before it."""
    rc = 0
    with open_view(args) as v:
        files: list[tuple[str, os.stat_result]] = []
        dirs: list[str] = []
        for p in args.paths:
            try:
                s = v.sys.lstat(v.path(p))
            except OSError as e:
                print(f"p2k ls: {describe(e)}", file=sys.stderr)
                rc = 1
                continue
            if st.S_ISDIR(s.st_mode):
                dirs.append(p)
            else:
                files.append((p, s))
        printed = bool(files)
        if files:
            failed: list[str] = []

            def onerror(path: str, e: OSError) -> None:
                _complain("ls", path, e)  # a symlink operand whose target cannot be read
                failed.append(path)

            _write_lines(_ls_lines(v, args, files, "/", onerror))
            rc |= bool(failed)
        for p in dirs:
            try:
                rc |= _ls_tree(v, args, p, len(args.paths) > 1, printed)
            except BrokenPipeError:
                raise  # the reader went away: not an error of this path (run_main exits quietly)
            except OSError as e:
                print(f"p2k ls: {describe(e)}", file=sys.stderr)
                rc = 1
            printed = True
    return rc


def _ls_tree(v: FsView, args: argparse.Namespace, top: str, named: bool, printed: bool) -> int:
    """``top``'s listing, and with -R every directory below it, each after the one above. A
    directory that is one of its own ancestors (a damaged image's hard link to a directory) is
    listed in its parent but not entered: fts's FTS_DC, which BSD ls reports and passes over."""
    s = v.sys.lstat(v.path(top))
    dirs: list[tuple[str, tuple[tuple[int, int], ...]]] = [(top, ((s.st_dev, s.st_ino),))]
    failed: list[str] = []

    def onerror(path: str, e: OSError) -> None:
        _complain("ls", path, e)  # BSD ls: say so, list the rest, exit 1 at the end
        failed.append(path)

    while dirs:
        d, here = dirs.pop(0)  # here: the keys of d and of every directory above it
        try:
            listing = v.entries(d, onerror)
        except OSError as e:
            onerror(d, e)
            continue
        if args.a:
            listing = [(".", v.sys.lstat(v.path(d))), ("..", v.sys.lstat(v.path(d.rstrip("/") + "/.."))),
                       *listing]
        else:
            listing = [(n, es) for n, es in listing if not n.startswith(".")]
        lines = [f"\n{d}:"] if printed else [f"{d}:"] if named else []
        printed = True
        base = d.rstrip("/") + "/"
        if listing and args.l:
            units = block_units()
            lines.append(f"total {-(-sum(es.st_blocks for _, es in listing) // units)}")
        lines += _ls_lines(v, args, listing, base, onerror)
        _write_lines(lines)  # (an error writing the listing itself, EPIPE say, ends the command)
        if args.R:
            sub = []
            for n, es in listing:
                if st.S_ISDIR(es.st_mode) and n not in (".", ".."):
                    if (es.st_dev, es.st_ino) in here:
                        sys.stdout.flush()
                        print(f"p2k ls: {base + n}: directory causes a cycle", file=sys.stderr)
                    else:
                        sub.append((base + n, (*here, (es.st_dev, es.st_ino))))
            dirs[0:0] = sub
    return 1 if failed else 0


def _ls_lines(v: FsView, args: argparse.Namespace, listing: list[tuple[str, os.stat_result]], base: str,
              onerror: OnError = None) -> list[str]:
    """One listing's lines. With -l a symlink's target is read; one that cannot be is said in
    its place (the line is left out), as BSD ls does."""
    if not args.l:
        return inode_lines(listing) if args.i else [n for n, _ in listing]
    rows: list[tuple[str, os.stat_result, str | None]] = []
    for n, es in listing:
        target = None
        if st.S_ISLNK(es.st_mode):
            full = n if n.startswith("/") else base + n
            try:
                target = v.sys.readlink(v.path(full))
            except OSError as e:
                report(onerror, full, e)
                continue
        rows.append((n, es, target))
    return long_lines(rows, args.i)


def _write_lines(lines: list[str]) -> None:
    """One write per directory instead of a print per entry (print was a seventh of ls -lR's
    time); ``lines`` is emptied so that an error message can follow the lines before it."""
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")
        lines.clear()


def _complain(cmd: str, path: str, e: OSError) -> None:
    sys.stdout.flush()
    print(f"p2k {cmd}: {path}: {e.strerror or e}", file=sys.stderr)


# ---- cat, stat -----------------------------------------------------------------------------------
def cmd_cat(args: argparse.Namespace) -> int:
    out = sys.stdout.buffer
    with open_view(args) as v:
        for p in args.paths:
            for chunk in v.read_file(p):
                out.write(chunk)
    out.flush()
    return 0


def cmd_stat(args: argparse.Namespace) -> int:
    with open_view(args) as v:
        for p in args.paths:
            s = v.sys.lstat(v.path(p))
            target = v.sys.readlink(v.path(p)) if st.S_ISLNK(s.st_mode) else None
            print(f"  File: {p}" + (f" -> {target}" if target else ""))
            print(f"  Size: {s.st_size:<12d} Blocks: {s.st_blocks:<8d} IO Block: {s.st_blksize}")
            print(f" Inode: {s.st_ino:<12d} Links: {s.st_nlink}   Type: {_type_name(s.st_mode)}")
            print(f"Access: ({st.S_IMODE(s.st_mode):04o}/{st.filemode(s.st_mode)})  Uid: {s.st_uid}  Gid: {s.st_gid}"
                  + (f"  Device: {os.major(s.st_rdev)},{os.minor(s.st_rdev)}"
                     if st.S_ISCHR(s.st_mode) or st.S_ISBLK(s.st_mode) else ""))
            for label, ns in (("Access", s.st_atime_ns), ("Modify", s.st_mtime_ns), ("Change", s.st_ctime_ns)):
                print(f"{label}: {_fmt_ns(ns)}")
            from p2k.cli.xattr import xattr_summary

            ext = xattr_summary(v, p)
            if ext:
                print(ext)
    return 0


def _type_name(mode: int) -> str:
    for test, name in ((st.S_ISREG, "regular file"), (st.S_ISDIR, "directory"), (st.S_ISLNK, "symbolic link"),
                       (st.S_ISCHR, "character device"), (st.S_ISBLK, "block device"), (st.S_ISFIFO, "fifo"),
                       (st.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "unknown"


def _fmt_ns(ns: int) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}"


# ---- find, du, df --------------------------------------------------------------------------------
_TYPE_TEST = {"f": st.S_ISREG, "d": st.S_ISDIR, "l": st.S_ISLNK, "p": st.S_ISFIFO, "s": st.S_ISSOCK,
              "c": st.S_ISCHR, "b": st.S_ISBLK}


def cmd_find(args: argparse.Namespace) -> int:
    failed: list[int] = []
    lines: list[str] = []  # written in batches, as ls does: a print per name was 2 writes each

    def onerror(p: str, e: OSError) -> None:
        _write_lines(lines)  # the names found before the error come before its message
        _complain("find", p, e)
        failed.append(1)

    with open_view(args) as v:
        # Only -type needs each entry's inode; without it find reads directories alone, as
        # NetBSD's find does (fts's FTS_NOSTAT): ten thousand files are ten thousand names.
        if args.type:
            test = _TYPE_TEST[args.type]
            batches: Iterator[list[str]] = ([p] for p, s in v.walk(args.path, onerror, args.sort)
                                            if test(s.st_mode))
        else:
            batches = v.walk_paths(args.path, onerror, args.sort)
        pattern = args.name
        if pattern is not None:
            from fnmatch import fnmatchcase  # here: only -name needs it (it imports re, with enum: 2.5 ms)
        for batch in batches:
            if pattern is not None:
                batch = [p for p in batch if fnmatchcase(p.rpartition("/")[2] or "/", pattern)]
            lines += batch
            if len(lines) >= 1024:
                _write_lines(lines)
    _write_lines(lines)
    return 1 if failed else 0


def cmd_du(args: argparse.Namespace) -> int:
    failed: list[int] = []

    def onerror(p: str, e: OSError) -> None:
        _complain("du", p, e)
        failed.append(1)

    with open_view(args) as v:
        for top in args.paths:
            totals: dict[str, int] = {}
            seen: set[int] = set()
            order: list[str] = []
            for p, s in v.walk(top, onerror):
                if s.st_ino in seen and not st.S_ISDIR(s.st_mode):
                    continue  # hard links count once, as du does
                seen.add(s.st_ino)
                blocks = s.st_blocks
                d = p if st.S_ISDIR(s.st_mode) else os.path.dirname(p) or "/"
                if st.S_ISDIR(s.st_mode):
                    order.append(p)
                # charge every ancestor directory up to top
                cur = d
                while True:
                    totals[cur] = totals.get(cur, 0) + blocks
                    if cur == top or cur in ("/", ""):
                        break
                    cur = os.path.dirname(cur) or "/"
            shown = [top] if args.s else list(reversed(order))
            for d in shown:
                print(f"{totals.get(d, 0) // 2}\t{d}")
    return 1 if failed else 0


def cmd_df(args: argparse.Namespace) -> int:
    with open_view(args) as v:
        sv = v.sys.statvfs(v.path(args.path))
        k = sv.f_frsize / 1024
        total, free, avail = int(sv.f_blocks * k), int(sv.f_bfree * k), int(sv.f_bavail * k)
        used = total - free
        cap = 100 * used // (used + avail) if used + avail else 0
        print(f"{'Filesystem':<20} {'1K-blocks':>10} {'Used':>10} {'Avail':>10} {'Capacity':>8}"
              + (f" {'iused':>8} {'ifree':>8}" if args.i else ""))
        name = args.image or getattr(args, "drivespec", "") or "server"
        print(f"{name:<20} {total:>10} {used:>10} {avail:>10} {cap:>7}%"
              + (f" {sv.f_files - sv.f_ffree:>8} {sv.f_ffree:>8}" if args.i else ""))
    return 0


# ---- cp ------------------------------------------------------------------------------------------
def cmd_cp(args: argparse.Namespace) -> int:
    from p2k.cli.fscopy import copy_paths
    from p2k.cli.progress import Bars, wanted

    *srcs, dst = args.paths
    if not srcs:
        raise UsageError("cp needs SRC... DST")
    into = dst.startswith(":")
    recursive, preserve = args.recursive or args.archive, args.preserve or args.archive
    with open_view(args, write=into) as v, Bars(wanted(args) and recursive, "cp", units={"copied": "B"}) as bars:
        return copy_paths(v, srcs, dst, recursive=recursive, preserve=preserve, progress=bars)
