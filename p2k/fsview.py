"""A file-system view: a ``sys`` object plus a path mapping, for walking and reading a tree.

The fs-utils style commands (``p2k/cli``), ``p2k.open_image``'s copy-out and makefs's attribute
copy are written against this, not against a kernel, so that the same code serves an image mounted
in a private kernel and (with RUMP_SERVER set) a remote server's namespace. The commands' way of
opening one (``p2k.cli.fsview.open_view``) and their listing format stay in the CLI.
"""

from __future__ import annotations

import errno
import os
import stat as st
from operator import itemgetter

TYPE_CHECKING = False  # typing's, without importing it: a command's --help never needs typing (p2k.lazy)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

_O_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY
_MAYBE_DIR = (0, 4)  # p2k.vfs.vattr's DT_UNKNOWN (4.2BSD directories) and DT_DIR, spelled out:
# importing p2k.vfs would load the kernel's package into every command's --help
_by_name = itemgetter(2)  # a Dirent's name
_DOTS = (b".", b"..")


def _positions(values: list[int], wanted: tuple[int, ...]) -> list[int]:
    """Indexes of the items of ``values`` that are in ``wanted``, in order, found by
    ``list.index`` (a C loop) rather than a Python one: the wanted ones are few."""
    out: list[int] = []
    for w in wanted:
        i = -1
        try:
            while True:
                i = values.index(w, i + 1)
                out.append(i)
        except ValueError:
            pass
    out.sort()
    return out


if TYPE_CHECKING:  # annotations only (p2k.hyper.containers says why)
    OnError = Callable[[str, OSError], None] | None
    """Where a walk reports a node it cannot read and goes on; None: the error is raised."""


def report(onerror: OnError, path: str, e: OSError) -> None:
    """Hand ``e`` to ``onerror`` (BSD tools say so and go on), or raise it when there is none."""
    if onerror is None:
        raise e
    onerror(path, e)


class _Frame:
    """A directory ``FsView.walk_paths`` is inside: its paths, its (index, lstat or error) of
    each entry that may be a directory, and how far each has been gone through."""

    __slots__ = ("paths", "special", "i", "j")

    def __init__(self, paths: list[str], special: list[tuple[int, os.stat_result | OSError]]) -> None:
        self.paths = paths
        self.special = special
        self.i = 0
        self.j = 0


class NamingSys:
    """The kernel speaks errno and knows only kernel paths; a user reading ``p2k ls`` errors wants
    the path they typed. This wraps a ``sys`` so that a failing call's OSError carries the image
    path of its first path argument and the plain strerror, as a BSD tool prints them."""

    def __init__(self, sys: Any, root: str) -> None:
        self._sys = sys
        self._root = root

    def _user_path(self, p: str) -> str:
        if self._root and (p == self._root or p.startswith(self._root + "/")):
            return p[len(self._root):] or "/"
        return p

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self._sys, name)
        if not callable(fn):
            return fn

        def call(*a: Any, **kw: Any) -> Any:
            try:
                return fn(*a, **kw)
            except OSError as e:
                if e.filename is not None or e.errno is None or not a or not isinstance(a[0], str):
                    raise
                raise OSError(e.errno, os.strerror(e.errno), self._user_path(a[0])) from None

        setattr(self, name, call)
        return call


