"""p2k as an fsspec file system: protocol ``p2k``, so pandas, Dask, xarray and DuckDB can read files
inside BSD disk images.

``fsspec.filesystem("p2k", fo="disk.img:a")`` mounts partition *a* of a local image;
``fsspec.open("p2k://etc/motd::disk.img")`` and ``p2k://data/x.csv::https://host/disk.img`` are the
chained-URL forms, where fsspec opens the image itself and hands this class the file object. Either
way the image becomes an etfs device of a private kernel (``p2k.open_image``) and every read goes
through the same window check and buffer cache as ``p2k mount`` — a remote image is read in blocks
on demand, never downloaded whole.

Local images may be opened read-write (``mode="rw"``); remote ones are read-only, because a file
object over a network store cannot take the small in-place writes a file system makes.

Paths are relative to the image's root, without a leading slash (``etc/motd``), as for fsspec's
archive file systems. Symbolic links are reported as ``type: "link"`` with their ``destination``;
opening one follows it, as ``open(2)`` does.
"""

from __future__ import annotations

import datetime as _dt
import errno
import os
import stat as st
import threading
import weakref
from typing import Any

from fsspec import AbstractFileSystem
from fsspec.core import split_protocol
from fsspec.implementations.local import LocalFileSystem

from p2k.image import ImageFS, open_image
from p2k.kfile import open_kernel_file
from p2k.urls import REMOTE_BLOCK_SIZE, open_url

"""Read-ahead of the remote file object: large enough that FFS's scattered metadata reads are few
requests, small enough that a few files out of a large image cost a few MiB of transfer."""

_TYPES = {st.S_IFDIR: "directory", st.S_IFREG: "file", st.S_IFLNK: "link"}