class FsView:
    """Plain class (no dataclass) so that importing the commands does not import ``inspect``."""

    def __init__(self, sys: Any, root: str, closer: Any = None) -> None:
        self.sys = sys  # p2k.vfs.syscalls.Syscalls or a remote client's equivalent
        self.root = root  # where image paths start in the sys namespace ("/mnt", or "" for a server)
        self.closer = closer

    def path(self, p: str) -> str:
        p = p or "/"
        if not p.startswith("/"):
            p = "/" + p
        return (self.root + p).rstrip("/") or "/" if self.root else p

    def close(self) -> None:
        if self.closer is not None:
            self.closer()

    def __enter__(self) -> FsView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- helpers shared by the commands ----------------------------------------------------------
    def entries(self, d: str, onerror: OnError = None, sort: bool = True,
                ) -> list[tuple[str, os.stat_result]]:
        """(name, lstat) of each entry of directory ``d``, sorted by name (in directory order
        without ``sort``, as ``find`` walks without ``-s``). One scandir call where
        the kernel offers it (a lookup for the directory, not one per entry); a server's client
        without one gets listdir plus lstat per name. With ``onerror``, an entry that cannot be
        stat'ed is reported to it and left out (BSD ls goes on with the rest)."""
        base = d.rstrip("/") + "/"
        out = []
        scandir = getattr(self.sys, "scandir", None)
        if scandir is not None:
            pairs = [(e.name, e.stat) for e in scandir(self.path(d))]
        else:
            pairs = [(n, lambda n=n, **_: self.sys.lstat(self.path(base + n)))
                     for n in self.sys.listdir(self.path(d))]
        for name, stat in pairs:
            try:
                out.append((name, stat(follow_symlinks=False)))
            except OSError as e:
                report(onerror, base + name, e)
        if sort:
            out.sort(key=lambda e: e[0])
        return out

    def walk(self, top: str, onerror: OnError = None, sort: bool = True,
             ) -> Iterator[tuple[str, os.stat_result]]:
        """Depth-first (path, lstat) of ``top`` and everything below it, image paths, each
        directory's entries by name (or in directory order without ``sort``). With
        ``onerror``, a node that cannot be read is reported to it and the walk goes on (BSD find),
        and a directory met twice (a damaged image's cycle) is not entered again."""
        try:
            stack = [(top, self.sys.lstat(self.path(top)))]
        except OSError as e:
            report(onerror, top, e)
            return
        seen: set[tuple[int, int]] = set()
        while stack:
            p, s = stack.pop()
            yield p, s
            if st.S_ISDIR(s.st_mode) and (s.st_dev, s.st_ino) not in seen:
                seen.add((s.st_dev, s.st_ino))
                try:
                    ents = self.entries(p, onerror, sort)
                except OSError as e:
                    report(onerror, p, e)
                    continue
                base = p.rstrip("/") + "/"
                stack.extend((base + n, es) for n, es in reversed(ents))

    def walk_paths(self, top: str, onerror: OnError = None, sort: bool = True,
                   ) -> Iterator[list[str]]:
        """``walk``'s paths, in the same order, without the stat of every entry, for a find with
        nothing to test but names: files' inodes are never read (so a damaged one goes unnoticed,
        as with NetBSD's find). In batches, a directory's files at a time: this is the loop a
        find over ten thousand names spends its time in. A batch ends before each error is
        reported, so a caller that prints them prints the error in its place."""
        try:
            s = self.sys.lstat(self.path(top))
        except OSError as e:
            report(onerror, top, e)
            return
        out = [top]
        if not st.S_ISDIR(s.st_mode):
            yield out
            return
        seen = {(s.st_dev, s.st_ino)}
        # one frame per open directory; the files between two entries that may be directories
        # join the batch as one slice
        frames = [_Frame(*self._children(top, onerror, sort))]
        while frames:
            f = frames[-1]
            if f.j == len(f.special):
                out += f.paths[f.i:]
                frames.pop()
                continue
            k, es = f.special[f.j]
            out += f.paths[f.i:k + 1]
            f.i, f.j = k + 1, f.j + 1
            if isinstance(es, OSError):
                out.pop()
                yield out
                out = []
                report(onerror, f.paths[k], es)
            elif (es.st_dev, es.st_ino) not in seen and st.S_ISDIR(es.st_mode):
                seen.add((es.st_dev, es.st_ino))
                yield out
                out = []
                frames.append(_Frame(*self._children(f.paths[k], onerror, sort)))
        yield out

    def _children(self, d: str, onerror: OnError, sort: bool,
                  ) -> tuple[list[str], list[tuple[int, os.stat_result | OSError]]]:
        """Directory ``d`` listed as BSD find lists one when no primary needs a stat (fts's
        FTS_NOSTAT): getdents' names and the types the directory records. Returns the entries'
        paths, in directory order or with ``sort`` by the names' bytes (for UTF-8 names the
        order of ``walk``), and for each entry that may be a directory, its index with its lstat
        (to descend into it) or the error (fts's FTS_NS, for the caller to report in the entry's
        place). What the directory
        says is no directory is never read. getdents is a call a server offers too, so a remote
        walk saves the round trip per file as well. Written as whole-list steps: this is a find's
        inner loop."""
        sys = self.sys
        try:
            fd = sys.open(self.path(d), _O_DIRECTORY)
        except OSError as e:
            report(onerror, d, e)
            return [], []
        try:
            dents = []
            while batch := sys.getdents(fd, 4096):
                dents += batch
            if not dents:
                return [], []
            if sort:
                dents.sort(key=_by_name)
            # Columns by one C-level transposition, the dot entries dropped by position and the
            # possible directories found by C-level index scans (a subdirectory every hundred
            # names): per-entry Python here was a fifth of a find's walk.
            _, types_, names_, _ = zip(*dents, strict=True)
            names, types = list(names_), list(types_)
            for dot in _DOTS:
                while dot in names:
                    i = names.index(dot)
                    del names[i], types[i]
            if not names:
                return [], []
            base = d.rstrip("/") + "/"
            # One decode for the whole directory, and the prefix added by one replace: no name
            # holds a NUL (the kernel refuses one), and a NUL, being ASCII, ends any broken UTF-8
            # sequence before it as a lone name's end would.
            text = b"\0".join(names).decode("utf-8", "surrogateescape")
            paths = (base + text.replace("\0", "\0" + base)).split("\0")
            if len(paths) != len(names):
                raise OSError(errno.EIO, "a directory entry's name holds a NUL", d)
            special: list[tuple[int, os.stat_result | OSError]] = []
            cut = len(base)
            for i in _positions(types, _MAYBE_DIR):
                try:  # one lookup, in the open directory
                    special.append((i, sys.lstat(paths[i][cut:], dir_fd=fd)))
                except OSError as err:
                    special.append((i, err))
            return paths, special
        except OSError as e:
            report(onerror, d, e)
            return [], []
        finally:
            sys.close(fd)

    def read_file(self, p: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        fd = self.sys.open(self.path(p), os.O_RDONLY)
        try:
            while True:
                data = self.sys.read(fd, chunk)
                if not data:
                    return
                yield data
        finally:
            self.sys.close(fd)