class P2KFileSystem(AbstractFileSystem):
    """The file system inside one BSD disk image (FFS, either byte order, or a disklabel partition)."""

    protocol = "p2k"
    root_marker = ""

    def __init__(self, fo: Any = "", mode: str = "r", target_protocol: str | None = None,
                 target_options: dict[str, Any] | None = None, partition: str | None = None,
                 fstype: str = "ffs", memlimit: int | str | None = None,
                 remote_block_size: int = REMOTE_BLOCK_SIZE, auto_mkdir: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in ("r", "rw"):
            raise ValueError(f"p2k: mode must be 'r' or 'rw', not {mode!r}")
        if not fo:
            raise ValueError("p2k: no image given (fo='disk.img' or a chained URL 'p2k://path::disk.img')")
        self.mode = mode
        self.auto_mkdir = auto_mkdir  # writing a/b/c creates a/b, as object stores (and fsspec's suite) expect
        self.image = self._open_image(fo, mode, target_protocol, target_options or {}, partition, fstype,
                                      memlimit, remote_block_size)
        self._finalizer = weakref.finalize(self, _release, self.image)

    @staticmethod
    def _open_image(fo: Any, mode: str, target_protocol: str | None, target_options: dict[str, Any],
                    partition: str | None, fstype: str, memlimit: int | str | None, block_size: int) -> ImageFS:
        if hasattr(fo, "open") and not hasattr(fo, "read"):
            fo = fo.open()  # an fsspec OpenFile: the file object it stands for
        if not isinstance(fo, str | os.PathLike):
            return open_image(fo, mode, fstype=fstype, partition=partition, memlimit=memlimit)
        url = os.fspath(fo)
        protocol = target_protocol or split_protocol(url)[0] or "file"
        if protocol in ("file", "local"):
            path = LocalFileSystem._strip_protocol(url)
            return _shared(path, mode, fstype, partition, memlimit)
        if mode != "r":
            raise ValueError(f"p2k: {protocol}:// images are read-only (mode='r')")
        f, open_sibling, url, partition = open_url(url, protocol, target_options, block_size, partition)
        return open_image(f, "r", fstype=fstype, partition=partition, memlimit=memlimit, name=url,
                          close_fileobj=True, open_sibling=open_sibling)

    # ---- paths -----------------------------------------------------------------------------------
    @classmethod
    def _strip_protocol(cls, path: Any) -> str:
        path = os.fspath(path) if isinstance(path, os.PathLike) else path
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]  # type: ignore[return-value]
        path = path.split("::", 1)[0]
        if path.startswith("p2k://"):
            path = path[len("p2k://"):]
        return path.strip("/")

    def _k(self, path: str) -> str:
        return self.image.kpath("/" + self._strip_protocol(path))

    # ---- metadata --------------------------------------------------------------------------------
    def _info_of(self, name: str, s: os.stat_result) -> dict[str, Any]:
        fmt = st.S_IFMT(s.st_mode)
        info: dict[str, Any] = {
            "name": name, "size": s.st_size, "type": _TYPES.get(fmt, "other"), "mode": s.st_mode,
            "uid": s.st_uid, "gid": s.st_gid, "nlink": s.st_nlink, "ino": s.st_ino,
            "mtime": s.st_mtime, "atime": s.st_atime, "ctime": s.st_ctime, "islink": fmt == st.S_IFLNK,
        }
        birth = getattr(s, "st_birthtime", None)
        if birth:
            info["created"] = birth
        if fmt == st.S_IFLNK:
            info["destination"] = os.fsdecode(self.image.sys.readlink(self._k(name)))
        return info

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        name = self._strip_protocol(path)
        try:
            s = self.image.sys.lstat(self._k(name))
        except OSError as e:
            raise _as_fsspec_error(e, name) from None
        return self._info_of(name, s)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        name = self._strip_protocol(path)
        info = self.info(name)
        if info["type"] != "directory":
            entries = [info]
        else:
            kdir = self._k(name)
            entries = []
            for n in self.image.names(kdir):
                child = f"{name}/{n}" if name else n
                entries.append(self._info_of(child, self.image.sys.lstat(self._k(child))))
        return entries if detail else [e["name"] for e in entries]

    def created(self, path: str) -> _dt.datetime:
        info = self.info(path)
        return _dt.datetime.fromtimestamp(info.get("created", info["ctime"]), tz=_dt.UTC)

    def modified(self, path: str) -> _dt.datetime:
        return _dt.datetime.fromtimestamp(self.info(path)["mtime"], tz=_dt.UTC)

    # ---- data ------------------------------------------------------------------------------------
    def _open(self, path: str, mode: str = "rb", block_size: int | None = None, autocommit: bool = True,
              cache_options: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        name = self._strip_protocol(path)
        if self.auto_mkdir and set(mode) & set("wax+") and "/" in name:
            self.makedirs(self._parent(name), exist_ok=True)
        try:
            return open_kernel_file(self.image.sys, self._k(name), mode, name=name)
        except OSError as e:
            raise _as_fsspec_error(e, name) from None

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        """Bytes ``[start, end)`` (negative counts from the end) with one ranged read, not a copy of
        the file: what Parquet and CSV readers ask for their footers and chunks."""
        name = self._strip_protocol(path)
        sys = self.image.sys
        try:
            fd = sys.open(self._k(name), os.O_RDONLY)
        except OSError as e:
            raise _as_fsspec_error(e, name) from None
        try:
            size = sys.fstat(fd).st_size
            lo = 0 if start is None else (max(size + start, 0) if start < 0 else start)
            hi = size if end is None else (max(size + end, 0) if end < 0 else min(end, size))
            return sys.pread(fd, hi - lo, lo) if hi > lo else b""
        finally:
            sys.close(fd)

    def get_file(self, rpath: str, lpath: str, callback: Any = None, outfile: Any = None, **kwargs: Any) -> None:
        """Like fsspec's, but a symbolic link in the image becomes one on the host, so ``get``
        with ``recursive=True`` copies a tree as it is, not with its links' targets duplicated."""
        info = self.info(rpath)
        if info["type"] == "link" and outfile is None and not isinstance(lpath, (list, tuple)):
            if os.path.lexists(lpath):
                os.unlink(lpath)
            os.symlink(info["destination"], lpath)
            return
        kw = {} if callback is None else {"callback": callback}
        super().get_file(rpath, lpath, outfile=outfile, **kw, **kwargs)

    # ---- changes (mode="rw") ---------------------------------------------------------------------
    def _call(self, fn: Any, *args: Any, name: str = "") -> Any:
        try:
            return fn(*args)
        except OSError as e:
            raise _as_fsspec_error(e, name) from None

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        name = self._strip_protocol(path)
        if self.exists(name):
            raise FileExistsError(errno.EEXIST, "File exists", name)
        if create_parents:
            self.makedirs(name, exist_ok=True)
        else:
            self._call(self.image.sys.mkdir, self._k(name), 0o755, name=name)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        name = self._strip_protocol(path)
        if not name:
            return
        try:
            self.image.sys.mkdir(self._k(name), 0o755)
        except FileNotFoundError:
            self.makedirs(self._parent(name), exist_ok=True)
            self._call(self.image.sys.mkdir, self._k(name), 0o755, name=name)
        except FileExistsError:
            if not exist_ok or not self.isdir(name):
                raise FileExistsError(errno.EEXIST, "File exists", name) from None

    def rmdir(self, path: str) -> None:
        name = self._strip_protocol(path)
        self._call(self.image.sys.rmdir, self._k(name), name=name)

    def rm_file(self, path: str) -> None:
        """fsspec's ``rm`` removes a tree by calling this for every path, directories included
        (deepest first), so a directory here is an rmdir."""
        name = self._strip_protocol(path)
        if self.info(name)["type"] == "directory":
            self.rmdir(name)
        else:
            self._call(self.image.sys.unlink, self._k(name), name=name)

    _rm = rm_file

    def touch(self, path: str, truncate: bool = True, **kwargs: Any) -> None:
        name = self._strip_protocol(path)
        if truncate or not self.exists(name):
            self._open(name, "wb").close()
        else:
            self._call(self.image.sys.utimensat, self._k(name), None, name=name)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        if self.isdir(path1):
            self.makedirs(path2, exist_ok=True)
            return
        with self._open(path1, "rb") as src, self._open(path2, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)

    def mv(self, path1: Any, path2: Any, recursive: bool = False, maxdepth: int | None = None,
           **kwargs: Any) -> None:
        """One rename inside the image, directories included, as LocalFileSystem's mv (and mv(1))
        does; fsspec's copy-and-delete only for lists and globs."""
        simple = isinstance(path1, str) and isinstance(path2, str) and not any(c in path1 for c in "*?[")
        if not simple:
            super().mv(path1, path2, recursive=recursive, maxdepth=maxdepth, **kwargs)
            return
        src, dst = self._strip_protocol(path1), self._strip_protocol(path2)
        if self.isdir(dst):
            dst = f"{dst}/{src.rsplit('/', 1)[-1]}" if dst else src.rsplit("/", 1)[-1]
        self._call(self.image.sys.rename, self._k(src), self._k(dst), name=src)

    # ---- lifetime --------------------------------------------------------------------------------
    def sync(self) -> None:
        self.image.sync()

    def close(self) -> None:
        """Unmount (a read-write image is synced and marked clean) and forget this instance, so the
        next ``fsspec.filesystem("p2k", ...)`` with the same arguments mounts afresh."""
        self._finalizer()
        type(self)._cache.pop(getattr(self, "_fs_token_", None), None)


# One mount per local image (and partition and mode) in this process, shared by every instance
# that names it: ``fsspec.open("p2k://f::disk.img")`` and ``fsspec.filesystem("p2k", fo="disk.img")``
# are different fsspec instances (different arguments), and mounting one image twice read-write
# would be two kernels writing one file — the second mount is rightly refused as not clean.
_SHARED: dict[tuple[str, str, str, str], list[Any]] = {}  # key -> [ImageFS, users]
_SHARED_LOCK = threading.Lock()


def _shared(path: str, mode: str, fstype: str, partition: str | None, memlimit: int | str | None) -> ImageFS:
    key = (os.path.realpath(path), partition or "", mode, fstype)
    with _SHARED_LOCK:
        entry = _SHARED.get(key)
        if entry is None or entry[0].closed:
            entry = _SHARED[key] = [open_image(path, mode, fstype=fstype, partition=partition, memlimit=memlimit), 0]
        entry[1] += 1
        return entry[0]


def _release(image: ImageFS) -> None:
    """One user fewer; the last unmounts (a shared mount stays until every instance lets go)."""
    with _SHARED_LOCK:
        for key, entry in list(_SHARED.items()):
            if entry[0] is image:
                entry[1] -= 1
                if entry[1] > 0:
                    return
                del _SHARED[key]
    if not image.closed:
        image.close()


def _as_fsspec_error(e: OSError, name: str) -> OSError:
    """The errno-specific subclass (FileNotFoundError, IsADirectoryError...) naming the path as
    fsspec's callers print it."""
    return OSError(e.errno, e.strerror or os.strerror(e.errno or 0), name)
